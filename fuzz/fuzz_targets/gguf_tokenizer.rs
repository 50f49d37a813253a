//! A GGUF header and metadata, as a model file would bring them: the tokenizer is built
//! (or refused with a reason) and encodes text with special tokens, never a panic.
#![no_main]

use affectd::llm::candle::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut reader = std::io::Cursor::new(bytes);
    if let Ok(tokenizer) = Tokenizer::from_gguf_reader(&mut reader) {
        let _ = tokenizer.encode("Hello <|im_start|> wörld 😀 <end_of_turn>", true);
        let _ = tokenizer.encode("  plain text\n", false);
    }
});
