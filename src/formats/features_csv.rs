//! The feature table: one row per window per stream. `affectd signals --format csv` and the
//! session export's `features.csv` both write it.
//!
//! Fixed columns, in this order (empty where a stream's kind has no such feature, or where
//! it could not be computed for the window):
//!
//! | column | meaning |
//! |---|---|
//! | `source` | the file (signals) or the session id (export) |
//! | `stream`, `kind` | the stream's id and kind (eeg, eda, ecg, ppg, respiration, other) |
//! | `start_time`, `end_time` | the window, s, the recording's or client's clock |
//! | `channels`, `usable_channels`, `non_finite_samples` | quality summary |
//! | `valence`, `arousal`, `reliability` | the EEG window's estimate (`eeg-faa-beta-alpha-v1`) |
//! | `arousal_index`, `engagement_index` | EEG beta/alpha and beta/(alpha+theta) |
//! | `beats`, `heart_rate_bpm`, `heart_rate_change_bpm`, `rmssd_ms`, `sdnn_ms`, `pnn50` | ECG/PPG |
//! | `tonic_mean`, `scr_count`, `scr_rate_per_min`, `scr_amplitude_mean` | EDA, uS |
//! | `breathing_rate_per_min` | respiration |
//!
//! then per-recording columns in order of first appearance: `faa_<pair>` (EEG asymmetry,
//! e.g. `faa_F4-F3`), and `<band>_<channel>_abs|_rel|_de` (band power uV^2, relative power,
//! differential entropy in nats). Callers may add their own columns after these (the EEG
//! classifier's `predicted` and `p_<class>`).

use std::collections::HashMap;
use std::io::Write;

use crate::proto;
use crate::proto::feature_window::Features as F;

/// The fixed columns, in order.
pub const FIXED: [&str; 24] = [
    "source",
    "stream",
    "kind",
    "start_time",
    "end_time",
    "channels",
    "usable_channels",
    "non_finite_samples",
    "valence",
    "arousal",
    "reliability",
    "arousal_index",
    "engagement_index",
    "beats",
    "heart_rate_bpm",
    "heart_rate_change_bpm",
    "rmssd_ms",
    "sdnn_ms",
    "pnn50",
    "tonic_mean",
    "scr_count",
    "scr_rate_per_min",
    "scr_amplitude_mean",
    "breathing_rate_per_min",
];

fn kind_name(kind: i32) -> &'static str {
    match proto::SignalKind::try_from(kind) {
        Ok(proto::SignalKind::Eeg) => "eeg",
        Ok(proto::SignalKind::Eda) => "eda",
        Ok(proto::SignalKind::Ecg) => "ecg",
        Ok(proto::SignalKind::Ppg) => "ppg",
        Ok(proto::SignalKind::Respiration) => "respiration",
        Ok(proto::SignalKind::Other) => "other",
        _ => "unknown",
    }
}

/// Cells by column name, in order; an absent value adds no cell.
#[derive(Default)]
struct Cells(Vec<(String, String)>);

impl Cells {
    fn put(&mut self, column: impl Into<String>, value: impl ToString) {
        self.0.push((column.into(), value.to_string()));
    }

    fn optional(&mut self, column: &str, value: Option<f64>) {
        if let Some(v) = value {
            self.put(column, v);
        }
    }
}

