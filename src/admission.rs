//! Admission and limits: what one request or session may ask of the server, in one place,
//! so that every limit is found, documented and (with the hardening work) configured here.

/// The limits the core enforces on client input.
#[derive(Debug, Clone, PartialEq)]
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams_per_session: 64,
            max_marker_label_bytes: 1024,
            // 64 channels x 1 kHz x 10 min.
            max_samples_per_request: 64 * 1000 * 600,
            vision_queue_frames: 2,
        }
    }
}
