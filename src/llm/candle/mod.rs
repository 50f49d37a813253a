//! The in-process backend: a quantized GGUF chat model run by candle on the CPU.
//!
//! - Architectures: Qwen2 ([`qwen2`]: candle-transformers' `quantized_qwen2` restructured
//!   for decoding speed) and Gemma 3 ([`gemma3`],
//!   ours: candle's module differs from llama.cpp, see there), chosen by the file's
//!   `general.architecture`; and one vision-language model, moondream2 ([`moondream`]),
//!   which reads the marked frame.
//! - The tokenizer and chat template come from the GGUF itself ([`tokenizer`],
//!   [`chat_template`]).
//! - Decoding: KV cache, greedy or temperature + top-p with a seed, stop sequences, max
//!   tokens, tokens streamed as they are sampled, a repetition guard, and answers
//!   constrained to a JSON schema with llguidance (`guided.rs`), with the model's
//!   probability of every allowed label at each `"label"` field.
//!
//! The model loads on first use and then stays in memory. One generation runs at a time
//! (the weights and KV cache are shared); later requests wait their turn. Threads: candle
//! uses `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else every core).

pub mod chat_template;
pub mod gemma3;
pub mod guided;
pub mod moondream;
pub mod q8x8;
pub mod qwen2;
pub mod repack;
pub mod tokenizer;

use std::fs::File;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

use self::gemma3::Gemma3;
use self::moondream::Moondream;
use self::qwen2::Qwen2;

use self::chat_template::{ChatTemplate, Segment};
use self::tokenizer::{Tokenizer, Utf8Stream};
use super::{ChatBackend, ChatRequest, Generation, LabelScores, LlmError, Part, ResponseFormat};

const BACKEND: &str = "candle";

trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

/// Prompt tokens per forward pass by default. Smaller passes skip most of the causal
/// mask's hidden half of the attention scores and keep a pass's activations in the
/// cache; measured with `affectd bench-llm --chunk N` (Qwen2.5 0.5B Q4_K_M, 830 prompt
/// tokens, 2 threads, 3 alternating rounds, warm runs): 128 tokens 241-257 tok/s, 256
/// 217-236, 512 209-222 (64 and 32 were slower again: the weights pass more often).
pub const DEFAULT_PREFILL_CHUNK: usize = 128;

#[derive(Debug, Clone)]
pub struct CandleConfig {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// What responses report as the model (a manifest id or the file name).
    pub model_name: String,
    /// Prompt tokens per forward pass while reading the prompt. Between chunks the
    /// backend checks whether the caller is still there.
    pub prefill_chunk: usize,
}

enum Weights {
    Qwen2(Box<Qwen2>),
    Gemma3(Gemma3),
    Moondream(Box<Moondream>),
}

impl Weights {
    /// Logits for the last position of `tokens`, which start at `position`.
    fn forward(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Vec<f32>> {
        let input = || Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0);
        let logits = match self {
            Self::Qwen2(m) => return m.forward(tokens, position),
            Self::Gemma3(m) => m.forward(&input()?, position)?,
            // candle's Phi masks a multi-token pass only from an empty cache: forced text
            // after the prompt is read one token at a time.
            Self::Moondream(m) if position > 0 && tokens.len() > 1 => {
                let mut logits = Vec::new();
                for (i, &t) in tokens.iter().enumerate() {
                    logits = m.forward(&[t], position + i)?;
                }
                return Ok(logits);
            }
            Self::Moondream(m) => return m.forward(tokens, position),
        };
        logits
            .squeeze(0)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()
    }
}

/// A prompt as the model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub tokens: Vec<u32>,
    /// An encoded image (PNG or JPEG) the model reads right after the first token (for
    /// moondream: after BOS, before the question). Only vision-language models take one.
    pub image: Option<Vec<u8>>,
}

