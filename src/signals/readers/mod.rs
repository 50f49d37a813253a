//! Recording readers: EDF/EDF+/BDF/BDF+, XDF and CSV, into one in-memory shape. Channel
//! names, types and physical units are kept; EEG and ECG voltages are converted to
//! microvolts so that the encoders' thresholds apply.

pub mod csv;
pub mod edf;
pub mod xdf;

use std::path::Path;

use super::features::SignalKind;

#[derive(Debug, Clone, PartialEq)]
pub struct RecordedChannel {
    pub label: String,
    /// Physical unit after conversion (e.g. "uV"); as written in the file otherwise.
    pub unit: String,
    pub kind: SignalKind,
    /// Samples in `unit`; NaN where the file holds no value.
    pub samples: Vec<f64>,
}

/// Channels that share a clock and a sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStream {
    pub name: String,
    pub kind: SignalKind,
    pub rate_hz: f64,
    /// Time of the first sample, s: seconds since the recording's start (EDF/CSV) or the
    /// recorder's clock (XDF, after clock synchronisation).
    pub first_timestamp: f64,
    pub channels: Vec<RecordedChannel>,
}

impl RecordedStream {
    /// The stream's description for a [`StreamAnalyzer`](super::stream::StreamAnalyzer).
    pub fn spec(&self) -> super::stream::StreamSpec {
        super::stream::StreamSpec {
            id: self.name.clone(),
            kind: self.kind,
            rate_hz: self.rate_hz,
            channels: self
                .channels
                .iter()
                .map(|c| super::stream::ChannelSpec {
                    label: c.label.clone(),
                    unit: c.unit.clone(),
                })
                .collect(),
        }
    }
}

/// A timed event (EDF+ annotation, XDF marker).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Annotation {
    /// Seconds, in the streams' clock.
    pub onset: f64,
    /// Seconds; 0 when the event has no duration.
    pub duration: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recording {
    pub streams: Vec<RecordedStream>,
    pub annotations: Vec<Annotation>,
    /// Problems that did not stop reading (truncated data, lying header fields).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not an EDF/BDF file: {reason}")]
    Edf { path: String, reason: String },
    #[error("{path}: not a readable XDF file: {reason}")]
    Xdf { path: String, reason: String },
    #[error("{path}: {reason}")]
    Csv { path: String, reason: String },
    #[error("{path}: unknown file type; affectd reads .edf, .bdf, .xdf and .csv files")]
    UnknownType { path: String },
}

/// Reads a recording, choosing the reader by extension (EDF and BDF also by content).
pub fn read(path: &Path, csv_options: &csv::CsvOptions) -> Result<Recording, ReadError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let shown = path.display().to_string();
    let bytes = || {
        std::fs::read(path).map_err(|source| ReadError::Io {
            path: shown.clone(),
            source,
        })
    };
    match ext.as_str() {
        "edf" | "bdf" | "rec" => edf::parse(&bytes()?).map_err(|reason| ReadError::Edf {
            path: shown.clone(),
            reason,
        }),
        "xdf" => xdf::parse(&bytes()?).map_err(|reason| ReadError::Xdf {
            path: shown.clone(),
            reason,
        }),
        "csv" | "tsv" | "txt" => {
            csv::parse(&bytes()?, csv_options).map_err(|reason| ReadError::Csv {
                path: shown.clone(),
                reason,
            })
        }
        _ => Err(ReadError::UnknownType { path: shown }),
    }
}

/// Guesses a channel's signal type from its label (and EDF transducer text), as recorders
/// name them: "EEG Fz", "ECG II", "GSR", "Resp chest", "Pleth", or a bare 10-20 name.
pub fn infer_kind(label: &str, transducer: &str) -> SignalKind {
    let text = format!("{label} {transducer}").to_ascii_uppercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if has(&["ECG", "EKG"]) {
        SignalKind::Ecg
    } else if has(&[
        "EDA",
        "GSR",
        "SCL",
        "SKIN COND",
        "GALVANIC",
        "ELECTRODERMAL",
    ]) {
        SignalKind::Eda
    } else if has(&["PPG", "PLETH", "BVP"]) {
        SignalKind::Ppg
    } else if has(&["RESP", "BREATH", "THOR", "ABDO", "RSP"]) {
        SignalKind::Respiration
    } else if has(&["EEG"]) || is_ten_twenty(label) {
        SignalKind::Eeg
    } else {
        SignalKind::Other
    }
}

/// A 10-20/10-10 electrode name such as Fp1, AF3, Fz, C4, T7, TP9, P10, POz, O2, Iz.
fn is_ten_twenty(label: &str) -> bool {
    let name = super::eeg::ten_twenty_name(label);
    let prefixes = [
        "FP", "AF", "FT", "FC", "TP", "CP", "PO", "F", "C", "T", "P", "O", "I", "A",
    ];
    prefixes.iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            rest == "Z"
                || (!rest.is_empty() && rest.len() <= 2 && rest.chars().all(|c| c.is_ascii_digit()))
        })
    })
}

/// Converts voltages to microvolts for EEG and ECG; returns the factor and the new unit.
pub fn to_microvolts(kind: SignalKind, unit: &str) -> (f64, String) {
    if !matches!(kind, SignalKind::Eeg | SignalKind::Ecg) {
        return (1.0, unit.to_string());
    }
    match unit.trim() {
        "uV" | "µV" | "μV" | "microvolt" | "microvolts" => (1.0, "uV".into()),
        "mV" | "millivolt" | "millivolts" => (1e3, "uV".into()),
        "nV" => (1e-3, "uV".into()),
        "V" | "volt" | "volts" => (1e6, "uV".into()),
        other => (1.0, other.to_string()),
    }
}

/// Groups channels of the same kind and rate into streams, in first-appearance order.
pub fn group_channels(
    channels: Vec<(RecordedChannel, f64)>,
    first_timestamp: f64,
    name_prefix: &str,
) -> Vec<RecordedStream> {
    let mut streams: Vec<RecordedStream> = Vec::new();
    for (channel, rate) in channels {
        match streams
            .iter_mut()
            .find(|s| s.kind == channel.kind && s.rate_hz == rate)
        {
            Some(s) => s.channels.push(channel),
            None => streams.push(RecordedStream {
                name: format!("{name_prefix}{}", channel.kind.name()),
                kind: channel.kind,
                rate_hz: rate,
                first_timestamp,
                channels: vec![channel],
            }),
        }
    }
    // Distinct names when one kind comes at several rates.
    for i in 0..streams.len() {
        if streams.iter().filter(|s| s.kind == streams[i].kind).count() > 1 {
            streams[i].name = format!("{}@{}Hz", streams[i].name, streams[i].rate_hz);
        }
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_labels() {
        assert_eq!(infer_kind("EEG Fpz-Cz", ""), SignalKind::Eeg);
        assert_eq!(infer_kind("Fp1", ""), SignalKind::Eeg);
        assert_eq!(infer_kind("POz", ""), SignalKind::Eeg);
        assert_eq!(infer_kind("ECG II", ""), SignalKind::Ecg);
        assert_eq!(infer_kind("GSR", ""), SignalKind::Eda);
        assert_eq!(infer_kind("Pleth", ""), SignalKind::Ppg);
        assert_eq!(infer_kind("Resp chest", ""), SignalKind::Respiration);
        assert_eq!(infer_kind("squarewave", ""), SignalKind::Other);
        assert_eq!(infer_kind("ramp", ""), SignalKind::Other);
    }
}
