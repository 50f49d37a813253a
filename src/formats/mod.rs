//! One schema per kind of data, read and written in one place:
//! - `wire`: domain results as the `affect.v1` messages clients receive and recordings
//!   store;
//! - `from_wire`: wire requests (and recorded configurations) into domain types;
//! - `faces_csv` and `features_csv`: the face and feature-window tables that
//!   `affectd analyze`, `affectd signals` and the session export all write;
//! - `fused_csv`: the fused-estimate table (session export, offline analysis);
//! - `faces_json`: a frame's faces as one JSON object (`affectd analyze`'s JSON lines);
//! - `events`: expression episodes as JSON lines, a CSV table and words;
//! - `labels`: labelled blocks from markers or a labels CSV (training and calibration);
//! - `summary_plot`: the PNG summary of an offline analysis;
//! - `xdf`: XDF 1.0 reading (LabRecorder files) and writing (session exports).

pub mod events;
pub mod explanation_json;
pub mod faces_csv;
pub mod faces_json;
pub mod features_csv;
pub mod from_wire;
pub mod fused_csv;
pub mod labels;
pub mod summary_plot;
pub mod timeline;
pub mod wire;
pub mod xdf;
