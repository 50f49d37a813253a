//! What a live session shows on the dashboard: its counters, each signal stream's health,
//! and a bounded, numbered list of what it produced lately (the dashboard's timelines).
//!
//! The session's threads write here as they send their client the same events (see
//! `Outbox`), with one short lock and no waiting on anyone: dashboard clients read at their
//! own pace (`http::feed`), each with its own cursor, so a browser that stops reading
//! cannot slow the session. A reader that falls more than [`MAX_ITEMS`] behind is told how
//! many items it missed.
//!
//! Items are JSON objects, serialised once when they are produced (they are small: the
//! EEG's band powers are averaged per channel group; the per-channel quality map is kept
//! only as the stream's latest, in its health). Every time is the client's clock, s.
//! - `{"type":"face","t","faces":[{"face_id","valence","arousal","label"}]}`: at most
//!   [`FACE_ITEMS_PER_S`] per second;
//! - `{"type":"fused","start","end","valence","arousal","label","method"}`;
//! - `{"type":"eeg","stream_id","start","end","bands":{group:{band:relative power}},"arousal_index","engagement_index"}`;
//! - `{"type":"eda","stream_id","start","end","tonic_us","scr":[{"peak_time","amplitude_us"}]}`;
//! - `{"type":"cardiac","stream_id","start","end","heart_rate_bpm","beats":[t]}`;
//! - `{"type":"respiration","stream_id","start","end","rate_per_min"}`;
//! - `{"type":"marker","t","label","duration_s"}`;
//! - `{"type":"expression_event", ...}` (`formats::events::event_json`);
//! - `{"type":"signal_warning","stream_id","kind","message","t"}`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

use super::Event;
use crate::signals::features::{FeatureWindow, Features, SignalKind};
use crate::signals::quality::ChannelQuality;

/// Items kept per session: about 8 minutes of a session with faces, EEG, EDA and ECG.
pub const MAX_ITEMS: usize = 4096;
/// Face items per second on the timeline (the feed sends the latest faces separately).
pub const FACE_ITEMS_PER_S: f64 = 5.0;

/// The session's counters, as the sessions page shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub frames_received: u64,
    pub frames_analysed: u64,
    /// Recorded but not analysed (face analysis behind, or failed on the frame).
    pub frames_skipped: u64,
    pub chunks: u64,
    pub markers: u64,
    pub explanations: u64,
    /// Every message up to this client_seq is recorded; None before the first
    /// acknowledgement (and always for an unrecorded session).
    pub acked_client_seq: Option<u64>,
}

/// One signal stream's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamHealth {
    pub stream_id: String,
    pub kind: &'static str,
    pub windows: u64,
    /// The latest window's end, client clock, s.
    pub last_window_end: Option<f64>,
    /// The latest window's channels, and which of them were usable.
    pub channels: usize,
    pub usable_channels: usize,
    /// The latest window's quality per channel (the quality map).
    pub quality: Vec<ChannelQuality>,
    pub warnings: u64,
    pub last_warning: Option<String>,
}

/// Who the session is and when it started.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Info {
    pub participant: String,
    /// Server clock, s since the Unix epoch.
    pub started_at: f64,
    pub recording: bool,
}

#[derive(Default)]
struct State {
    info: Info,
    counts: Counts,
    streams: BTreeMap<String, StreamHealth>,
    items: VecDeque<Arc<str>>,
    /// The number of the oldest item kept (items are numbered from 0).
    first: u64,
    last_face_item: Option<f64>,
    /// The latest frame drawn with its marks for the dashboard (its time and JPEG): every
    /// dashboard client shares it.
    marked: Option<(f64, Arc<Vec<u8>>)>,
}

/// A live session's dashboard view.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
}

/// What a reader gets: the items after its cursor, its new cursor, and how many it
/// missed because it fell behind.
pub struct Items {
    pub items: Vec<Arc<str>>,
    pub next: u64,
    pub missed: u64,
}