pub struct Loaded {
    weights: Weights,
    pub tokenizer: std::sync::Arc<Tokenizer>,
    /// Constrained decoding's index of the vocabulary, built on first use.
    guide: Option<guided::Guide>,
    pub template: ChatTemplate,
    pub architecture: String,
    pub context_length: usize,
}

fn model_error(reason: impl std::fmt::Display) -> LlmError {
    LlmError::Model {
        backend: BACKEND.into(),
        reason: reason.to_string(),
    }
}

impl Loaded {
    pub fn load(path: &std::path::Path) -> Result<Self, LlmError> {
        let unavailable = |reason: String| LlmError::Unavailable {
            backend: BACKEND.into(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| {
            unavailable(format!(
                "cannot open the model {}: {e} (fetch it with `affectd models fetch`, or set [llm] candle_model)",
                path.display()
            ))
        })?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| unavailable(format!("{} is not a readable GGUF: {e}", path.display())))?;
        if moondream::is_moondream(&content) {
            return Self::load_moondream(path, &content);
        }
        let text = |key: &str| {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_string().ok().cloned())
        };
        let architecture = text("general.architecture").ok_or_else(|| {
            unavailable(format!(
                "{} has no general.architecture in its metadata",
                path.display()
            ))
        })?;
        let context_length = content
            .metadata
            .get(&format!("{architecture}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(2048) as usize;
        let tokenizer = Tokenizer::from_gguf(&content)
            .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let template = ChatTemplate::for_model(
            text("tokenizer.chat_template").as_deref(),
            &architecture,
            &tokenizer.bos_text,
            &tokenizer.eos_text,
        )
        .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        let device = Device::Cpu;
        if !matches!(architecture.as_str(), "qwen2" | "gemma3") {
            return Err(unavailable(format!(
                "{} is a {architecture:?} model; the candle backend runs qwen2 and gemma3 GGUFs (use the openai backend with llama.cpp for others)",
                path.display()
            )));
        }
        let mut content = content;
        let load_error =
            |e: candle_core::Error| unavailable(format!("loading {}: {e}", path.display()));
        // Tensors come from memory when Q5_0 ones were widened, else from the file.
        let mut reader: Box<dyn ReadSeek> =
            match repack::widen_q5_0(&mut content, &mut file).map_err(load_error)? {
                Some((blob, _)) => Box::new(blob),
                None => Box::new(file),
            };
        let weights = if architecture == "qwen2" {
            Weights::Qwen2(Box::new(
                Qwen2::from_gguf(content, &mut reader).map_err(load_error)?,
            ))
        } else {
            Weights::Gemma3(Gemma3::from_gguf(content, &mut reader, &device).map_err(load_error)?)
        };
        Ok(Self {
            weights,
            tokenizer: std::sync::Arc::new(tokenizer),
            guide: None,
            template,
            architecture,
            context_length,
        })
    }

    /// moondream2: the GGUF holds the weights (and, for files written by affectd, the
    /// hyper-parameters); the tokenizer is its own metadata when it has one, else the
    /// model's `tokenizer.json` beside it.
    fn load_moondream(
        path: &std::path::Path,
        content: &gguf_file::Content,
    ) -> Result<Self, LlmError> {
        let unavailable = |reason: String| LlmError::Unavailable {
            backend: BACKEND.into(),
            reason: format!("{}: {reason}", path.display()),
        };
        let mut tokenizer = if content.metadata.contains_key("tokenizer.ggml.model") {
            Tokenizer::from_gguf(content).map_err(|e| unavailable(e.to_string()))?
        } else {
            let beside = tokenizer_json_beside(path).ok_or_else(|| {
                unavailable(format!(
                    "this moondream GGUF carries no tokenizer; put moondream2's tokenizer.json beside it (as {} or tokenizer.json in the same folder)",
                    path.with_extension("tokenizer.json").display()
                ))
            })?;
            let json = std::fs::read_to_string(&beside)
                .map_err(|e| unavailable(format!("reading {}: {e}", beside.display())))?;
            Tokenizer::from_tokenizer_json(&json)
                .map_err(|e| unavailable(format!("{}: {e}", beside.display())))?
        };
        // The sequence always starts with BOS (`<|endoftext|>`), image or not.
        if tokenizer.bos.is_none() {
            return Err(unavailable(
                "the tokenizer has no <|endoftext|> token to start the sequence with".into(),
            ));
        }
        tokenizer.add_bos = true;
        let template = ChatTemplate::for_model(None, "moondream", "", "")
            .map_err(|e| unavailable(e.to_string()))?;
        let model =
            Moondream::from_gguf(content, path, tokenizer.vocab_size()).map_err(unavailable)?;
        Ok(Self {
            context_length: model.context_length(),
            weights: Weights::Moondream(Box::new(model)),
            tokenizer: std::sync::Arc::new(tokenizer),
            guide: None,
            template,
            architecture: "moondream".into(),
        })
    }

    /// Whether the model reads images.
    pub fn takes_images(&self) -> bool {
        matches!(self.weights, Weights::Moondream(_))
    }

    /// Positions an image takes in the sequence (0 for text-only models).
    pub fn image_tokens(&self) -> usize {
        match &self.weights {
            Weights::Moondream(m) => m.image_tokens(),
            _ => 0,
        }
    }

    /// The prompt's token ids (see [`Loaded::prompt`]); an error if it has an image.
    pub fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<u32>, LlmError> {
        let prompt = self.prompt(request)?;
        if prompt.image.is_some() {
            return Err(LlmError::Unsupported {
                backend: BACKEND.into(),
                reason: "this call takes text-only prompts".into(),
            });
        }
        Ok(prompt.tokens)
    }

    /// The prompt: BOS if the model wants one, the template's text with special tokens,
    /// the message contents without, and the image if the model takes one.
    pub fn prompt(&self, request: &ChatRequest) -> Result<Prompt, LlmError> {
        let mut messages = Vec::with_capacity(request.messages.len());
        let mut image = None;
        for message in &request.messages {
            let mut text = String::new();
            for part in &message.parts {
                match part {
                    Part::Text(t) => text.push_str(t),
                    Part::Image { bytes, .. } if self.takes_images() && image.is_none() => {
                        image = Some(bytes.clone());
                    }
                    Part::Image { .. } => {
                        let reason = if self.takes_images() {
                            format!("the {} model reads one image per prompt", self.architecture)
                        } else {
                            format!(
                                "the {} model takes text only; send the request without the image",
                                self.architecture
                            )
                        };
                        return Err(LlmError::Unsupported {
                            backend: BACKEND.into(),
                            reason,
                        });
                    }
                }
            }
            messages.push((message.role, text));
        }
        let borrowed: Vec<(&str, &str)> = messages.iter().map(|(r, t)| (*r, t.as_str())).collect();
        let segments = self.template.render(&borrowed).map_err(model_error)?;
        let mut ids = Vec::new();
        if self.tokenizer.add_bos
            && let Some(bos) = self.tokenizer.bos
        {
            ids.push(bos);
        }
        for segment in segments {
            let (text, special) = match &segment {
                Segment::Template(t) => (t, true),
                Segment::Content(t) => (t, false),
            };
            let mut part = self.tokenizer.encode(text, special).map_err(model_error)?;
            // A template that writes the BOS token itself (Gemma's does) must not get two.
            if ids.len() == 1 && part.first() == self.tokenizer.bos.as_ref() {
                part.remove(0);
            }
            ids.extend(part);
        }
        Ok(Prompt { tokens: ids, image })
    }

    /// The logits after reading `tokens` from an empty cache, in one pass (for parity
    /// checks against llama.cpp).
    pub fn last_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, LlmError> {
        self.prompt_logits(&Prompt {
            tokens: tokens.to_vec(),
            image: None,
        })
    }

    /// The logits after reading `prompt`, image included, from an empty cache.
    pub fn prompt_logits(&mut self, prompt: &Prompt) -> Result<Vec<f32>, LlmError> {
        self.prefill(prompt, prompt.tokens.len(), &mut || true)?
            .ok_or_else(|| model_error("reading the prompt was stopped"))
    }

    /// For speed comparisons (benches/compare_llm.py): reads `prompt` in chunks, then
    /// generates exactly `tokens` greedy tokens (end-of-turn ignored, so every run does
    /// the same work). Returns the prompt time, the generation time and the tokens.
    pub fn time_greedy(
        &mut self,
        prompt: &[u32],
        tokens: usize,
        chunk: usize,
    ) -> Result<(std::time::Duration, std::time::Duration, Vec<u32>), LlmError> {
        let started = Instant::now();
        let text_only = Prompt {
            tokens: prompt.to_vec(),
            image: None,
        };
        let mut logits = self
            .prefill(&text_only, chunk, &mut || true)?
            .expect("never stopped");
        let prompt_time = started.elapsed();
        let started = Instant::now();
        let mut out = Vec::with_capacity(tokens);
        for position in prompt.len()..prompt.len() + tokens {
            let next = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i as u32)
                .unwrap_or(0);
            out.push(next);
            logits = self
                .weights
                .forward(&[next], position)
                .map_err(model_error)?;
        }
        Ok((prompt_time, started.elapsed(), out))
    }