/// One window's cells by column name; a feature that is absent has no cell.
pub fn cells(source: &str, w: &proto::FeatureWindow) -> Vec<(String, String)> {
    let mut out = Cells::default();
    out.put("source", source);
    out.put("stream", &w.stream_id);
    out.put("kind", kind_name(w.kind));
    out.put("start_time", format!("{:.6}", w.start_time));
    out.put("end_time", format!("{:.6}", w.end_time));
    out.put("channels", w.quality.len());
    out.put(
        "usable_channels",
        w.quality.iter().filter(|q| q.usable).count(),
    );
    out.put(
        "non_finite_samples",
        w.quality
            .iter()
            .map(|q| u64::from(q.non_finite_samples))
            .sum::<u64>(),
    );
    if let Some(e) = &w.estimate {
        out.put("valence", e.valence);
        out.put("arousal", e.arousal);
        out.put("reliability", e.reliability);
    }
    match &w.features {
        Some(F::Eeg(f)) => {
            out.optional("arousal_index", f.arousal_index);
            out.optional("engagement_index", f.engagement_index);
            for a in &f.asymmetry {
                out.put(format!("faa_{}", a.pair), a.value);
            }
            for b in &f.band_powers {
                let stem = format!("{}_{}", b.band, b.channel);
                out.put(format!("{stem}_abs"), b.absolute);
                out.optional(&format!("{stem}_rel"), b.relative);
                out.optional(&format!("{stem}_de"), b.differential_entropy);
            }
        }
        Some(F::Cardiac(c)) => {
            out.put("beats", c.beat_times.len());
            out.optional("heart_rate_bpm", c.heart_rate_bpm);
            out.optional("heart_rate_change_bpm", c.heart_rate_change_bpm);
            out.optional("rmssd_ms", c.rmssd_ms);
            out.optional("sdnn_ms", c.sdnn_ms);
            out.optional("pnn50", c.pnn50);
        }
        Some(F::Eda(e)) => {
            out.put("tonic_mean", e.tonic_mean);
            out.put("scr_count", e.responses.len());
            out.put("scr_rate_per_min", e.scr_rate_per_min);
            let n = e.responses.len();
            out.optional(
                "scr_amplitude_mean",
                (n > 0).then(|| e.responses.iter().map(|s| s.amplitude).sum::<f64>() / n as f64),
            );
        }
        Some(F::Respiration(r)) => out.optional("breathing_rate_per_min", r.rate_per_min),
        None => {}
    }
    out.0
}

/// Rows gathered before writing, so that the header holds every column any row has.
#[derive(Default)]
pub struct Table {
    /// Columns beyond [`FIXED`], in order of first appearance.
    extra: Vec<String>,
    rows: Vec<HashMap<String, String>>,
}

impl Table {
    /// Adds a row of (column, value) cells.
    pub fn push(&mut self, cells: Vec<(String, String)>) {
        for (k, _) in &cells {
            if !FIXED.contains(&k.as_str()) && !self.extra.contains(k) {
                self.extra.push(k.clone());
            }
        }
        self.rows.push(cells.into_iter().collect());
    }

    /// Writes the header and every row.
    pub fn write<W: Write>(self, out: W) -> csv::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        let columns: Vec<String> = FIXED
            .iter()
            .map(|c| c.to_string())
            .chain(self.extra)
            .collect();
        w.write_record(&columns)?;
        for row in &self.rows {
            w.write_record(
                columns
                    .iter()
                    .map(|c| row.get(c).map_or("", String::as_str)),
            )?;
        }
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_features_are_empty_cells_and_every_column_is_in_the_header() {
        let cardiac = proto::FeatureWindow {
            stream_id: "ecg".into(),
            kind: proto::SignalKind::Ecg as i32,
            start_time: 1.0,
            end_time: 5.0,
            features: Some(F::Cardiac(proto::CardiacFeatures {
                beat_times: vec![2.0],
                ..Default::default()
            })),
            ..Default::default()
        };
        let eeg = proto::FeatureWindow {
            stream_id: "eeg".into(),
            kind: proto::SignalKind::Eeg as i32,
            features: Some(F::Eeg(proto::EegFeatures {
                band_powers: vec![proto::BandPower {
                    channel: "F3".into(),
                    band: "alpha".into(),
                    absolute: 2.5,
                    relative: Some(0.4),
                    differential_entropy: None,
                }],
                arousal_index: Some(1.5),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut table = Table::default();
        table.push(cells("s", &cardiac));
        table.push(cells("s", &eeg));
        let mut bytes = Vec::new();
        table.write(&mut bytes).unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let cell = |row: usize, name: &str| {
            rows[row][header.iter().position(|h| h == name).unwrap()].to_string()
        };
        // One beat: no heart rate, and the cell says nothing rather than 0.
        assert_eq!(cell(0, "beats"), "1");
        assert_eq!(cell(0, "heart_rate_bpm"), "");
        assert_eq!(cell(1, "alpha_F3_abs"), "2.5");
        assert_eq!(cell(1, "alpha_F3_rel"), "0.4");
        assert!(!header.contains(&"alpha_F3_de".to_string()));
        assert_eq!(cell(1, "arousal_index"), "1.5");
        assert_eq!(cell(0, "alpha_F3_abs"), "");
    }
}
