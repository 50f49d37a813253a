//! The dashboard's timeline items: one JSON object per result, the same for a live session
//! (`session::board`) and a recorded one (`store::overview`), so that the browser draws
//! both with the same code. Every time is the client's clock, s; absent values are null.
//!
//! - `{"type":"face","t","faces":[{"face_id","valence","arousal","label"}]}`: valence
//!   `[-1,1]`, arousal `[0,1]`, the combined expression's most likely label;
//! - `{"type":"fused","start","end","valence","arousal","label","method"}`;
//! - `{"type":"eeg","stream_id","start","end","bands":{group:{band:relative power}},"arousal_index","engagement_index"}`:
//!   relative band power (a fraction of the 1-45 Hz power) averaged over the usable
//!   channels of each scalp region ([`channel_group`]);
//! - `{"type":"eda","stream_id","start","end","tonic_us","scr":[{"peak_time","amplitude_us"}]}`;
//! - `{"type":"cardiac","stream_id","start","end","heart_rate_bpm","beats":[t]}`;
//! - `{"type":"respiration","stream_id","start","end","rate_per_min"}`;
//! - `{"type":"marker","t","label","duration_s"}`;
//! - `{"type":"expression_event", ...}`: `formats::events::event_json`;
//! - `{"type":"signal_warning","stream_id","kind","message","t"}`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::proto;

/// A face's point on the valence/arousal timeline.
pub struct FacePoint<'a> {
    pub face_id: u32,
    pub valence: f32,
    pub arousal: f32,
    pub label: &'a str,
}

pub fn face_item<'a>(t: f64, faces: impl Iterator<Item = FacePoint<'a>>) -> Value {
    let faces: Vec<Value> = faces
        .map(|f| json!({"face_id": f.face_id, "valence": f.valence, "arousal": f.arousal, "label": f.label}))
        .collect();
    json!({"type": "face", "t": t, "faces": faces})
}

/// A recorded face's point (None without an expression).
pub fn face_point(face: &proto::Face) -> Option<FacePoint<'_>> {
    let e = face.expression.as_ref()?;
    Some(FacePoint {
        face_id: face.face_id,
        valence: e.valence,
        arousal: e.arousal,
        label: super::wire::most_likely(&e.combined)?,
    })
}

pub fn fused_item(e: &proto::FusedEstimate) -> Value {
    let label = super::wire::most_likely(&e.labels);
    json!({
        "type": "fused", "start": e.start_time, "end": e.end_time,
        "valence": e.valence, "arousal": e.arousal, "label": label, "method": e.method,
    })
}

/// None for a window without features.
pub fn window_item(w: &proto::FeatureWindow) -> Option<Value> {
    use proto::feature_window::Features;
    let (start, end, id) = (w.start_time, w.end_time, &w.stream_id);
    Some(match w.features.as_ref()? {
        Features::Eeg(eeg) => {
            let usable: std::collections::HashSet<&str> = w
                .quality
                .iter()
                .filter(|q| q.usable)
                .map(|q| q.channel.as_str())
                .collect();
            let mut sums: BTreeMap<&str, BTreeMap<&str, (f64, u32)>> = BTreeMap::new();
            for p in &eeg.band_powers {
                let (Some(relative), true) = (p.relative, usable.contains(p.channel.as_str()))
                else {
                    continue;
                };
                let sum = sums
                    .entry(channel_group(&p.channel))
                    .or_default()
                    .entry(p.band.as_str())
                    .or_default();
                sum.0 += relative;
                sum.1 += 1;
            }
            let bands: BTreeMap<&str, BTreeMap<&str, f64>> = sums
                .into_iter()
                .map(|(group, bands)| {
                    let means = bands
                        .into_iter()
                        .map(|(band, (sum, n))| (band, sum / f64::from(n)))
                        .collect();
                    (group, means)
                })
                .collect();
            json!({
                "type": "eeg", "stream_id": id, "start": start, "end": end, "bands": bands,
                "arousal_index": eeg.arousal_index, "engagement_index": eeg.engagement_index,
            })
        }
        Features::Eda(eda) => json!({
            "type": "eda", "stream_id": id, "start": start, "end": end,
            "tonic_us": eda.tonic_mean,
            "scr": eda.responses.iter()
                .map(|r| json!({"peak_time": r.peak_time, "amplitude_us": r.amplitude}))
                .collect::<Vec<_>>(),
        }),
        Features::Cardiac(c) => json!({
            "type": "cardiac", "stream_id": id, "start": start, "end": end,
            "heart_rate_bpm": c.heart_rate_bpm, "beats": c.beat_times,
        }),
        Features::Respiration(r) => json!({
            "type": "respiration", "stream_id": id, "start": start, "end": end,
            "rate_per_min": r.rate_per_min,
        }),
    })
}

