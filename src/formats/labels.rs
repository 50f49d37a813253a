//! Labelled blocks for training: from markers (a session's, or a recording's annotations)
//! or from a labels CSV. One convention everywhere (`train-eeg`, `train-fusion`, a live
//! session's `Calibrate`):
//! - a marker with a duration labels `[onset, onset + duration)`;
//! - an instant marker labels from its onset until the next marker (or the end);
//! - a labels CSV has a header and rows `onset,duration,label` (client clock, s).

use std::path::Path;

/// A labelled span `[start, end)` of the client clock, s.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBlock {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

impl LabelledBlock {
    /// Whether `[start, end)` lies inside the block.
    pub fn holds(&self, start: f64, end: f64) -> bool {
        start >= self.start && end <= self.end
    }
}

/// The blocks that markers `(onset, duration, label)` define, in onset order.
pub fn from_markers(markers: &[(f64, f64, String)]) -> Vec<LabelledBlock> {
    let mut sorted: Vec<&(f64, f64, String)> = markers.iter().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    (0..sorted.len())
        .map(|i| {
            let (onset, duration, label) = sorted[i];
            let end = if *duration > 0.0 {
                onset + duration
            } else {
                sorted.get(i + 1).map_or(f64::INFINITY, |next| next.0)
            };
            LabelledBlock {
                start: *onset,
                end,
                label: label.clone(),
            }
        })
        .collect()
}

/// Reads a labels CSV (`onset,duration,label` after a header line).
pub fn read_csv(path: &Path) -> Result<Vec<LabelledBlock>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the labels file {}: {e}", path.display()))?;
    parse_csv(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a labels CSV's text.
pub fn parse_csv(text: &str) -> Result<Vec<LabelledBlock>, String> {
    let mut markers = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 3 {
            return Err(format!(
                "line {}: expected onset,duration,label, got {} fields",
                i + 1,
                f.len()
            ));
        }
        let number = |k: usize, what: &str| -> Result<f64, String> {
            f[k].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    format!(
                        "line {}: {what} must be a finite number, got {:?}",
                        i + 1,
                        f[k]
                    )
                })
        };
        let (onset, duration) = (number(0, "onset")?, number(1, "duration")?);
        if duration < 0.0 {
            return Err(format!(
                "line {}: duration must be >= 0, got {duration}",
                i + 1
            ));
        }
        if f[2].is_empty() {
            return Err(format!("line {}: the label is empty", i + 1));
        }
        markers.push((onset, duration, f[2].to_string()));
    }
    Ok(from_markers(&markers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_markers_run_to_the_next_and_durations_are_kept() {
        let blocks = from_markers(&[
            (10.0, 0.0, "b".into()),
            (0.0, 5.0, "a".into()),
            (20.0, 0.0, "c".into()),
        ]);
        assert_eq!(
            blocks,
            vec![
                LabelledBlock {
                    start: 0.0,
                    end: 5.0,
                    label: "a".into()
                },
                LabelledBlock {
                    start: 10.0,
                    end: 20.0,
                    label: "b".into()
                },
                LabelledBlock {
                    start: 20.0,
                    end: f64::INFINITY,
                    label: "c".into()
                },
            ]
        );
    }

    proptest::proptest! {
        /// Any text is either blocks or an error naming a line; never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "(?s).{0,400}") {
            if let Ok(blocks) = parse_csv(&text) {
                for b in blocks {
                    proptest::prop_assert!(b.start.is_finite() && b.end >= b.start);
                }
            }
        }

        /// Well-formed rows with any numbers.
        #[test]
        fn rows_of_numbers(rows in proptest::collection::vec((-1e6f64..1e6, 0.0f64..1e4, "[a-z]{1,8}"), 0..20)) {
            let text: String = std::iter::once("onset,duration,label".to_string())
                .chain(rows.iter().map(|(o, d, l)| format!("{o},{d},{l}")))
                .collect::<Vec<_>>()
                .join("\n");
            let blocks = parse_csv(&text).unwrap();
            proptest::prop_assert_eq!(blocks.len(), rows.len());
        }
    }

    #[test]
    fn a_bad_row_is_named() {
        let e = parse_csv("onset,duration,label\n0,5,rest\n5,x,task\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("duration"), "{e}");
        let e = parse_csv("onset,duration,label\n0,-1,rest\n").unwrap_err();
        assert!(e.contains(">= 0"), "{e}");
    }
}
