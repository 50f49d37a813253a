//! One schema per kind of data, read and written in one place:
//! - `wire`: domain results as the `affect.v1` messages clients receive and recordings
//!   store;
//! - `faces_csv` and `features_csv`: the face and feature-window tables that
//!   `affectd analyze`, `affectd signals` and the session export all write;
//! - `faces_json`: a frame's faces as one JSON object (`affectd analyze`'s JSON lines);
//! - `xdf`: XDF 1.0 reading (LabRecorder files) and writing (session exports).

pub mod faces_csv;
pub mod faces_json;
pub mod features_csv;
pub mod wire;
pub mod xdf;