pub fn marker_item(t: f64, label: &str, duration_s: f64) -> Value {
    json!({"type": "marker", "t": t, "label": label, "duration_s": duration_s})
}

pub fn expression_item(source: &str, e: &proto::ExpressionEvent) -> Value {
    let mut item = super::events::event_json(source, e);
    item["type"] = json!("expression_event");
    item
}

/// The scalp region of a 10-20 (or 10-10) electrode name: "Fp1" -> frontal, "CPz" ->
/// central, "PO8" -> parietal. Names outside the system ("ch1") are "other".
pub fn channel_group(name: &str) -> &'static str {
    let name = name.trim();
    let name = name.strip_prefix("EEG ").unwrap_or(name);
    let letters = name
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    match letters.trim_end_matches('z') {
        "fp" | "af" | "f" => "frontal",
        "fc" | "c" | "cp" => "central",
        "ft" | "t" | "tp" => "temporal",
        "p" | "po" => "parietal",
        "o" | "oi" | "i" => "occipital",
        _ => "other",
    }
}

/// Numbers rounded to 4 decimal places (0.1 ms of time, 1e-4 of a power fraction, µS or
/// bpm): a display needs no more, and the review's JSON is half the size without the
/// seventeen digits a mean prints.
pub fn round_for_display(value: &mut Value) {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            if let Some(x) = n.as_f64() {
                *value = json!((x * 1e4).round() / 1e4);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round_for_display),
        Value::Object(map) => map.values_mut().for_each(round_for_display),
        _ => {}
    }
}

/// The time an item is drawn at: its `t`, or the end of its window.
pub fn item_time(item: &Value) -> Option<f64> {
    item.get("t").or_else(|| item.get("end"))?.as_f64()
}

/// Items of one series (one type, one stream) in time order, thinned for display to at
/// most `buckets` items over `[from, to)`: each bucket's items become one, whose numbers
/// are their means (nulls left out; a number that is null in all stays null), whose text
/// is the last item's, and whose lists are concatenated (at most `max_list` entries in
/// all, kept evenly; SCRs and beats). A series with no more items than buckets is returned
/// as it is.
pub fn thin(items: Vec<Value>, from: f64, to: f64, buckets: usize, max_list: usize) -> Vec<Value> {
    if items.len() <= buckets || buckets == 0 || to <= from {
        return items;
    }
    let width = (to - from) / buckets as f64;
    let mut out: Vec<Value> = Vec::with_capacity(buckets);
    let mut group: Vec<Value> = Vec::new();
    let mut current = None;
    for item in items {
        // The last bucket is closed: an item at `to` is in it.
        let bucket =
            item_time(&item).map(|t| (((t - from) / width).floor() as i64).min(buckets as i64 - 1));
        if bucket != current && !group.is_empty() {
            out.push(merge(std::mem::take(&mut group)));
        }
        current = bucket;
        group.push(item);
    }
    if !group.is_empty() {
        out.push(merge(group));
    }
    // Lists (beats, SCRs) over the whole range, kept evenly.
    let total: usize = out.iter().map(list_len).sum();
    if total > max_list {
        let keep_every = total.div_ceil(max_list);
        let mut seen = 0usize;
        for item in &mut out {
            if let Value::Object(map) = item {
                for value in map.values_mut() {
                    if let Value::Array(list) = value {
                        list.retain(|_| {
                            seen += 1;
                            (seen - 1).is_multiple_of(keep_every)
                        });
                    }
                }
            }
        }
    }
    out
}

fn list_len(item: &Value) -> usize {
    item.as_object().map_or(0, |map| {
        map.values().filter_map(Value::as_array).map(Vec::len).sum()
    })
}

