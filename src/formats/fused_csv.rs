//! The fused-estimate table (`fused.csv` of a session export, and the fused rows of
//! `sessions analyze` / `analyze-recording`), one row per hop:
//!
//! | column | meaning |
//! |---|---|
//! | `source` | the session id or input file |
//! | `start_time`, `end_time` | the hop, client clock, s |
//! | `valence` | fused, `[-1,1]`; empty when no modality had one |
//! | `arousal` | fused, `[0,1]`; empty when no modality had one |
//! | `method` | `fusion-v1`, or `fusion-v1+calibrated-lda` |
//! | `top_label` | the most probable label |
//! | `<modality>.weight`, `<modality>.reliability` | each of face, eeg, cardiac, eda, respiration; empty when it did not contribute |
//! | `<modality>.valence`, `<modality>.arousal` | its own values in the hop; empty when it has none |
//! | `p.<label>` | the label distribution, one column per label seen, in order of first appearance |

use std::io::Write;

use crate::proto;

/// Modalities in column order, with their wire value.
const MODALITIES: [(&str, proto::Modality); 5] = [
    ("face", proto::Modality::Face),
    ("eeg", proto::Modality::Eeg),
    ("cardiac", proto::Modality::Cardiac),
    ("eda", proto::Modality::Eda),
    ("respiration", proto::Modality::Respiration),
];

/// The columns before the label distribution.
pub fn fixed_columns() -> Vec<String> {
    let mut columns: Vec<String> = [
        "source",
        "start_time",
        "end_time",
        "valence",
        "arousal",
        "method",
        "top_label",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    for (m, _) in MODALITIES {
        for what in ["weight", "reliability", "valence", "arousal"] {
            columns.push(format!("{m}.{what}"));
        }
    }
    columns
}

fn optional(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

/// One row's cells, in `fixed_columns` order.
pub fn row(source: &str, e: &proto::FusedEstimate) -> Vec<String> {
    let top = super::wire::most_likely(&e.labels)
        .unwrap_or_default()
        .to_string();
    let mut cells = vec![
        source.to_string(),
        format!("{:.6}", e.start_time),
        format!("{:.6}", e.end_time),
        optional(e.valence),
        optional(e.arousal),
        e.method.clone(),
        top,
    ];
    for (_, modality) in MODALITIES {
        match e
            .contributions
            .iter()
            .find(|c| c.modality == modality as i32)
        {
            Some(c) => cells.extend([
                format!("{:.6}", c.weight),
                format!("{:.6}", c.reliability),
                optional(c.valence),
                optional(c.arousal),
            ]),
            None => cells.extend(std::iter::repeat_n(String::new(), 4)),
        }
    }
    cells
}

/// Writes the table of `rows` (source, estimate).
pub fn write<W: Write>(rows: &[(String, proto::FusedEstimate)], out: W) -> csv::Result<()> {
    let mut labels: Vec<String> = Vec::new();
    for (_, e) in rows {
        for l in &e.labels {
            if !labels.contains(&l.label) {
                labels.push(l.label.clone());
            }
        }
    }
    let mut w = csv::Writer::from_writer(out);
    let mut header = fixed_columns();
    header.extend(labels.iter().map(|l| format!("p.{l}")));
    w.write_record(&header)?;
    for (source, e) in rows {
        let mut cells = row(source, e);
        cells.extend(labels.iter().map(|label| {
            e.labels
                .iter()
                .find(|l| &l.label == label)
                .map_or(String::new(), |l| format!("{:.6}", l.probability))
        }));
        w.write_record(&cells)?;
    }
    w.flush()?;
    Ok(())
}
