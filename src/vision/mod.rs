//! Face analysis: detection, 478-point mesh, head pose, blendshapes, AU estimates,
//! expression, tracking, and SoVTP marks. Plain library code over plain types; the gRPC
//! server and the CLI are front ends.

pub mod action_units;
pub mod analysis;
pub mod backend;
pub mod blendshapes;
pub mod detector;
pub mod dynamics;
pub mod expression;
pub mod geometry;
pub mod image;
pub mod marks;
pub mod mesh;
pub mod tracker;

pub use analysis::{AnalyzeOptions, FaceModels, FaceResult, FrameResult, FrameSettings};
pub use tracker::{PipelinedTracker, Tracker};
