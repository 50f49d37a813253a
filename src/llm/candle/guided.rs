//! Constrained decoding with llguidance (the structured-output library llama.cpp and vLLM
//! use): the model can only write text that matches the answer's JSON schema. At each step
//! the grammar gives the set of tokens that keep the text on a path to a valid answer;
//! every other token's logit is set to -inf before sampling, so the model still chooses
//! among what the schema allows. Text the grammar forces (keys, separators, a constant
//! face id) is fast-forwarded as one batch of tokens, read at prompt speed.
//!
//! The vocabulary is our own tokenizer's (rebuilt from the GGUF), given to llguidance as
//! a token trie plus our tokenizer for the text it forces.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{InferenceCapabilities, TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};

use super::tokenizer::Tokenizer;

/// Our tokenizer as llguidance sees it.
struct Env {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<u32> {
        // Valid UTF-8 (all the text a JSON grammar forces) goes through the model's own
        // tokenizer; a stray partial character through the trie's greedy match.
        match std::str::from_utf8(s) {
            Ok(text) => self
                .tokenizer
                .encode(text, false)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }

    fn tokenize_is_canonical(&self) -> bool {
        true
    }
}

/// The grammar machinery for one model's vocabulary: built once (it indexes every token),
/// then one parser per request.
pub struct Guide {
    factory: ParserFactory,
}

impl Guide {
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<Self, String> {
        let eos = *tokenizer
            .end_of_generation
            .first()
            .ok_or("the vocabulary has no end-of-generation token")?;
        // Control tokens stand for no text; llguidance marks special tokens with a 0xFF
        // byte, which no text contains, so the grammar never produces them.
        let words: Vec<Vec<u8>> = tokenizer
            .pieces()
            .iter()
            .enumerate()
            .map(|(id, piece)| {
                if piece.is_empty() || tokenizer.end_of_generation.contains(&(id as u32)) {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend(format!("<|special_{id}|>").bytes());
                    w
                } else {
                    piece.clone()
                }
            })
            .collect();
        let info = TokRxInfo {
            vocab_size: words.len() as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos,
            tok_pad: None,
            tok_unk: None,
            tok_end_of_turn: None,
        };
        let env: TokEnv = Arc::new(Env {
            trie: TokTrie::from(&info, &words),
            tokenizer,
        });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities {
                ff_tokens: true,
                backtrack: false,
                conditional_ff_tokens: false,
                fork: false,
            },
            &SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| format!("cannot index the vocabulary for constrained decoding: {e}"))?;
        factory.quiet();
        Ok(Self { factory })
    }

    /// A matcher for one answer that must follow `schema` (a JSON schema).
    pub fn matcher(&self, schema: &serde_json::Value) -> Result<Matcher, String> {
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_json_schema(schema.clone()))
            .map_err(|e| format!("the answer schema cannot be compiled: {e}"))?;
        let matcher = Matcher::new(Ok(parser));
        match matcher.get_error() {
            Some(e) => Err(format!("the answer schema cannot be compiled: {e}")),
            None => Ok(matcher),
        }
    }
}

/// One answer's constraint during generation.
pub struct Constrained {
    matcher: Matcher,
}

impl Constrained {
    pub fn new(matcher: Matcher) -> Self {
        Self { matcher }
    }

    /// Sets every token the grammar does not allow next to -inf; Err when the grammar is
    /// in an error state.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        let mask = self.matcher.compute_mask().map_err(|e| e.to_string())?;
        for (id, logit) in logits.iter_mut().enumerate() {
            if !mask.is_allowed(id as u32) {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Takes the sampled token; then the tokens the grammar forces after it, if any.
    pub fn consume(&mut self, token: u32) -> Result<Vec<u32>, String> {
        self.matcher
            .consume_token(token)
            .map_err(|e| e.to_string())?;
        Ok(self.matcher.consume_ff_tokens())
    }

    /// Takes one token and nothing forced after it (replaying a known answer).
    pub fn consume_one(&mut self, token: u32) -> Result<(), String> {
        self.matcher.consume_token(token).map_err(|e| e.to_string())
    }

    /// The tokens forced before anything is sampled (the answer's opening).
    pub fn forced(&mut self) -> Vec<u32> {
        self.matcher.consume_ff_tokens()
    }

    /// The answer is complete (the grammar accepts nothing more but the end).
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// Whether the text so far is a complete answer.
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}