    /// Reads `prompt` into an empty KV cache, `chunk` tokens per forward pass, asking
    /// `keep_going` between passes. Returns the logits after the last token, or None when
    /// `keep_going` said stop.
    fn prefill(
        &mut self,
        prompt: &Prompt,
        chunk: usize,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<Option<Vec<f32>>, LlmError> {
        let tokens = prompt.tokens.as_slice();
        if let Weights::Moondream(m) = &mut self.weights {
            // candle's Phi masks a multi-token pass only from an empty cache: one pass.
            let Some(image) = &prompt.image else {
                return m.forward(tokens, 0).map(Some).map_err(model_error);
            };
            let (bos, text) = tokens
                .split_first()
                .ok_or_else(|| model_error("the prompt has no tokens"))?;
            let pixels = m.pixels(image).map_err(model_error)?;
            let embeddings = m.encode_image(&pixels).map_err(model_error)?;
            if !keep_going() {
                return Ok(None);
            }
            return m
                .forward_with_image(*bos, text, &embeddings)
                .map(Some)
                .map_err(model_error);
        }
        let mut logits = Vec::new();
        let mut position = 0;
        for piece in tokens.chunks(chunk.max(1)) {
            logits = self.weights.forward(piece, position).map_err(model_error)?;
            position += piece.len();
            if position < tokens.len() && !keep_going() {
                return Ok(None);
            }
        }
        Ok(Some(logits))
    }

    /// Runs the text-only `prompt` and then samples up to `max_tokens`, streaming text to
    /// `on_token`.
    pub fn generate_from_tokens(
        &mut self,
        prompt: &[u32],
        request: &ChatRequest,
        prefill_chunk: usize,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError> {
        let prompt = Prompt {
            tokens: prompt.to_vec(),
            image: None,
        };
        self.generate_prompt(&prompt, request, prefill_chunk, on_token)
    }

    /// The grammar machinery for this model's vocabulary, built on first use.
    fn guide(&mut self) -> Result<&guided::Guide, LlmError> {
        if self.guide.is_none() {
            self.guide = Some(guided::Guide::new(self.tokenizer.clone()).map_err(model_error)?);
        }
        Ok(self.guide.as_ref().expect("built above"))
    }

    /// Checks that a structured answer's schema compiles for this vocabulary and that
    /// every label can be written with it; Err says which does not.
    pub fn check_response(&mut self, response: &ResponseFormat) -> Result<(), LlmError> {
        let unsupported = |reason: String| LlmError::Unsupported {
            backend: BACKEND.into(),
            reason,
        };
        for label in &response.labels {
            let ids = self.tokenizer.encode(label, false).unwrap_or_default();
            if ids.is_empty() || self.tokenizer.decode(&ids) != *label {
                return Err(unsupported(format!(
                    "the label {label:?} cannot be written with this model's vocabulary"
                )));
            }
        }
        self.guide()?
            .matcher(&response.schema)
            .map_err(unsupported)?;
        Ok(())
    }

    /// The probability of each label as the value of the `"label"` field that starts
    /// here: each label's tokens and the closing quote, scored one after another from
    /// the current position and normalised over the set. The KV cache after `position`
    /// is overwritten by whatever is read next, so scoring leaves no trace.
    fn label_scores(
        &mut self,
        logits: &[f32],
        position: usize,
        labels: &[String],
    ) -> Result<LabelScores, LlmError> {
        let rewinds = matches!(self.weights, Weights::Qwen2(_));
        let first = log_softmax(logits);
        let mut log_p = Vec::with_capacity(labels.len());
        for label in labels {
            let ids = self
                .tokenizer
                .encode(&format!("{label}\""), false)
                .map_err(model_error)?;
            let Some((&head, rest)) = ids.split_first() else {
                log_p.push(f64::NEG_INFINITY);
                continue;
            };
            let mut total = first[head as usize];
            if rewinds {
                let mut previous = head;
                for (i, &id) in rest.iter().enumerate() {
                    let next = self
                        .weights
                        .forward(&[previous], position + i)
                        .map_err(model_error)?;
                    total += log_softmax(&next)[id as usize];
                    previous = id;
                }
            }
            log_p.push(total);
        }
        let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = log_p.iter().map(|l| (l - top).exp()).collect();
        let sum: f64 = weights.iter().sum();
        Ok(LabelScores {
            probabilities: weights.iter().map(|w| (w / sum) as f32).collect(),
            method: if rewinds { "sequence" } else { "first-token" },
        })
    }

    /// Runs `prompt` (an image included) and then samples up to `max_tokens`, streaming
    /// text to `on_token`. Prompt token counts include the image's positions. With a
    /// response schema, only text that matches it can be sampled (`guided.rs`), forced
    /// text is read in one pass, and every `"label"` field gets the labels' probabilities.
    pub fn generate_prompt(
        &mut self,
        prompt: &Prompt,
        request: &ChatRequest,
        prefill_chunk: usize,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let max_tokens = request.max_tokens.max(1) as usize;
        if prompt.tokens.is_empty() {
            return Err(model_error("the prompt has no tokens"));
        }
        let read = prompt.tokens.len() + prompt.image.as_ref().map_or(0, |_| self.image_tokens());
        if read + max_tokens > self.context_length {
            return Err(LlmError::TooLong {
                backend: BACKEND.into(),
                prompt_tokens: read,
                max_tokens,
                context: self.context_length,
            });
        }
        let mut constraint = match &request.response {
            Some(response) => {
                let matcher = self.guide()?.matcher(&response.schema).map_err(|reason| {
                    LlmError::Unsupported {
                        backend: BACKEND.into(),
                        reason,
                    }
                })?;
                Some(guided::Constrained::new(matcher))
            }
            None => None,
        };
        let labels: &[String] = request.response.as_ref().map_or(&[], |r| &r.labels);
        // An empty piece asks whether the caller is still listening.
        let Some(mut logits) =
            self.prefill(prompt, prefill_chunk, &mut || on_token("").is_continue())?
        else {
            return Ok(cancelled(read, 0, started, String::new()));
        };
        let sampling = if request.temperature <= 0.0 {
            Sampling::ArgMax
        } else if request.top_p < 1.0 {
            Sampling::TopP {
                p: request.top_p as f64,
                temperature: request.temperature as f64,
            }
        } else {
            Sampling::All {
                temperature: request.temperature as f64,
            }
        };
        let mut sampler =
            LogitsProcessor::from_sampling(request.seed.unwrap_or(299_792_458), sampling);
        let mut out = Output::new(request);
        let mut label_probabilities = Vec::new();
        let mut hit_max_tokens = false;
        // Tokens in the cache: the prompt, then what has been generated or forced.
        let mut position = read;
        // Text the grammar forces before anything is sampled (the answer's opening).
        let opening = constraint.as_mut().map_or(Vec::new(), |c| c.forced());
        if !opening.is_empty() {
            for &id in &opening {
                if out.push(&self.tokenizer, id, true, on_token).is_break() {
                    return Ok(out.cancelled(read, started));
                }
            }
            logits = self
                .weights
                .forward(&opening, position)
                .map_err(model_error)?;
            position += opening.len();
        }
        loop {
            if out.stopped || constraint.as_ref().is_some_and(|c| c.is_stopped()) {
                break;
            }
            if out.generated >= max_tokens {
                hit_max_tokens = true;
                break;
            }
            if !labels.is_empty() && out.text.ends_with("\"label\":\"") {
                label_probabilities.push(self.label_scores(&logits, position, labels)?);
            }
            if let Some(c) = &mut constraint {
                c.mask(&mut logits).map_err(model_error)?;
            }
            repetition_guard(&mut logits, &out.tokens, request.no_repeat_ngram);
            let remaining = max_tokens - out.generated;
            let next = match closing_token(&self.tokenizer, &logits, remaining, &constraint) {
                Some(id) => id,
                None => sampler
                    .sample(&Tensor::new(logits.as_slice(), &Device::Cpu).map_err(model_error)?)
                    .map_err(model_error)?,
            };
            out.generated += 1;
            out.first_token_at.get_or_insert_with(|| started.elapsed());
            if self.tokenizer.end_of_generation.contains(&next) {
                break;
            }
            if out.push(&self.tokenizer, next, false, on_token).is_break() {
                return Ok(out.cancelled(read, started));
            }
            // The sampled token and whatever the grammar forces after it, read in one pass.
            let mut batch = vec![next];
            if let Some(c) = &mut constraint {
                let forced = c.consume(next).map_err(model_error)?;
                for &id in &forced {
                    if out.push(&self.tokenizer, id, true, on_token).is_break() {
                        return Ok(out.cancelled(read, started));
                    }
                }
                batch.extend(forced);
                if c.is_stopped() {
                    break;
                }
            }
            if out.stopped {
                break;
            }
            logits = self
                .weights
                .forward(&batch, position)
                .map_err(model_error)?;
            position += batch.len();
        }
        out.finish(on_token)?;
        if out.cancelled_at_end {
            return Ok(out.cancelled(read, started));
        }
        Ok(Generation {
            prompt_tokens: read as u32,
            generated_tokens: out.generated as u32,
            time_to_first_token: out.first_token_at.unwrap_or_else(|| started.elapsed()),
            total: started.elapsed(),
            cancelled: false,
            hit_max_tokens,
            label_probabilities,
            text: out.text,
        })
    }
}

/// When this few tokens are left, a structured answer is steered to its end: a closing
/// quote, bracket or brace is taken whenever the grammar allows one, so that strings end
/// and the JSON closes where the schema lets it, instead of being cut mid-value.
const CLOSING_RESERVE: usize = 48;

fn closing_token(
    tokenizer: &Tokenizer,
    logits: &[f32],
    remaining: usize,
    constraint: &Option<guided::Constrained>,
) -> Option<u32> {
    if constraint.is_none() || remaining > CLOSING_RESERVE {
        return None;
    }
    [b"\"".as_slice(), b"]", b"}"].iter().find_map(|closer| {
        tokenizer
            .pieces()
            .iter()
            .position(|p| p.as_slice() == *closer)
            .filter(|&id| logits.get(id).is_some_and(|l| l.is_finite()))
            .map(|id| id as u32)
    })
}

/// Bans every token that would complete an n-gram of `n` tokens already in `tokens`
/// (Hugging Face's `no_repeat_ngram_size`), unless that would ban every allowed token.
fn repetition_guard(logits: &mut [f32], tokens: &[u32], n: usize) {
    if n == 0 || tokens.len() < n {
        return;
    }
    let prefix = &tokens[tokens.len() - (n - 1)..];
    let banned: Vec<u32> = tokens
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect();
    if banned.is_empty() {
        return;
    }
    let still_allowed = logits
        .iter()
        .enumerate()
        .filter(|(id, l)| l.is_finite() && !banned.contains(&(*id as u32)))
        .count();
    if still_allowed == 0 {
        return;
    }
    for id in banned {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - top).exp()).sum();
    let log_sum = top + sum.ln();
    logits.iter().map(|&l| l as f64 - log_sum).collect()
}

/// The text of a generation as it grows: decoded pieces, stop sequences, and what has
/// been streamed to the caller (text that could start a stop sequence is held back).
struct Output<'a> {
    request: &'a ChatRequest,
    utf8: Utf8Stream,
    text: String,
    tokens: Vec<u32>,
    generated: usize,
    first_token_at: Option<std::time::Duration>,
    streamed_up_to: usize,
    longest_stop: usize,
    /// A stop sequence was met.
    stopped: bool,
    cancelled_at_end: bool,
}

