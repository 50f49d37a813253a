//! affectd: a streaming affective-computing server.
//!
//! Data flows one way: transports (`server/` for gRPC, the CLI in `main.rs` and `cli/`)
//! over a transport-free core (`engine`, `session/`, `explain/`, `admission`, `replay`,
//! with its `error`) over domain libraries (`vision/`, `signals/`, `fusion/`, `prompt/`,
//! `llm/`, `store/`, `formats/`, `models/`).

pub mod admission;
pub mod auth;
pub mod config;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod explain;
pub mod formats;
pub mod fusion;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod llm;
pub mod metrics;
pub mod models;
pub mod onnx;
pub mod prompt;
pub mod replay;
pub mod server;
pub mod session;
pub mod signals;
pub mod store;
pub mod vision;

/// Generated affect.v1 wire types and services.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("affect.v1");
    /// Encoded descriptors of every affect.v1 file, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("affect_v1_descriptor");
}
