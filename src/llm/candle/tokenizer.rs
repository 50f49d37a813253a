//! The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), rebuilt so that
//! a bare `.gguf` is enough to chat: no tokenizer.json needed. Two families, as llama.cpp
//! reads them:
//!
//! - `gpt2`: byte-level BPE with a merge list (Qwen2, Llama 3). Built on the `tokenizers`
//!   crate's BPE model with the pre-tokenizer regex that `tokenizer.ggml.pre` names.
//! - `llama`: SentencePiece BPE, which stores scores and no merges (Gemma, Llama 2). Hand
//!   written below because no crate encodes by score priority: the `tokenizers` crate's
//!   BPE needs a merge list and its Unigram model is a different algorithm. It follows
//!   llama.cpp's `llm_tokenizer_spm` step for step, so token ids equal llama.cpp's
//!   (`tests/reference/llm_reference.py` checks that).
//!
//! Special (control and user-defined) tokens are matched as whole tokens only in text the
//! caller marks as trusted (the chat template); message contents go through
//! [`Tokenizer::encode`] with `parse_special = false`, so a client cannot smuggle an
//! `<|im_end|>` into the prompt.

use std::collections::{BinaryHeap, HashMap};

use aho_corasick::{AhoCorasick, MatchKind};
use candle_core::quantized::gguf_file::{Content, Value};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("the GGUF has no tokenizer metadata key {0}; supply a GGUF with an embedded tokenizer")]
    Missing(&'static str),
    #[error("GGUF tokenizer metadata {key} is malformed: {reason}")]
    Malformed { key: &'static str, reason: String },
    #[error(
        "tokenizer model {0:?} is not supported (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)"
    )]
    UnsupportedModel(String),
    #[error("pre-tokenizer {0:?} is not supported (supported: qwen2, llama-bpe, gpt2, default)")]
    UnsupportedPre(String),
    #[error("tokenizing failed: {0}")]
    Encode(String),
    #[error("not a readable GGUF: {0}")]
    NotGguf(String),
}

enum Model {
    Bpe(Box<tokenizers::Tokenizer>),
    Spm(Box<Spm>),
}

pub struct Tokenizer {
    model: Model,
    /// What each token id stands for in output text, as bytes (a byte-level or `<0xNN>`
    /// token may be part of a UTF-8 sequence). Control tokens stand for nothing.
    pieces: Vec<Vec<u8>>,
    /// Control and user-defined tokens, matched whole in trusted text.
    specials: Option<(AhoCorasick, Vec<u32>)>,
    /// Only user-defined ones, matched whole everywhere (llama.cpp does the same).
    user_defined: Option<(AhoCorasick, Vec<u32>)>,
    pub bos: Option<u32>,
    /// How the BOS token and the first end-of-generation token are written (for chat
    /// templates, which write them as text); empty when there is none.
    pub bos_text: String,
    pub eos_text: String,
    pub add_bos: bool,
    /// Tokens that end a turn: the EOS id plus the end-of-turn tokens of known chat
    /// formats that the vocabulary has.
    pub end_of_generation: Vec<u32>,
}

fn strings(content: &Content, key: &'static str) -> Result<Vec<String>, TokenizerError> {
    let value = content
        .metadata
        .get(key)
        .ok_or(TokenizerError::Missing(key))?;
    let list = value.to_vec().map_err(|e| TokenizerError::Malformed {
        key,
        reason: e.to_string(),
    })?;
    list.iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| TokenizerError::Malformed {
                    key,
                    reason: e.to_string(),
                })
        })
        .collect()
}

