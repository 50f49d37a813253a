//! Offline analysis: recorded data through the live session's own pipeline, in the order
//! the session received it: each frame through one face tracker, each chunk through the
//! stream analyzers, everything into the session's fusion timeline. `affectd sessions
//! analyze` replays a recorded session (so that, with its settings unchanged, it reproduces
//! what the session sent live), and `affectd analyze-recording` a video with an XDF file.

use std::sync::Arc;

use image::RgbImage;

use crate::config::Config;
use crate::fusion::calibrate::FusionModel;
use crate::fusion::{FusedEstimate, Timeline};
use crate::session::SessionConfig;
use crate::signals::analyzers::{Analyzers, SignalChunk};
use crate::signals::features::{FeatureWindow, StreamWarning};
use crate::vision::backend::Inference;
use crate::vision::dynamics::{ExpressionEvent, FaceDynamics};
use crate::vision::{AnalyzeOptions, FaceModels, FrameResult, Tracker};

/// What the replay produces, in the order a live session would send it.
#[derive(Debug, Clone)]
pub enum Output {
    Faces {
        client_seq: u64,
        /// Client clock, s.
        timestamp: f64,
        result: Arc<FrameResult>,
    },
    /// An expression episode started or ended (after the frame that settled it).
    Expression(ExpressionEvent),
    Window(FeatureWindow),
    Fused(FusedEstimate),
    SignalWarning(StreamWarning),
    /// A frame that could not be analysed.
    FrameFailed {
        client_seq: u64,
        message: String,
    },
}

pub struct Replay {
    face: Option<(FaceModels, Tracker, AnalyzeOptions, FaceDynamics)>,
    analyzers: Analyzers,
    timeline: Timeline,
}

impl Replay {
    /// A replay of a session set up as `session` says, with this server configuration's
    /// defaults and fusion settings; frames are analysed when `face_models` are given, and
    /// the cardiac encoder is the stress model when `stress_model` is.
    pub fn new(
        config: &Config,
        session: &SessionConfig,
        face_models: Option<FaceModels>,
        stress_model: Option<Arc<dyn Inference>>,
    ) -> Result<Self, String> {
        let analyzers = Analyzers::new(&session.streams, &session.analysis, "streams")?;
        let face = match face_models {
            Some(models) => {
                let options = session.frame.options(&config.vision)?;
                let detect_every = session
                    .detect_every
                    .unwrap_or(config.vision.detect_every_n_frames);
                Some((
                    models,
                    Tracker::new(detect_every),
                    options,
                    FaceDynamics::new(&config.expression),
                ))
            }
            None => None,
        };
        let timeline = Timeline::new(
            &config.fusion,
            session.analysis.hop_s,
            &session.streams,
            face.is_some(),
            stress_model,
        );
        Ok(Self {
            face,
            analyzers,
            timeline,
        })
    }

    /// From here on, label distributions come from `model`.
    pub fn calibrate(&mut self, model: FusionModel) {
        self.timeline.calibrate(model);
    }

    /// A frame, analysed now.
    pub fn frame(&mut self, client_seq: u64, timestamp: f64, image: &RgbImage) -> Vec<Output> {
        let mut out = Vec::new();
        let Some((models, tracker, options, dynamics)) = &mut self.face else {
            return out;
        };
        self.timeline.frame_accepted(client_seq, timestamp);
        match tracker.process(models, image, options) {
            Ok(mut result) => {
                let episodes = dynamics.observe(timestamp, &mut result);
                self.timeline.frame_analysed(client_seq, &result);
                out.push(Output::Faces {
                    client_seq,
                    timestamp,
                    result: Arc::new(result),
                });
                out.extend(episodes.into_iter().map(Output::Expression));
            }
            Err(e) => {
                self.timeline.frame_not_analysed(client_seq);
                out.push(Output::FrameFailed {
                    client_seq,
                    message: format!("frame {client_seq}: face analysis failed: {e}"),
                });
            }
        }
        self.fuse(&mut out);
        out
    }

    /// A chunk of one stream; Err names what is wrong with it (as a live session would
    /// refuse it).
    pub fn chunk(&mut self, chunk: &SignalChunk) -> Result<Vec<Output>, String> {
        let pushed = self.analyzers.push(chunk)?;
        let mut out: Vec<Output> = pushed
            .warnings
            .into_iter()
            .map(Output::SignalWarning)
            .collect();
        for w in pushed.windows {
            self.timeline.window(&w);
            out.push(Output::Window(w));
        }
        self.fuse(&mut out);
        Ok(out)
    }

    fn fuse(&mut self, out: &mut Vec<Output>) {
        out.extend(self.timeline.advance().into_iter().map(Output::Fused));
    }

    /// The last windows and estimates.
    pub fn finish(mut self) -> Vec<Output> {
        let mut out: Vec<Output> = Vec::new();
        if let Some((_, _, _, dynamics)) = &mut self.face {
            out.extend(dynamics.finish().into_iter().map(Output::Expression));
        }
        for w in self.analyzers.finish() {
            self.timeline.window(&w);
            out.push(Output::Window(w));
        }
        out.extend(self.timeline.finish().into_iter().map(Output::Fused));
        out
    }
}
