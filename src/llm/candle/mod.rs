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
//!   tokens, tokens streamed as they are sampled, and the JSON `"label"` value masked to
//!   the allowed labels ([`constrain`]).
//!
//! The model loads on first use and then stays in memory. One generation runs at a time
//! (the weights and KV cache are shared); later requests wait their turn. Threads: candle
//! uses `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else every core).

pub mod chat_template;
pub mod constrain;
pub mod gemma3;
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
use self::constrain::LabelConstraint;
use self::tokenizer::{Tokenizer, Utf8Stream};
use super::{ChatBackend, ChatRequest, Generation, LlmError, Part};

const BACKEND: &str = "candle";

trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

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
    pub tokenizer: Tokenizer,
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
            tokenizer,
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
            tokenizer,
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

    /// Runs `prompt` (an image included) and then samples up to `max_tokens`, streaming
    /// text to `on_token`. Prompt token counts include the image's positions.
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
        let mut constraint = (!request.constrain_labels.is_empty())
            .then(|| LabelConstraint::new(&request.constrain_labels));
        let mut utf8 = Utf8Stream::default();
        let mut text = String::new();
        let mut generated = 0usize;
        let mut first_token_at = None;
        let longest_stop = request.stop.iter().map(|s| s.len()).max().unwrap_or(0);
        // Text held back because it could be the start of a stop sequence.
        let mut streamed_up_to = 0usize;
        loop {
            if let Some(c) = &constraint {
                c.mask(&mut logits, self.tokenizer.pieces());
            }
            let next = sampler
                .sample(&Tensor::new(logits.as_slice(), &Device::Cpu).map_err(model_error)?)
                .map_err(model_error)?;
            generated += 1;
            first_token_at.get_or_insert_with(|| started.elapsed());
            if self.tokenizer.end_of_generation.contains(&next) {
                break;
            }
            let piece = self.tokenizer.piece(next);
            if let Some(c) = &mut constraint {
                c.advance(piece);
            }
            text.push_str(&utf8.push(piece));
            if let Some(at) = request
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(at);
                if at > streamed_up_to && on_token(&text[streamed_up_to..]).is_break() {
                    return Ok(cancelled(read, generated, started, text));
                }
                streamed_up_to = text.len();
                break;
            }
            let safe = safe_prefix(&text, longest_stop);
            if safe > streamed_up_to {
                if on_token(&text[streamed_up_to..safe]).is_break() {
                    return Ok(cancelled(read, generated, started, text));
                }
                streamed_up_to = safe;
            }
            if generated >= max_tokens {
                break;
            }
            logits = self
                .weights
                .forward(&[next], read + generated - 1)
                .map_err(model_error)?;
        }
        text.push_str(&utf8.finish());
        if text.len() > streamed_up_to && on_token(&text[streamed_up_to..]).is_break() {
            return Ok(cancelled(read, generated, started, text));
        }
        Ok(Generation {
            text,
            prompt_tokens: read as u32,
            generated_tokens: generated as u32,
            time_to_first_token: first_token_at.unwrap_or_else(|| started.elapsed()),
            total: started.elapsed(),
            cancelled: false,
        })
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
    fn safe_prefix_holds_back_a_possible_stop_start() {
        assert_eq!(safe_prefix("hello", 0), 5);
        assert_eq!(safe_prefix("hello", 3), 3);
        assert_eq!(safe_prefix("hé", 2), 1);
        assert_eq!(safe_prefix("ab", 5), 0);
    }
}
