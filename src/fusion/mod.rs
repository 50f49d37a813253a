//! Multimodal fusion: per-modality estimates with reliabilities (`estimate.rs`), fused on
//! one timeline with latency alignment, reliability weights and smoothing (`fuse.rs`,
//! `fusion-v1`), per session or recording (`timeline.rs`), optionally calibrated to a
//! participant (`calibrate.rs`).

pub mod calibrate;
pub mod estimate;
pub mod fuse;
pub mod stress;
pub mod timeline;

pub use estimate::{Modality, ModalityEstimate, SignalEstimator};
pub use fuse::{Contribution, FusedEstimate, Fuser};
pub use timeline::Timeline;
