//! Language-model backends behind one small trait, so the Explain path does not care
//! whether tokens come from a model in this process or from a server over HTTP.
//! Two backends: `candle` runs a GGUF chat model in this process; `openai` talks to any
//! OpenAI-compatible server (llama.cpp's llama-server, Ollama, vLLM).

#[cfg(feature = "candle")]
pub mod candle;
pub mod openai;

use std::ops::ControlFlow;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An encoded image (PNG or JPEG bytes) with its MIME type.
    Image {
        mime: &'static str,
        bytes: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// "system", "user" or "assistant".
    pub role: &'static str,
    pub parts: Vec<Part>,
}

impl Message {
    pub fn text(role: &'static str, text: impl Into<String>) -> Self {
        Self {
            role,
            parts: vec![Part::Text(text.into())],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    /// 0 = greedy.
    pub temperature: f32,
    /// `(0,1]`.
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// The answer's shape, when it must be structured.
    pub response: Option<ResponseFormat>,
    /// Repetition guard: a token that would repeat an n-gram of this many tokens already
    /// generated is not sampled (0: off). Small models can loop on one sentence.
    pub no_repeat_ngram: usize,
}

/// What the answer must look like.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFormat {
    /// A JSON schema. Backends that control decoding (candle) let the model write only
    /// text that matches it; HTTP backends pass it to the server (`response_format`),
    /// which may or may not hold the model to it. The answer is validated either way.
    pub schema: serde_json::Value,
    /// The values a `"label"` field may take. At each such field the backend reports the
    /// model's probability of each (see [`Generation::label_probabilities`]).
    pub labels: Vec<String>,
}

/// The model's probabilities for each allowed label at one `"label"` field.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    /// In the order of [`ResponseFormat::labels`]; they sum to 1.
    pub probabilities: Vec<f32>,
    /// "sequence": each label's whole continuation (its tokens and the closing quote)
    /// scored and normalised over the set; "first-token": each label's first token only
    /// (a backend that cannot score continuations).
    pub method: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    /// As the backend counted them (0 when it did not say).
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub time_to_first_token: Duration,
    pub total: Duration,
    /// True when the caller stopped it.
    pub cancelled: bool,
    /// True when generation stopped at `max_tokens`.
    pub hit_max_tokens: bool,
    /// At each `"label"` field of a structured answer, in order, the label probabilities
    /// (empty when the backend cannot give them).
    pub label_probabilities: Vec<LabelScores>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LlmError {
    #[error("backend {backend} is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    #[error("backend {backend} did not answer within {seconds:.0} s")]
    Timeout { backend: String, seconds: f64 },
    #[error("backend {backend} answered something unexpected: {reason}")]
    Protocol { backend: String, reason: String },
    #[error("backend {backend} cannot do this: {reason}")]
    Unsupported { backend: String, reason: String },
    #[error(
        "backend {backend}: the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the model's context of {context} tokens"
    )]
    TooLong {
        backend: String,
        prompt_tokens: usize,
        max_tokens: usize,
        context: usize,
    },
    #[error("backend {backend} failed while running the model: {reason}")]
    Model { backend: String, reason: String },
}

/// A chat model that streams its tokens. `on_token` gets each piece of text as it arrives
/// and returns `Break` to stop generation (the backend then stops promptly and returns what
/// it has, with `cancelled` set). An empty piece is a probe, not text: backends send one
/// between long steps (reading a long prompt) to learn whether to go on.
pub trait ChatBackend: Send + Sync {
    /// "openai" or "candle".
    fn name(&self) -> &str;
    fn model(&self) -> &str;
    /// Whether the model takes images.
    fn accepts_images(&self) -> bool;
    fn generate(
        &self,
        request: &ChatRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError>;

    /// Whether a response schema is enforced while decoding (true) or only passed on.
    fn constrains_output(&self) -> bool {
        false
    }

    /// Checks, before anything is generated, that a response schema can be used with this
    /// model; Err(Unsupported) names what cannot (a label the vocabulary cannot spell).
    fn check_response(&self, _response: &ResponseFormat) -> Result<(), LlmError> {
        Ok(())
    }
}
