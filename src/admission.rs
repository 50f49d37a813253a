//! Admission and limits: what one request or session may ask of the server, in one place,
//! so that every limit is found, documented and configured here (the `[limits]` table).

use serde::{Deserialize, Serialize};

use crate::signals::SignalBudget;

/// The limits the core enforces on client input. Each is checked before anything sized by
/// the client is allocated; the error names the limit's config key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Signal streams one session may describe.
    pub max_streams_per_session: usize,
    /// Longest marker label, bytes.
    pub max_marker_label_bytes: usize,
    /// Samples (all streams, all channels) accepted in one AnalyzeSignals request.
    pub max_samples_per_request: usize,
    /// Frames of a session that may wait for its face tracker; one more is recorded but
    /// not analysed (a FRAME_SKIPPED warning).
    pub vision_queue_frames: usize,
    /// Highest nominal sample rate of a signal stream, Hz.
    pub max_sample_rate_hz: f64,
    /// Most channels in one signal stream.
    pub max_channels_per_stream: usize,
    /// Most values (samples x channels) one stream holds for its window and look-back (EDA
    /// keeps 60 s, ECG/PPG 10 s, respiration 30 s, EEG one window): 8 bytes each.
    pub max_values_held_per_stream: u64,
    /// Most values (missing samples x channels) filled with NaN for one gap in a stream.
    pub max_gap_fill_values: u64,
    /// Longest text a client names things with, bytes: participant, stream ids, channel
    /// labels and units, metadata keys.
    pub max_name_bytes: usize,
    /// Most metadata entries of one session.
    pub max_metadata_entries: usize,
    /// Longest metadata value, bytes.
    pub max_metadata_value_bytes: usize,
    /// Live sessions at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_live_sessions: usize,
    /// Seconds a new Stream may take to send its config; then it is refused.
    pub first_message_timeout_s: f64,
}

impl Limits {
    /// The part of the limits that the signal analyzers check.
    pub fn signal_budget(&self) -> SignalBudget {
        SignalBudget {
            max_rate_hz: self.max_sample_rate_hz,
            max_channels: self.max_channels_per_stream,
            max_values_held: self.max_values_held_per_stream,
            max_gap_fill_values: self.max_gap_fill_values,
            max_name_bytes: self.max_name_bytes,
        }
    }

    /// A session's participant and metadata, before anything is recorded: a recording's
    /// summary travels in every ListSessions page, so its text is bounded.
    pub fn check_session_text(
        &self,
        participant: &str,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        let name = self.max_name_bytes;
        if participant.len() > name {
            return Err(format!(
                "config.participant: {} bytes; the limit is the config key limits.max_name_bytes = {name}",
                participant.len()
            ));
        }
        if metadata.len() > self.max_metadata_entries {
            return Err(format!(
                "config.metadata: {} entries; the limit is the config key limits.max_metadata_entries = {}",
                metadata.len(),
                self.max_metadata_entries
            ));
        }
        for (key, value) in metadata {
            if key.len() > name {
                return Err(format!(
                    "config.metadata: a key of {} bytes; the limit is the config key limits.max_name_bytes = {name}",
                    key.len()
                ));
            }
            if value.len() > self.max_metadata_value_bytes {
                return Err(format!(
                    "config.metadata[{key:?}]: {} bytes; the limit is the config key limits.max_metadata_value_bytes = {}",
                    value.len(),
                    self.max_metadata_value_bytes
                ));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams_per_session: 64,
            max_marker_label_bytes: 1024,
            // 64 channels x 1 kHz x 10 min.
            max_samples_per_request: 64 * 1000 * 600,
            vision_queue_frames: 2,
            max_sample_rate_hz: SignalBudget::default().max_rate_hz,
            max_channels_per_stream: SignalBudget::default().max_channels,
            max_values_held_per_stream: SignalBudget::default().max_values_held,
            max_gap_fill_values: SignalBudget::default().max_gap_fill_values,
            max_name_bytes: SignalBudget::default().max_name_bytes,
            max_metadata_entries: 64,
            max_metadata_value_bytes: 4096,
            max_live_sessions: 64,
            first_message_timeout_s: 10.0,
        }
    }
}