/// Status for the sessions page and the session page's header.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub info: Info,
    #[serde(flatten)]
    pub counts: Counts,
    pub streams: Vec<StreamHealth>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock left plain counters behind: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&self, info: Info, streams: &[(String, SignalKind)]) {
        let mut state = self.lock();
        state.info = info;
        for (id, kind) in streams {
            state.streams.insert(
                id.clone(),
                StreamHealth {
                    stream_id: id.clone(),
                    kind: kind.name(),
                    windows: 0,
                    last_window_end: None,
                    channels: 0,
                    usable_channels: 0,
                    quality: Vec::new(),
                    warnings: 0,
                    last_warning: None,
                },
            );
        }
    }

    pub fn status(&self) -> Status {
        let state = self.lock();
        Status {
            info: state.info.clone(),
            counts: state.counts.clone(),
            streams: state.streams.values().cloned().collect(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    /// The items after `cursor` (a reader's first cursor is 0).
    pub fn items_after(&self, cursor: u64) -> Items {
        let state = self.lock();
        let end = state.first + state.items.len() as u64;
        let from = cursor.clamp(state.first, end);
        Items {
            items: state
                .items
                .iter()
                .skip((from - state.first) as usize)
                .cloned()
                .collect(),
            next: end,
            missed: from - cursor.min(from),
        }
    }

    pub fn marked(&self) -> Option<(f64, Arc<Vec<u8>>)> {
        self.lock().marked.clone()
    }

    pub fn set_marked(&self, timestamp: f64, jpeg: Arc<Vec<u8>>) {
        let mut state = self.lock();
        // Two readers may draw the same frame at once; never replace a newer one.
        if state.marked.as_ref().is_none_or(|(t, _)| *t <= timestamp) {
            state.marked = Some((timestamp, jpeg));
        }
    }

    pub fn frame_received(&self) {
        self.lock().counts.frames_received += 1;
    }

    pub fn chunk_received(&self) {
        self.lock().counts.chunks += 1;
    }

    pub fn marker(&self, timestamp: f64, label: &str, duration_s: f64) {
        let item = json!({"type": "marker", "t": timestamp, "label": label, "duration_s": duration_s});
        let mut state = self.lock();
        state.counts.markers += 1;
        push(&mut state, item);
    }

    /// Takes in what the session sends its client.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::Faces {
                timestamp, result, ..
            } => {
                let mut state = self.lock();
                state.counts.frames_analysed += 1;
                let due = state
                    .last_face_item
                    .is_none_or(|last| *timestamp < last || *timestamp - last >= 1.0 / FACE_ITEMS_PER_S);
                if due && !result.faces.is_empty() {
                    state.last_face_item = Some(*timestamp);
                    let faces: Vec<Value> = result
                        .faces
                        .iter()
                        .filter_map(|face| {
                            let e = face.expression.as_ref()?;
                            Some(json!({
                                "face_id": face.face_id,
                                "valence": e.valence,
                                "arousal": e.arousal,
                                "label": top_label(&e.combined),
                            }))
                        })
                        .collect();
                    push(&mut state, json!({"type": "face", "t": timestamp, "faces": faces}));
                }
            }
            Event::Warning(w) if w.kind == super::SessionWarningKind::FrameSkipped => {
                self.lock().counts.frames_skipped += 1;
            }
            Event::Ack(seq) => self.lock().counts.acked_client_seq = Some(*seq),
            Event::Explain {
                event: crate::explain::ExplainEvent::Result(_),
                ..
            } => self.lock().counts.explanations += 1,
            Event::Features(window) => self.window(window),
            Event::Fused(e) => {
                let label = (!e.labels.is_empty()).then(|| top_named(&e.labels, &e.label_names));
                let item = json!({
                    "type": "fused", "start": e.start_time, "end": e.end_time,
                    "valence": e.valence, "arousal": e.arousal, "label": label, "method": e.method,
                });
                push(&mut self.lock(), item);
            }
            Event::Expression(event) => {
                let mut item = crate::formats::events::event_json(
                    "live",
                    &crate::formats::wire::expression_event(event),
                );
                item["type"] = json!("expression_event");
                push(&mut self.lock(), item);
            }
            Event::SignalWarning { warning, .. } => {
                let item = json!({
                    "type": "signal_warning", "stream_id": warning.stream_id,
                    "kind": format!("{:?}", warning.kind), "message": warning.message,
                    "t": warning.timestamp,
                });
                let mut state = self.lock();
                if let Some(health) = state.streams.get_mut(&warning.stream_id) {
                    health.warnings += 1;
                    health.last_warning = Some(warning.message.clone());
                }
                push(&mut state, item);
            }
            _ => {}
        }
    }

    fn window(&self, w: &FeatureWindow) {
        let (start, end, id) = (w.start_time, w.end_time, &w.stream_id);
        let item = match &w.features {
            Features::Eeg(eeg) => {
                // Mean relative power per channel group and band, usable channels only.
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
                    .map(|(g, b)| (g, b.into_iter().map(|(n, (s, c))| (n, s / c as f64)).collect()))
                    .collect();
                Some(json!({
                    "type": "eeg", "stream_id": id, "start": start, "end": end, "bands": bands,
                    "arousal_index": eeg.arousal_index, "engagement_index": eeg.engagement_index,
                }))
            }
            Features::Eda(eda) => Some(json!({
                "type": "eda", "stream_id": id, "start": start, "end": end,
                "tonic_us": eda.tonic_mean,
                "scr": eda.responses.iter().map(|r| json!({"peak_time": r.peak_time, "amplitude_us": r.amplitude})).collect::<Vec<_>>(),
            })),
            Features::Cardiac(c) => Some(json!({
                "type": "cardiac", "stream_id": id, "start": start, "end": end,
                "heart_rate_bpm": c.heart_rate_bpm, "beats": c.beat_times,
            })),
            Features::Respiration(r) => Some(json!({
                "type": "respiration", "stream_id": id, "start": start, "end": end,
                "rate_per_min": r.rate_per_min,
            })),
            Features::None => None,
        };
        let mut state = self.lock();
        if let Some(health) = state.streams.get_mut(id) {
            health.windows += 1;
            health.last_window_end = Some(end);
            health.channels = w.quality.len();
            health.usable_channels = w.quality.iter().filter(|q| q.usable).count();
            health.quality = w.quality.clone();
        }
        if let Some(item) = item {
            push(&mut state, item);
        }
    }
}

