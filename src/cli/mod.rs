pub mod analyze;
pub mod signals;
pub mod video;
