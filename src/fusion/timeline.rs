//! One session's or recording's fusion: its frames and feature windows in, fused estimates
//! out. The live session and the offline analysis (`sessions analyze`, `analyze-recording`)
//! both drive this, so that they give the same estimates for the same data.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::calibrate::FusionModel;
use super::estimate::{self, Modality, SignalEstimator};
use super::fuse::{FusedEstimate, Fuser};
use crate::config::FusionConfig;
use crate::signals::features::FeatureWindow;
use crate::signals::stream::StreamSpec;
use crate::vision::FrameResult;
use crate::vision::backend::Inference;

/// What became of an accepted frame.
#[derive(Debug, Clone)]
enum FrameFate {
    /// Still with face analysis.
    Waiting,
    Analysed(Option<estimate::ModalityEstimate>),
    /// Skipped (analysis behind) or failed.
    NotAnalysed,
}

pub struct Timeline {
    fuser: Fuser,
    baseline_s: f64,
    stress_model: Option<Arc<dyn Inference>>,
    estimators: BTreeMap<String, SignalEstimator>,
    /// Accepted frames in client order, until their fate is known: the face's clock only
    /// moves on in that order, so a result that comes late is not taken for a gap.
    frames: VecDeque<(u64, f64, FrameFate)>,
    model: Option<FusionModel>,
}

impl Timeline {
    /// Hops of `hop_s` seconds; `streams` are the session's declared streams and `video`
    /// whether its frames are analysed: fusion waits for those modalities from the start.
    /// `stress_model`: synheart-emotion's stress model as the cardiac encoder (see
    /// `fusion::stress`); None for the rules.
    pub fn new(
        config: &FusionConfig,
        hop_s: f64,
        streams: &[StreamSpec],
        video: bool,
        stress_model: Option<Arc<dyn Inference>>,
    ) -> Self {
        let mut fuser = Fuser::new(config, hop_s);
        for s in streams {
            if let Some(m) = Modality::of_kind(s.kind) {
                fuser.expect(m);
            }
        }
        if video {
            fuser.expect(Modality::Face);
        }
        Self {
            fuser,
            baseline_s: config.baseline_s,
            stress_model,
            estimators: BTreeMap::new(),
            frames: VecDeque::new(),
            model: None,
        }
    }

    /// A frame was accepted and handed to face analysis.
    pub fn frame_accepted(&mut self, client_seq: u64, time: f64) {
        self.frames
            .push_back((client_seq, time, FrameFate::Waiting));
    }

    /// A frame's faces.
    pub fn frame_analysed(&mut self, client_seq: u64, result: &FrameResult) {
        self.settle(client_seq, |time| {
            FrameFate::Analysed(estimate::face(result, time))
        });
    }

    /// A frame that was not analysed (skipped or failed).
    pub fn frame_not_analysed(&mut self, client_seq: u64) {
        self.settle(client_seq, |_| FrameFate::NotAnalysed);
    }

    fn settle(&mut self, client_seq: u64, fate: impl FnOnce(f64) -> FrameFate) {
        if let Some(entry) = self.frames.iter_mut().find(|f| f.0 == client_seq) {
            entry.2 = fate(entry.1);
        }
        while let Some((_, time, fate)) = self.frames.front() {
            match fate {
                FrameFate::Waiting => break,
                FrameFate::Analysed(e) => self.fuser.push_frame(*time, e.clone(), true),
                FrameFate::NotAnalysed => self.fuser.push_frame(*time, None, false),
            }
            self.frames.pop_front();
        }
    }

    /// A completed feature window.
    pub fn window(&mut self, w: &FeatureWindow) {
        let Some(modality) = Modality::of_kind(w.kind) else {
            return;
        };
        let (baseline_s, stress_model) = (self.baseline_s, &self.stress_model);
        let estimate = self
            .estimators
            .entry(w.stream_id.clone())
            .or_insert_with(|| {
                SignalEstimator::new(baseline_s).with_stress_model(stress_model.clone())
            })
            .estimate(w);
        self.fuser
            .push_signal(modality, 0.5 * (w.start_time + w.end_time), estimate);
    }

    /// Every hop now complete.
    pub fn advance(&mut self) -> Vec<FusedEstimate> {
        let mut out = self.fuser.advance();
        self.calibrated(&mut out);
        out
    }

    /// Every remaining hop, at the end.
    pub fn finish(&mut self) -> Vec<FusedEstimate> {
        while let Some((seq, ..)) = self.frames.front().cloned() {
            self.frame_not_analysed(seq);
        }
        let mut out = self.fuser.finish();
        self.calibrated(&mut out);
        out
    }

    /// From now on, label distributions come from `model`.
    pub fn calibrate(&mut self, model: FusionModel) {
        self.model = Some(model);
    }

    fn calibrated(&self, estimates: &mut [FusedEstimate]) {
        if let Some(model) = &self.model {
            estimates.iter_mut().for_each(|e| model.apply(e));
        }
    }

    /// Estimates dropped because they came after their hop was reported.
    pub fn late(&self) -> u64 {
        self.fuser.late()
    }
}
