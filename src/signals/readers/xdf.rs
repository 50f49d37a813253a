//! XDF recordings as [`Recording`]s: regular numeric streams become signal streams, string
//! streams become annotations. The file format itself is read by `formats::xdf`.

use super::{Annotation, RecordedChannel, Recording, group_channels, infer_kind, to_microvolts};
use crate::formats::xdf::{Values, XdfStream, load};
use crate::signals::features::SignalKind;

fn kind_of(stream: &XdfStream, label: &str) -> SignalKind {
    let from_type = infer_kind(&stream.stream_type, "");
    if from_type != SignalKind::Other {
        return from_type;
    }
    infer_kind(label, "")
}

/// Regular numeric streams become recorded streams (gaps between segments filled with NaN
/// up to 10 minutes); string streams become annotations.
pub fn parse(bytes: &[u8]) -> Result<Recording, String> {
    let mut recording = Recording::default();
    for s in load(bytes)? {
        match &s.values {
            Values::Text(rows) => {
                for (t, row) in s.time_stamps.iter().zip(rows) {
                    recording.annotations.push(Annotation {
                        onset: *t,
                        duration: 0.0,
                        text: row.join(" "),
                    });
                }
            }
            Values::Numeric(rows) if s.nominal_srate > 0.0 && !rows.is_empty() => {
                let rate = s.nominal_srate;
                let mut columns = vec![Vec::with_capacity(rows.len()); s.channel_count];
                for (k, &(a, b)) in s.segments.iter().enumerate() {
                    if k > 0 {
                        let gap_s = s.time_stamps[a] - s.time_stamps[s.segments[k - 1].1];
                        // Samples missing between the segments; corrupt time stamps fill none.
                        let fill = if gap_s.is_finite() {
                            ((gap_s * rate).round() - 1.0).clamp(0.0, 600.0 * rate) as usize
                        } else {
                            0
                        };
                        recording.warnings.push(format!(
                            "stream {:?}: a {:.3} s break before {:.3} s; filled with {fill} NaN samples",
                            s.name,
                            gap_s,
                            s.time_stamps[a]
                        ));
                        for c in &mut columns {
                            c.extend(std::iter::repeat_n(f64::NAN, fill));
                        }
                    }
                    for row in &rows[a..=b] {
                        for (c, v) in columns.iter_mut().zip(row) {
                            c.push(*v);
                        }
                    }
                }
                let channels: Vec<(RecordedChannel, f64)> = s
                    .labels
                    .iter()
                    .zip(&s.units)
                    .zip(columns)
                    .map(|((label, unit), mut samples)| {
                        let kind = kind_of(&s, label);
                        let (factor, unit) = to_microvolts(kind, unit);
                        if factor != 1.0 {
                            samples.iter_mut().for_each(|v| *v *= factor);
                        }
                        (
                            RecordedChannel {
                                label: label.clone(),
                                unit,
                                kind,
                                samples,
                            },
                            rate,
                        )
                    })
                    .collect();
                recording.streams.extend(group_channels(
                    channels,
                    s.time_stamps[0],
                    &format!("{}/", s.name),
                ));
            }
            Values::Numeric(rows) if !rows.is_empty() => recording.warnings.push(format!(
                "stream {:?} is numeric but irregular (nominal rate 0); not analysed",
                s.name
            )),
            Values::Numeric(_) => {}
        }
    }
    recording.streams.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(recording)
}
