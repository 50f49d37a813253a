pub mod analyze;
pub mod explain;
pub mod offline;
pub mod sessions;
pub mod signals;
pub mod video;
