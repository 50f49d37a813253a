//! What signal analysis produces: the kinds of stream, each kind's features per window,
//! and the warnings a stream raises. Plain data, serialisable as JSON; `formats::wire`
//! turns them into the wire messages.

use serde::Serialize;

use super::cardiac::HeartRate;
use super::eeg::{AffectEstimate, EegFeatures};
use super::quality::ChannelQuality;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Eeg,
    Eda,
    Ecg,
    Ppg,
    Respiration,
    Other,
}

impl SignalKind {
    /// Seconds of look-back the kind's detectors need beyond the window.
    pub(crate) fn context_s(self) -> f64 {
        match self {
            SignalKind::Eeg | SignalKind::Other => 0.0,
            SignalKind::Ecg | SignalKind::Ppg => 10.0,
            SignalKind::Eda => 60.0,
            SignalKind::Respiration => 30.0,
        }
    }

    /// Seconds by which a kind's reported window lags the newest sample: beats and SCRs
    /// near the newest sample cannot be placed until the signal after them has arrived.
    pub(crate) fn delay_s(self) -> f64 {
        match self {
            SignalKind::Ecg | SignalKind::Ppg => 1.0,
            SignalKind::Eda => 4.0,
            _ => 0.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SignalKind::Eeg => "eeg",
            SignalKind::Eda => "eda",
            SignalKind::Ecg => "ecg",
            SignalKind::Ppg => "ppg",
            SignalKind::Respiration => "respiration",
            SignalKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scr {
    /// Client clock, s.
    pub onset_time: f64,
    pub peak_time: f64,
    /// uS (the channel's unit), phasic peak minus onset.
    pub amplitude: f64,
    pub rise_time_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdaWindow {
    /// Mean tonic level over the window, channel unit (uS).
    pub tonic_mean: f64,
    /// SCRs whose peak lies in the window.
    pub responses: Vec<Scr>,
    pub scr_rate_per_min: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardiacWindow {
    /// Beat times in the window, client clock, s.
    pub beat_times: Vec<f64>,
    /// Mean of 60/RR over the window's beats that have a predecessor in the context.
    pub heart_rate_bpm: Option<f64>,
    /// heart_rate_bpm minus the baseline's, when a baseline is configured and complete.
    pub heart_rate_change_bpm: Option<f64>,
    /// ECG only, from the window's RR intervals (needs 3 beats).
    pub hrv: Option<HeartRate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RespirationWindow {
    /// Breaths per minute over the context (the last 30 s).
    pub rate_per_min: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Features {
    Eeg(EegFeatures),
    Eda(EdaWindow),
    Cardiac(CardiacWindow),
    Respiration(RespirationWindow),
    /// Nothing could be computed (kind Other, too little signal, or no usable channel).
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureWindow {
    pub stream_id: String,
    pub kind: SignalKind,
    /// Client clock, s; the window is [start_time, end_time).
    pub start_time: f64,
    pub end_time: f64,
    pub quality: Vec<ChannelQuality>,
    pub features: Features,
    pub estimate: Option<AffectEstimate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WarningKind {
    SampleGap,
    SampleOverlap,
    NonFinite,
    Quality,
    Clock,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamWarning {
    pub kind: WarningKind,
    pub message: String,
    pub stream_id: String,
    /// Client clock, s.
    pub timestamp: f64,
}