fn push(state: &mut State, item: Value) {
    if state.items.len() == MAX_ITEMS {
        state.items.pop_front();
        state.first += 1;
    }
    state.items.push_back(item.to_string().into());
}

fn top_label(p: &[f32; 7]) -> &'static str {
    let best = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
    crate::vision::expression::LABELS[best]
}

fn top_named<'a>(p: &[f64], names: &'a [String]) -> &'a str {
    (0..p.len().min(names.len()))
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .map_or("", |i| names[i].as_str())
}

/// The scalp region of a 10-20 (or 10-10) electrode name: "Fp1" -> frontal, "CPz" ->
/// central, "PO8" -> parietal. Names outside the system (ch1) are "other".
pub fn channel_group(name: &str) -> &'static str {
    let letters: String = name
        .trim()
        .trim_start_matches("EEG ")
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    let letters = letters.trim_end_matches('z');
    match letters {
        "fp" | "af" | "f" => "frontal",
        "fc" | "c" | "cp" => "central",
        "ft" | "t" | "tp" => "temporal",
        "p" | "po" => "parietal",
        "o" | "i" | "oi" => "occipital",
        _ => "other",
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
            ("ch3", "other"),
            ("", "other"),
        ] {
            assert_eq!(channel_group(name), group, "{name}");
        }
    }

    #[test]
    fn a_reader_behind_the_kept_items_is_told_what_it_missed() {
        let board = Board::default();
        for i in 0..(MAX_ITEMS + 10) {
            board.marker(i as f64, "m", 0.0);
        }
        let all = board.items_after(0);
        assert_eq!(all.items.len(), MAX_ITEMS);
        assert_eq!(all.missed, 10);
        assert_eq!(all.next, (MAX_ITEMS + 10) as u64);
        assert!(all.items[0].contains("\"t\":10.0"), "{}", all.items[0]);
        let none = board.items_after(all.next);
        assert!(none.items.is_empty() && none.missed == 0 && none.next == all.next);
        board.marker(1e4, "new", 0.0);
        let one = board.items_after(all.next);
        assert_eq!((one.items.len(), one.missed), (1, 0));
        assert_eq!(board.counts().markers, (MAX_ITEMS + 11) as u64);
    }
}
