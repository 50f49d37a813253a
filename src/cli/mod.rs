pub mod analyze;
pub mod video;
