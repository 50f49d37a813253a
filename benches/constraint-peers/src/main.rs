//! llguidance against outlines-core on the same vocabulary (the default model's 151,936
//! tokens) and the same answer schema: the set-up each needs per request and per model,
//! and the cost of the allowed-token set per token while one answer is written.
//!
//!     AFFECTD_DUMP_CONSTRAINT=target/constraint cargo bench --bench llm -- constraint
//!     cargo run --release --manifest-path benches/constraint-peers/Cargo.toml -- target/constraint/constraint.json

use std::sync::Arc;
use std::time::Instant;

use llguidance::api::TopLevelGrammar;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{ApproximateTokEnv, InferenceCapabilities, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use outlines_core::prelude::{Index, Vocabulary};
use serde_json::Value;

fn main() {
    let path = std::env::args().nth(1).expect("the dumped constraint.json");
    let dump: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let tokens: Vec<Vec<u8>> = dump["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8).collect())
        .collect();
    let eos = dump["eos"].as_u64().unwrap() as u32;
    let specials: Vec<u32> = dump["specials"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let answer: Vec<u32> = dump["answer"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let schema = dump["schema"].clone();
    println!("vocabulary {} tokens, answer {} tokens", tokens.len(), answer.len());

    // llguidance.
    let words: Vec<Vec<u8>> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if specials.contains(&(i as u32)) {
                let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                w.extend(format!("<|special_{i}|>").bytes());
                w
            } else {
                t.clone()
            }
        })
        .collect();
    let started = Instant::now();
    let info = TokRxInfo::new(words.len() as u32, eos);
    let env: TokEnv = Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, &words)));
    let factory = ParserFactory::new(&env, InferenceCapabilities::default(), &SlicedBiasComputer::general_slices()).unwrap();
    println!("llguidance: per model {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    let mut matcher = Matcher::new(factory.create_parser(TopLevelGrammar::from_json_schema(schema.clone())));
    let compile = started.elapsed();
    let started = Instant::now();
    for &t in &answer {
        let mask = matcher.compute_mask().unwrap();
        assert!(mask.is_allowed(t));
        matcher.consume_token(t).unwrap();
    }
    let per_token = started.elapsed().as_secs_f64() / answer.len() as f64;
    println!(
        "llguidance: per request {:.1} ms (schema compiled), then {:.3} ms per token (mask)",
        compile.as_secs_f64() * 1e3,
        per_token * 1e3
    );

    // outlines-core: the schema becomes one regex, indexed over the whole vocabulary.
    let started = Instant::now();
    let regex = outlines_core::json_schema::regex_from_value(&schema, None, None).unwrap();
    let mut vocabulary = Vocabulary::new(eos);
    for (i, t) in tokens.iter().enumerate() {
        if i as u32 != eos && !specials.contains(&(i as u32)) && !t.is_empty() {
            vocabulary.try_insert(t.clone(), i as u32).unwrap();
        }
    }
    println!("outlines-core: regex of {} bytes, vocabulary built in {:.0} ms", regex.len(), started.elapsed().as_secs_f64() * 1e3);
    let started = Instant::now();
    let index = Index::new(&regex, &vocabulary);
    let build = started.elapsed();
    match index {
        Err(e) => println!("outlines-core: index failed after {:.1} s: {e}", build.as_secs_f64()),
        Ok(index) => {
            let started = Instant::now();
            let mut state = index.initial_state();
            for &t in &answer {
                let allowed = index.allowed_tokens(&state).unwrap();
                assert!(allowed.contains(&t));
                state = index.next_state(&state, &t).unwrap();
            }
            println!(
                "outlines-core: per request {:.1} s (index built), then {:.3} ms per token",
                build.as_secs_f64(),
                started.elapsed().as_secs_f64() * 1e3 / answer.len() as f64
            );
        }
    }
}
