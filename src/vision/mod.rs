//! Face analysis: detection, 478-point mesh, head pose, blendshapes, AU estimates,
//! expression, tracking, and SoVTP marks. Plain library code over plain types; the gRPC
//! server and the CLI are front ends.

pub mod action_units;
pub mod backend;
pub mod blendshapes;
pub mod detector;
pub mod export;
pub mod expression;
pub mod geometry;
pub mod image;
pub mod marks;
pub mod mesh;
pub mod pipeline;

pub use pipeline::{
    AnalyzeOptions, FaceModels, FaceResult, FrameResult, PipelinedTracker, Tracker,
};