impl<'a> Output<'a> {
    fn new(request: &'a ChatRequest) -> Self {
        Self {
            request,
            utf8: Utf8Stream::default(),
            text: String::new(),
            tokens: Vec::new(),
            generated: 0,
            first_token_at: None,
            streamed_up_to: 0,
            longest_stop: request.stop.iter().map(|s| s.len()).max().unwrap_or(0),
            stopped: false,
            cancelled_at_end: false,
        }
    }

    /// Adds a token's text (`forced`: written by the grammar, not sampled); Break when the
    /// caller left.
    fn push(
        &mut self,
        tokenizer: &Tokenizer,
        id: u32,
        forced: bool,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if forced {
            self.generated += 1;
        }
        self.tokens.push(id);
        self.text.push_str(&self.utf8.push(tokenizer.piece(id)));
        if let Some(at) = self
            .request
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            self.stopped = true;
            if at > self.streamed_up_to {
                let flow = on_token(&self.text[self.streamed_up_to..]);
                self.streamed_up_to = self.text.len();
                return flow;
            }
            return ControlFlow::Continue(());
        }
        let safe = safe_prefix(&self.text, self.longest_stop);
        if safe > self.streamed_up_to {
            let flow = on_token(&self.text[self.streamed_up_to..safe]);
            self.streamed_up_to = safe;
            return flow;
        }
        ControlFlow::Continue(())
    }

    /// Flushes what is held back.
    fn finish(
        &mut self,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(), LlmError> {
        if !self.stopped {
            self.text.push_str(&self.utf8.finish());
        }
        if self.text.len() > self.streamed_up_to
            && on_token(&self.text[self.streamed_up_to..]).is_break()
        {
            self.cancelled_at_end = true;
        }
        self.streamed_up_to = self.text.len();
        Ok(())
    }

    fn cancelled(self, read: usize, started: Instant) -> Generation {
        cancelled(read, self.generated, started, self.text)
    }
}

