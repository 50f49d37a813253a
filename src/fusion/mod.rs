//! Multimodal fusion: per-modality estimates with reliabilities (`estimate.rs`), fused on
//! one timeline with latency alignment, reliability weights and smoothing (`fuse.rs`,
//! `fusion-v1`).

pub mod estimate;
pub mod fuse;

pub use estimate::{Modality, ModalityEstimate, SignalEstimator};
pub use fuse::{Contribution, FusedEstimate, Fuser};
