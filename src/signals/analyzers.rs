//! The analyzers of a request's or a session's streams: one [`StreamAnalyzer`] per
//! described stream, chunks routed by stream id, and every stream flushed in the order it
//! was described. `AnalyzeSignals` and the live session share it, so a session's windows are
//! exactly the ones `AnalyzeSignals` computes from the same chunks.

use std::collections::HashMap;

use super::features::{FeatureWindow, StreamWarning};
use super::stream::{AnalysisConfig, Chunk, StreamAnalyzer, StreamSpec};

/// A block of consecutive samples of one stream, as a client sends it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalChunk {
    pub stream_id: String,
    /// Time of the first sample, client clock, s.
    pub first_timestamp: f64,
    /// Sample-major interleaved values, in the channels' units.
    pub samples: Vec<f32>,
    /// Per-sample times, client clock, s; empty when the client sent none.
    pub timestamps: Vec<f64>,
    /// Index of the first sample since the stream began, when the client tracks it.
    pub first_sample_index: Option<u64>,
}

/// What one accepted chunk gave.
pub struct Pushed {
    pub windows: Vec<FeatureWindow>,
    pub warnings: Vec<StreamWarning>,
    /// Samples per channel in the chunk.
    pub samples: u64,
}

pub struct Analyzers {
    by_id: HashMap<String, StreamAnalyzer>,
    order: Vec<String>,
    /// The request field that describes the streams, for error messages.
    field: &'static str,
}

impl Analyzers {
    /// One analyzer per stream; Err names the stream and what is wrong with it.
    pub fn new(
        streams: &[StreamSpec],
        config: &AnalysisConfig,
        field: &'static str,
    ) -> Result<Self, String> {
        let mut by_id = HashMap::new();
        let mut order = Vec::new();
        for s in streams {
            if s.id.is_empty() {
                return Err(format!("{field}: every stream needs a stream_id"));
            }
            let analyzer = StreamAnalyzer::new(s.clone(), config).map_err(|e| e.to_string())?;
            if by_id.insert(s.id.clone(), analyzer).is_some() {
                return Err(format!("{field}: stream_id {:?} is described twice", s.id));
            }
            order.push(s.id.clone());
        }
        Ok(Self {
            by_id,
            order,
            field,
        })
    }

    /// Validates a chunk and pushes it to its stream; a rejected chunk changes nothing.
    /// The error names the problem; the caller says where the chunk was.
    pub fn push(&mut self, c: &SignalChunk) -> Result<Pushed, String> {
        let field = self.field;
        let analyzer = self.by_id.get_mut(&c.stream_id).ok_or_else(|| {
            format!(
                "unknown stream_id {:?}; describe it in {field}",
                c.stream_id
            )
        })?;
        let samples: Vec<f64> = c.samples.iter().map(|&v| v as f64).collect();
        let (windows, warnings) = analyzer
            .push(Chunk {
                first_timestamp: c.first_timestamp,
                samples: &samples,
                timestamps: &c.timestamps,
                first_sample_index: c.first_sample_index,
            })
            .map_err(|e| e.to_string())?;
        Ok(Pushed {
            windows,
            warnings,
            samples: (c.samples.len() / analyzer.spec().channels.len().max(1)) as u64,
        })
    }

    /// Every stream's last (possibly shorter) window, in description order.
    pub fn finish(&mut self) -> Vec<FeatureWindow> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.get_mut(id).and_then(|a| a.finish()))
            .collect()
    }
}

/// A whole recording's windows and warnings: every stream analysed from its first chunk
/// and flushed at the end. A warning comes with the index of the chunk that raised it.
pub struct Analysed {
    pub windows: Vec<FeatureWindow>,
    pub warnings: Vec<(usize, StreamWarning)>,
}

/// Analyses a complete set of chunks (AnalyzeSignals). Err names the chunk by index.
pub fn analyze(
    streams: &[StreamSpec],
    chunks: &[SignalChunk],
    config: &AnalysisConfig,
) -> Result<Analysed, String> {
    if streams.is_empty() {
        return Err("streams: describe at least one stream".into());
    }
    let mut analyzers = Analyzers::new(streams, config, "streams")?;
    // The whole request's windows, before any is computed (each chunk is also checked).
    let ahead: u64 = chunks
        .iter()
        .filter_map(|c| {
            analyzers
                .by_id
                .get(&c.stream_id)
                .map(|a| a.windows_for(c.samples.len()))
        })
        .sum();
    let limit = config.budget.max_windows_per_request;
    if ahead > limit {
        return Err(format!(
            "chunks: about {ahead} feature windows in this request, over the config key limits.max_windows_per_request = {limit}; send fewer samples per request or a longer hop_s"
        ));
    }
    let mut windows = Vec::new();
    let mut warnings = Vec::new();
    for (index, c) in chunks.iter().enumerate() {
        let pushed = analyzers
            .push(c)
            .map_err(|e| format!("chunks[{index}]: {e}"))?;
        windows.extend(pushed.windows);
        warnings.extend(pushed.warnings.into_iter().map(|w| (index, w)));
    }
    windows.extend(analyzers.finish());
    Ok(Analysed { windows, warnings })
}