/// moondream2's `tokenizer.json` for the GGUF at `model`: `NAME.tokenizer.json` beside
/// `NAME.gguf`, else `tokenizer.json` in the same folder.
fn tokenizer_json_beside(model: &std::path::Path) -> Option<PathBuf> {
    let named = model.with_extension("tokenizer.json");
    let shared = model.with_file_name("tokenizer.json");
    [named, shared].into_iter().find(|p| p.is_file())
}

/// How much of `text` can be shown without showing the start of a stop sequence: all but
/// the last `longest_stop - 1` bytes, cut at a character boundary.
fn safe_prefix(text: &str, longest_stop: usize) -> usize {
    if longest_stop <= 1 {
        return text.len();
    }
    let mut end = text.len().saturating_sub(longest_stop - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn cancelled(prompt: usize, generated: usize, started: Instant, text: String) -> Generation {
    Generation {
        text,
        prompt_tokens: prompt as u32,
        generated_tokens: generated as u32,
        time_to_first_token: started.elapsed(),
        total: started.elapsed(),
        cancelled: true,
        hit_max_tokens: false,
        label_probabilities: Vec::new(),
    }
}

pub struct CandleBackend {
    config: CandleConfig,
    loaded: Mutex<Option<Loaded>>,
    takes_images: std::sync::OnceLock<bool>,
}

impl CandleBackend {
    pub fn new(config: CandleConfig) -> Self {
        Self {
            config,
            loaded: Mutex::new(None),
            takes_images: std::sync::OnceLock::new(),
        }
    }

    /// Runs `f` on the loaded model (loading it first if needed).
    pub fn with_model<T>(
        &self,
        f: impl FnOnce(&mut Loaded) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let mut guard = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Loaded::load(&self.config.model_path)?);
        }
        f(guard.as_mut().expect("loaded above"))
    }
}