fn numbers<T>(
    content: &Content,
    key: &'static str,
    convert: impl Fn(&Value) -> candle_core::Result<T>,
) -> Result<Option<Vec<T>>, TokenizerError> {
    let Some(value) = content.metadata.get(key) else {
        return Ok(None);
    };
    let list = value.to_vec().map_err(|e| TokenizerError::Malformed {
        key,
        reason: e.to_string(),
    })?;
    list.iter()
        .map(|v| {
            convert(v).map_err(|e| TokenizerError::Malformed {
                key,
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn scalar_u32(content: &Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn scalar_bool(content: &Content, key: &str) -> Option<bool> {
    content.metadata.get(key).and_then(|v| v.to_bool().ok())
}

/// GPT-2's reversible byte <-> printable character table (bytes_to_unicode): printable
/// Latin-1 bytes map to themselves, the rest to U+0100 onwards.
fn byte_level_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0;
    for byte in 0..=255u32 {
        let ch = if printable.contains(&byte) {
            byte
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(ch).expect("valid code point"), byte as u8);
    }
    map
}

fn pre_tokenizer_regex(pre: &str) -> Result<&'static str, TokenizerError> {
    // The patterns llama.cpp uses for these `tokenizer.ggml.pre` names (llama-vocab.cpp).
    Ok(match pre {
        "qwen2" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "llama-bpe" | "llama3" => {
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
        }
        "gpt2" | "default" => {
            r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
        }
        other => return Err(TokenizerError::UnsupportedPre(other.to_string())),
    })
}

fn matcher(texts: Vec<(String, u32)>) -> Option<(AhoCorasick, Vec<u32>)> {
    if texts.is_empty() {
        return None;
    }
    let (patterns, ids): (Vec<String>, Vec<u32>) = texts.into_iter().unzip();
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .ok()?;
    Some((automaton, ids))
}

impl Tokenizer {
    /// Reads only the GGUF header and metadata (not the tensors) and builds the tokenizer.
    pub fn from_gguf_reader<R: std::io::Read + std::io::Seek>(
        reader: &mut R,
    ) -> Result<Self, TokenizerError> {
        let content = Content::read(reader).map_err(|e| TokenizerError::NotGguf(e.to_string()))?;
        Self::from_gguf(&content)
    }

    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let model_name = content
            .metadata
            .get("tokenizer.ggml.model")
            .ok_or(TokenizerError::Missing("tokenizer.ggml.model"))?
            .to_string()
            .map_err(|e| TokenizerError::Malformed {
                key: "tokenizer.ggml.model",
                reason: e.to_string(),
            })?
            .clone();
        let tokens = strings(content, "tokenizer.ggml.tokens")?;
        let types = numbers(content, "tokenizer.ggml.token_type", |v| v.to_i32())?
            .unwrap_or_else(|| vec![1; tokens.len()]);
        if types.len() != tokens.len() {
            return Err(TokenizerError::Malformed {
                key: "tokenizer.ggml.token_type",
                reason: format!("{} types for {} tokens", types.len(), tokens.len()),
            });
        }
        let (model, pieces) = match model_name.as_str() {
            "gpt2" => {
                let merges = strings(content, "tokenizer.ggml.merges")?;
                let pre = content
                    .metadata
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok().cloned())
                    .unwrap_or_else(|| "default".into());
                let bpe = build_bpe(&tokens, &merges, &pre)?;
                let decoder = byte_level_decoder();
                let pieces = tokens
                    .iter()
                    .zip(&types)
                    .map(|(text, &kind)| match kind {
                        TYPE_CONTROL => Vec::new(),
                        TYPE_USER_DEFINED => text.as_bytes().to_vec(),
                        _ => text
                            .chars()
                            .map(|c| decoder.get(&c).copied())
                            .collect::<Option<Vec<u8>>>()
                            .unwrap_or_else(|| text.as_bytes().to_vec()),
                    })
                    .collect();
                (Model::Bpe(Box::new(bpe)), pieces)
            }
            "llama" => {
                let scores = numbers(content, "tokenizer.ggml.scores", |v| v.to_f32())?
                    .ok_or(TokenizerError::Missing("tokenizer.ggml.scores"))?;
                if scores.len() != tokens.len() {
                    return Err(TokenizerError::Malformed {
                        key: "tokenizer.ggml.scores",
                        reason: format!("{} scores for {} tokens", scores.len(), tokens.len()),
                    });
                }
                let spm = Spm::new(
                    &tokens,
                    scores,
                    &types,
                    scalar_u32(content, "tokenizer.ggml.unknown_token_id").unwrap_or(0),
                    scalar_bool(content, "tokenizer.ggml.add_space_prefix").unwrap_or(true),
                );
                let pieces = tokens
                    .iter()
                    .zip(&types)
                    .map(|(text, &kind)| match kind {
                        TYPE_CONTROL => Vec::new(),
                        TYPE_BYTE => parse_byte_token(text).map(|b| vec![b]).unwrap_or_default(),
                        _ => text.replace('\u{2581}', " ").into_bytes(),
                    })
                    .collect();
                (Model::Spm(Box::new(spm)), pieces)
            }
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let special_texts = |kinds: &[i32]| -> Vec<(String, u32)> {
            tokens
                .iter()
                .zip(&types)
                .enumerate()
                .filter(|(_, (text, kind))| kinds.contains(kind) && !text.is_empty())
                .map(|(id, (text, _))| (text.clone(), id as u32))
                .collect()
        };
        let specials = matcher(special_texts(&[
            TYPE_CONTROL,
            TYPE_USER_DEFINED,
            TYPE_UNKNOWN,
        ]));
        let user_defined = matcher(special_texts(&[TYPE_USER_DEFINED]));
        let bos = scalar_u32(content, "tokenizer.ggml.bos_token_id");
        let add_bos =
            scalar_bool(content, "tokenizer.ggml.add_bos_token").unwrap_or(model_name == "llama");
        let mut end_of_generation = Vec::new();
        if let Some(eos) = scalar_u32(content, "tokenizer.ggml.eos_token_id") {
            end_of_generation.push(eos);
        }
        if let Some(eot) = scalar_u32(content, "tokenizer.ggml.eot_token_id") {
            end_of_generation.push(eot);
        }
        // As llama.cpp does for GGUFs that do not name their end-of-turn token.
        for name in [
            "<|im_end|>",
            "<|endoftext|>",
            "<end_of_turn>",
            "<|eot_id|>",
            "<|end|>",
            "<eos>",
        ] {
            if let Some(id) = tokens.iter().position(|t| t == name) {
                let id = id as u32;
                if types[id as usize] == TYPE_CONTROL && !end_of_generation.contains(&id) {
                    end_of_generation.push(id);
                }
            }
        }
        let text_of = |id: Option<u32>| {
            id.and_then(|id| tokens.get(id as usize).cloned())
                .unwrap_or_default()
        };
        Ok(Self {
            model,
            pieces,
            specials,
            user_defined,
            bos_text: text_of(bos),
            eos_text: text_of(end_of_generation.first().copied()),
            bos,
            add_bos,
            end_of_generation,
        })
    }

    /// A Hugging Face `tokenizer.json` holding a byte-level BPE (GPT-2, CodeGen, Phi:
    /// what moondream2 ships), rebuilt through the GGUF path: its vocabulary, merges and
    /// added tokens become the `tokenizer.ggml.*` metadata that llama.cpp's converter
    /// would write (added tokens marked special become control tokens). `<|endoftext|>`,
    /// when the vocabulary has it, is both BOS and EOS, as in GPT-2.
    pub fn from_tokenizer_json(json: &str) -> Result<Self, TokenizerError> {
        const KEY: &str = "tokenizer.json";
        let malformed = |reason: String| TokenizerError::Malformed { key: KEY, reason };
        let root: serde_json::Value =
            serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
        let model = &root["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(TokenizerError::UnsupportedModel(format!(
                "tokenizer.json model {}",
                model["type"]
            )));
        }
        let vocab = model["vocab"]
            .as_object()
            .ok_or_else(|| malformed("model.vocab is not an object".into()))?;
        let mut by_id: Vec<Option<(String, i32)>> = Vec::new();
        let mut place = |text: &str, id: &serde_json::Value, kind: i32| {
            let id = id
                .as_u64()
                .filter(|&id| id < 10_000_000)
                .ok_or_else(|| malformed(format!("token {text:?} has id {id}")))?
                as usize;
            if by_id.len() <= id {
                by_id.resize(id + 1, None);
            }
            by_id[id] = Some((text.to_string(), kind));
            Ok::<(), TokenizerError>(())
        };
        for (text, id) in vocab {
            place(text, id, 1)?;
        }
        for added in root["added_tokens"].as_array().into_iter().flatten() {
            let text = added["content"]
                .as_str()
                .ok_or_else(|| malformed("an added token has no content".into()))?;
            let kind = if added["special"].as_bool() == Some(true) {
                TYPE_CONTROL
            } else {
                TYPE_USER_DEFINED
            };
            place(text, &added["id"], kind)?;
        }
        let mut tokens = Vec::with_capacity(by_id.len());
        let mut types = Vec::with_capacity(by_id.len());
        for (id, slot) in by_id.into_iter().enumerate() {
            // A gap in the ids gets a placeholder that no text can produce.
            let (text, kind) = slot.unwrap_or_else(|| (format!("[unused {id}]"), TYPE_CONTROL));
            tokens.push(Value::String(text));
            types.push(Value::I32(kind));
        }
        // Merges are "a b" strings, or [a, b] pairs since tokenizers 0.20.
        let merges = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match m {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Array(pair) => match (pair.first(), pair.get(1)) {
                    (Some(serde_json::Value::String(a)), Some(serde_json::Value::String(b))) => {
                        Ok(format!("{a} {b}"))
                    }
                    _ => Err(malformed(format!("merge {m} is not two strings"))),
                },
                other => Err(malformed(format!("merge {other} is not a string or pair"))),
            })
            .map(|m| m.map(Value::String))
            .collect::<Result<Vec<_>, _>>()?;
        let end_of_text = tokens
            .iter()
            .position(|t| matches!(t, Value::String(s) if s == "<|endoftext|>"));
        let mut metadata = std::collections::HashMap::from([
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                Value::String("gpt2".into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), Value::Array(tokens)),
            ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
            ("tokenizer.ggml.merges".to_string(), Value::Array(merges)),
            (
                "tokenizer.ggml.add_bos_token".to_string(),
                Value::Bool(false),
            ),
        ]);
        if let Some(id) = end_of_text {
            for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"] {
                metadata.insert(key.to_string(), Value::U32(id as u32));
            }
        }
        Self::from_gguf(&Content {
            magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
            metadata,
            tensor_infos: Default::default(),
            tensor_data_offset: 0,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The bytes a token stands for in output (empty for control tokens).
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], |p| p.as_slice())
    }

    pub fn pieces(&self) -> &[Vec<u8>] {
        &self.pieces
    }

    /// Token ids for `text`. With `parse_special`, control tokens written out in the text
    /// (`<|im_start|>`) become those tokens; without it they are tokenized as plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let matcher = if parse_special {
            self.specials.as_ref()
        } else {
            self.user_defined.as_ref()
        };
        let mut ids = Vec::new();
        let mut start = 0;
        if let Some((automaton, special_ids)) = matcher {
            for found in automaton.find_iter(text) {
                self.encode_plain(&text[start..found.start()], &mut ids)?;
                ids.push(special_ids[found.pattern().as_usize()]);
                start = found.end();
            }
        }
        self.encode_plain(&text[start..], &mut ids)?;
        Ok(ids)
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        if text.is_empty() {
            return Ok(());
        }
        match &self.model {
            Model::Bpe(tokenizer) => {
                let encoding = tokenizer
                    .encode_fast(text, false)
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                out.extend_from_slice(encoding.get_ids());
            }
            Model::Spm(spm) => spm.encode(text, out),
        }
        Ok(())
    }

    /// The text of `ids`, with invalid UTF-8 replaced (for tests and logs; generation
    /// streams through [`Utf8Stream`]).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| self.piece(id).to_vec()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn build_bpe(
    tokens: &[String],
    merges: &[String],
    pre: &str,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
    use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), id as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| TokenizerError::Malformed {
                    key: "tokenizer.ggml.merges",
                    reason: format!("merge {m:?} is not two tokens separated by a space"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = tokenizers::models::bpe::BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(matches!(pre, "llama-bpe" | "llama3"))
        .build()
        .map_err(|e| TokenizerError::Malformed {
            key: "tokenizer.ggml.merges",
            reason: e.to_string(),
        })?;
    let split = Split::new(
        SplitPattern::Regex(pre_tokenizer_regex(pre)?.to_string()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
    ]))));
    Ok(tokenizer)
}

fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// SentencePiece BPE by score priority, as llama.cpp's `llm_tokenizer_spm`.
struct Spm {
    vocab: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_tokens: [Option<u32>; 256],
    unknown: u32,
    add_space_prefix: bool,
}

/// A candidate merge of two adjacent symbols; the heap pops the highest score, and among
/// equal scores the leftmost.
#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Combined byte length when queued; a stale entry no longer matches.
    size: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    fn new(
        tokens: &[String],
        scores: Vec<f32>,
        types: &[i32],
        unknown: u32,
        add_space_prefix: bool,
    ) -> Self {
        let mut byte_tokens = [None; 256];
        for (id, (text, &kind)) in tokens.iter().zip(types).enumerate() {
            if kind == TYPE_BYTE
                && let Some(b) = parse_byte_token(text)
            {
                byte_tokens[b as usize] = Some(id as u32);
            }
        }
        let mut vocab = HashMap::with_capacity(tokens.len());
        for (id, text) in tokens.iter().enumerate() {
            // The first of duplicate texts wins, as in llama.cpp's token_to_id map.
            vocab.entry(text.clone()).or_insert(id as u32);
        }
        Self {
            vocab,
            scores,
            byte_tokens,
            unknown,
            add_space_prefix,
        }
    }

    fn encode(&self, raw: &str, out: &mut Vec<u32>) {
        let mut text = String::with_capacity(raw.len() + 3);
        if self.add_space_prefix {
            text.push('\u{2581}');
        }
        text.push_str(&raw.replace(' ', "\u{2581}"));
        let mut symbols: Vec<Symbol> = Vec::new();
        for (i, (start, ch)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: ch.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if i > 0 {
                symbols[i - 1].next = Some(i);
            }
        }
        let mut queue = BinaryHeap::new();
        // Which two symbols a merged text came from, to split unknown merges back.
        let mut merged_from: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..b.start + b.len];
            if let Some(&id) = self.vocab.get(piece) {
                queue.push(Bigram {
                    score: self.scores[id as usize],
                    left: l,
                    right: r,
                    size: piece.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut queue, &symbols, i - 1, i);
        }
        while let Some(bigram) = queue.pop() {
            let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
            if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
                continue;
            }
            merged_from.insert((left.start, bigram.size), (left.start, left.len));
            symbols[bigram.left].len += right.len;
            symbols[bigram.right].len = 0;
            symbols[bigram.left].next = right.next;
            if let Some(n) = right.next {
                symbols[n].prev = Some(bigram.left);
            }
            if let Some(p) = symbols[bigram.left].prev {
                try_add(&mut queue, &symbols, p, bigram.left);
            }
            if let Some(n) = symbols[bigram.left].next {
                try_add(&mut queue, &symbols, bigram.left, n);
            }
        }
        let mut index = (!symbols.is_empty()).then_some(0);
        while let Some(i) = index {
            let s = symbols[i];
            self.resegment(&text, s.start, s.len, &merged_from, out);
            index = s.next;
        }
    }

    /// A final symbol: its token, or the two pieces it was merged from, or its bytes.
    fn resegment(
        &self,
        text: &str,
        start: usize,
        len: usize,
        merged_from: &HashMap<(usize, usize), (usize, usize)>,
        out: &mut Vec<u32>,
    ) {
        let piece = &text[start..start + len];
        if let Some(&id) = self.vocab.get(piece) {
            out.push(id);
            return;
        }
        if let Some(&(left_start, left_len)) = merged_from.get(&(start, len)) {
            self.resegment(text, left_start, left_len, merged_from, out);
            self.resegment(text, start + left_len, len - left_len, merged_from, out);
            return;
        }
        for byte in piece.bytes() {
            out.push(self.byte_tokens[byte as usize].unwrap_or(self.unknown));
        }
    }
}

/// Turns token bytes into text as soon as they form complete UTF-8 characters (a
/// multi-byte character can span tokens).
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_string();
                self.pending.clear();
                text
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete character at the end: keep it for the next token.
                let valid = e.valid_up_to();
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                text
            }
        }
    }

    /// What is left at the end (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_table_is_a_bijection() {
        let map = byte_level_decoder();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'\u{120}'], b' ');
        assert_eq!(map[&'\u{10A}'], b'\n');
        assert_eq!(map[&'a'], b'a');
    }

    #[test]
    fn utf8_stream_holds_split_characters() {
        let mut stream = Utf8Stream::default();
        let e_acute = "é".as_bytes();
        assert_eq!(stream.push(&e_acute[..1]), "");
        assert_eq!(stream.push(&e_acute[1..]), "é");
        assert_eq!(stream.push(b"ok"), "ok");
        assert_eq!(stream.push(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(stream.push(&e_acute[..1]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
