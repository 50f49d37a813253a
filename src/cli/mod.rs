pub mod analyze;
pub mod explain;
pub mod signals;
pub mod video;