impl ChatBackend for CandleBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    fn model(&self) -> &str {
        &self.config.model_name
    }

    fn accepts_images(&self) -> bool {
        *self.takes_images.get_or_init(|| {
            // The header says it; the weights need not be loaded to know.
            File::open(&self.config.model_path)
                .ok()
                .and_then(|mut f| gguf_file::Content::read(&mut f).ok())
                .is_some_and(|content| moondream::is_moondream(&content))
        })
    }

    fn constrains_output(&self) -> bool {
        true
    }

    fn check_response(&self, response: &ResponseFormat) -> Result<(), LlmError> {
        self.with_model(|model| model.check_response(response))
    }

    fn generate(
        &self,
        request: &ChatRequest,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, LlmError> {
        let chunk = self.config.prefill_chunk;
        self.with_model(|model| {
            let prompt = model.prompt(request)?;
            if model.architecture == "moondream" {
                // moondream2 ends its answers with the text "<END>", not a token.
                let mut request = request.clone();
                request.stop.push("<END>".into());
                return model.generate_prompt(&prompt, &request, chunk, on_token);
            }
            model.generate_prompt(&prompt, request, chunk, on_token)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repetition_guard_bans_what_would_repeat_an_ngram() {
        // "a b c a b" so far, with 3-grams: "a b c" was seen, so after "a b" the token "c"
        // would repeat it and is banned; everything else stays.
        let mut logits = vec![0.0f32; 5];
        repetition_guard(&mut logits, &[0, 1, 2, 0, 1], 3);
        assert_eq!(logits[2], f32::NEG_INFINITY);
        assert!(
            logits
                .iter()
                .enumerate()
                .all(|(i, l)| i == 2 || l.is_finite())
        );
        // Off, or too few tokens: nothing banned.
        let mut logits = vec![0.0f32; 5];
        repetition_guard(&mut logits, &[0, 1, 2, 0, 1], 0);
        repetition_guard(&mut logits, &[0, 1], 3);
        assert!(logits.iter().all(|l| l.is_finite()));
        // It never bans the only token a grammar allows.
        let mut logits = vec![f32::NEG_INFINITY; 5];
        logits[2] = 0.0;
        repetition_guard(&mut logits, &[0, 1, 2, 0, 1], 3);
        assert_eq!(logits[2], 0.0);
    }

    #[test]
    fn safe_prefix_holds_back_a_possible_stop_start() {
        assert_eq!(safe_prefix("hello", 0), 5);
        assert_eq!(safe_prefix("hello", 3), 3);
        assert_eq!(safe_prefix("hé", 2), 1);
        assert_eq!(safe_prefix("ab", 5), 0);
    }
}