/// One item standing for several: means of numbers, the last text, lists concatenated;
/// `start` is the first's, `end` and `t` the mean's (so the point sits in its bucket).
fn merge(mut group: Vec<Value>) -> Value {
    if group.len() == 1 {
        return group.pop().unwrap_or(Value::Null);
    }
    let mut merged = average(&group);
    if let (Some(first), Value::Object(map)) =
        (group.first().and_then(|g| g.get("start")), &mut merged)
    {
        map.insert("start".into(), first.clone());
    }
    merged
}

fn average(values: &[Value]) -> Value {
    let Some(last) = values.last() else {
        return Value::Null;
    };
    match last {
        Value::Object(template) => {
            let mut out = serde_json::Map::new();
            for key in template.keys() {
                let fields: Vec<Value> =
                    values.iter().filter_map(|v| v.get(key).cloned()).collect();
                out.insert(key.clone(), average(&fields));
            }
            Value::Object(out)
        }
        Value::Number(_) | Value::Null => {
            let numbers: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
            if numbers.is_empty() {
                Value::Null
            } else {
                json!(numbers.iter().sum::<f64>() / numbers.len() as f64)
            }
        }
        Value::Array(_) => Value::Array(
            values
                .iter()
                .filter_map(Value::as_array)
                .flatten()
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn electrodes_fall_in_their_scalp_regions() {
        for (name, group) in [
            ("Fp1", "frontal"),
            ("AF3", "frontal"),
            ("Fz", "frontal"),
            ("FC5", "central"),
            ("Cz", "central"),
            ("CP2", "central"),
            ("T7", "temporal"),
            ("FT8", "temporal"),
            ("Pz", "parietal"),
            ("PO4", "parietal"),
            ("O1", "occipital"),
            ("Oz", "occipital"),
            ("EEG Fp2", "frontal"),
            ("ch3", "other"),
            ("", "other"),
        ] {
            assert_eq!(channel_group(name), group, "{name}");
        }
    }

    #[test]
    fn thinning_averages_each_bucket_and_keeps_short_series() {
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                let t = i as f64 * 0.1;
                json!({"type": "cardiac", "start": t - 1.0, "end": t,
                       "heart_rate_bpm": if i % 2 == 0 { json!(60.0) } else { json!(80.0) },
                       "beats": [t]})
            })
            .collect();
        let thinned = thin(items.clone(), 0.0, 100.0, 10, 50);
        assert_eq!(thinned.len(), 10);
        for item in &thinned {
            assert_eq!(item["heart_rate_bpm"].as_f64(), Some(70.0), "{item}");
            assert_eq!(item["type"], "cardiac");
        }
        // Each bucket's point sits inside it; the first keeps its first start.
        assert!((thinned[0]["end"].as_f64().unwrap() - 4.95).abs() < 1e-9);
        assert_eq!(thinned[0]["start"].as_f64(), Some(-1.0));
        // The beats are thinned evenly to the list limit.
        let beats: usize = thinned
            .iter()
            .map(|i| i["beats"].as_array().unwrap().len())
            .sum();
        assert_eq!(beats, 50);
        // No more items than buckets: unchanged.
        assert_eq!(
            thin(items[..10].to_vec(), 0.0, 100.0, 10, 50),
            items[..10].to_vec()
        );
    }

    #[test]
    fn display_rounding_keeps_four_decimals_and_whole_numbers() {
        let mut v = json!({"t": 12_345.678_912_3, "x": [0.123_456_78, null], "n": 7, "s": "a"});
        round_for_display(&mut v);
        assert_eq!(
            v,
            json!({"t": 12345.6789, "x": [0.1235, null], "n": 7, "s": "a"})
        );
    }

    #[test]
    fn a_number_absent_in_a_whole_bucket_stays_absent() {
        let items: Vec<Value> = (0..4)
            .map(|i| json!({"end": i as f64, "valence": null, "arousal": 0.5}))
            .collect();
        let thinned = thin(items, 0.0, 4.0, 2, 10);
        assert_eq!(thinned.len(), 2);
        assert!(thinned[0]["valence"].is_null());
        assert_eq!(thinned[0]["arousal"].as_f64(), Some(0.5));
    }
}
