//! The in-process LLM's weight products, ours ([`PackedQ8`]) against candle's `QMatMul` on the
//! same Q8_0 weights: one token through Qwen2.5 0.5B's output matrix (151,936 x 896, the
//! largest product of a generated token: memory-bound), one token through an FFN matrix
//! (4,864 x 896), and a 512-token prompt through that FFN matrix (compute-bound). Threads:
//! candle's pool (`CANDLE_NUM_THREADS`, else every core) for both. The whole model against
//! llama.cpp is `benches/compare_llm.py`.
//!
//! And the cost of constrained decoding per token: llguidance's mask over the default
//! model's vocabulary (151,936 tokens) while a one-face SoVTP answer is written under its
//! schema, a mask computed before every token (forced tokens need none, so this is an upper
//! bound). Needs the default GGUF in `.testdata/llm-cache/` (the LLM tests fetch it);
//! skipped without it.

use affectd::llm::candle::q8x8::{PackedQ8, QuantizedVector};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn weights(rows: usize, cols: usize) -> QTensor {
    let values: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as u64 * 2654435761) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap();
    QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()
}

fn activations(tokens: usize, cols: usize) -> Tensor {
    let values: Vec<f32> = (0..tokens * cols)
        .map(|i| ((i as u64 * 40503) % 997) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_vec(values, (tokens, cols), &Device::Cpu).unwrap()
}

fn bench_products(c: &mut Criterion) {
    for (name, rows, cols, tokens) in [
        ("token_output_151936x896", 151_936, 896, 1),
        ("token_ffn_4864x896", 4_864, 896, 1),
        ("prompt512_ffn_4864x896", 4_864, 896, 512),
    ] {
        let q = weights(rows, cols);
        let bytes = q.data().unwrap().into_owned();
        let ours = PackedQ8::from_q8_0(&bytes, rows, cols);
        let candle = QMatMul::from_qtensor(q).unwrap();
        let x = activations(tokens, cols);
        let x_rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
        let mut group = c.benchmark_group(name);
        group.sample_size(if tokens > 1 || rows > 100_000 { 10 } else { 50 });
        group.throughput(Throughput::Bytes((bytes.len() * tokens) as u64));
        group.bench_function(BenchmarkId::new("affectd_q8x8", tokens), |b| {
            let mut out = vec![0f32; tokens * rows];
            b.iter(|| {
                // Quantizing the activations is part of the product, as in the model.
                let xs: Vec<QuantizedVector> =
                    x_rows.iter().map(|r| QuantizedVector::new(r)).collect();
                ours.matmul(&xs, &mut out);
            })
        });
        group.bench_function(BenchmarkId::new("candle_qmatmul", tokens), |b| {
            b.iter(|| candle.forward(&x).unwrap())
        });
        group.finish();
    }
}

/// A one-face answer as the default model writes it under the schema (compact JSON).
const ANSWER: &str = r#"{"stages":{"scene":"A studio portrait of one person facing the camera.","body":"Upright, head level and turned slightly left.","others":"No other people are in the frame.","cues":"AU06 and AU12 are present and strong; the expression model gives happy 0.80.","check":"Every cue agrees with happy."},"judgements":[{"face_id":1,"label":"happy","confidence":0.85,"valence":0.7,"arousal":0.5,"evidence":[{"key":"AU12","direction":"present"},{"key":"AU06","direction":"present"},{"key":"expr.happy","direction":"high"}],"rationale":"A Duchenne smile: cheek raiser and lip corner puller, with a high happy score."}]}"#;

fn bench_constraint(c: &mut Criterion) {
    use affectd::explain::schema::{AnswerShape, answer_schema};
    use affectd::llm::candle::guided::{Constrained, Guide};
    use affectd::llm::candle::tokenizer::Tokenizer;
    let gguf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".testdata/llm-cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    let Ok(mut file) = std::fs::File::open(&gguf) else {
        eprintln!(
            "constraint bench skipped: {} is missing (run the LLM tests, or `affectd models fetch` into that cache)",
            gguf.display()
        );
        return;
    };
    let tokenizer = std::sync::Arc::new(Tokenizer::from_gguf_reader(&mut file).unwrap());
    let started = std::time::Instant::now();
    let guide = Guide::new(tokenizer.clone()).unwrap();
    eprintln!(
        "llguidance: vocabulary of {} tokens indexed in {:.0} ms (once per model)",
        tokenizer.vocab_size(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let labels: Vec<String> = affectd::prompt::DEFAULT_LABELS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let aus: Vec<String> = [
        1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 45,
    ]
    .iter()
    .map(|n| format!("AU{n:02}"))
    .collect();
    let mut levels: Vec<String> = labels.iter().map(|l| format!("expr.{l}")).collect();
    levels.push("face.arousal".into());
    let au_directions: &'static [&'static str] = &["present", "absent", "high", "low"];
    let level_directions: &'static [&'static str] = &["high", "low"];
    let signed_directions: &'static [&'static str] = &["up", "down"];
    let schema = answer_schema(&AnswerShape {
        face_ids: &[1],
        labels: &labels,
        evidence_keys: &[vec![
            (au_directions, aus),
            (level_directions, levels),
            (signed_directions, vec!["face.valence".into()]),
        ]],
    });
    let tokens = tokenizer.encode(ANSWER, false).unwrap();
    let vocab = tokenizer.vocab_size();
    // For benches/constraint-peers (outlines-core on the same vocabulary and schema).
    if let Some(dir) = std::env::var_os("AFFECTD_DUMP_CONSTRAINT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dump = serde_json::json!({
            "tokens": tokenizer.pieces(),
            "eos": tokenizer.end_of_generation[0],
            "specials": (0..vocab).filter(|&i| tokenizer.pieces()[i].is_empty() || tokenizer.end_of_generation.contains(&(i as u32))).collect::<Vec<_>>(),
            "schema": schema,
            "answer": tokens,
        });
        std::fs::write(dir.join("constraint.json"), dump.to_string()).unwrap();
    }
    let mut group = c.benchmark_group("constraint");
    group.sample_size(10);
    group.throughput(Throughput::Elements(tokens.len() as u64));
    group.bench_function(
        BenchmarkId::new("llguidance_mask_per_token", tokens.len()),
        |b| {
            b.iter(|| {
                let mut constrained = Constrained::new(guide.matcher(&schema).unwrap());
                let mut logits = vec![0f32; vocab];
                for &t in &tokens {
                    constrained.mask(&mut logits).unwrap();
                    assert!(
                        logits[t as usize].is_finite(),
                        "the answer leaves the schema at token {t}"
                    );
                    logits.iter_mut().for_each(|l| *l = 0.0);
                    constrained.consume_one(t).unwrap();
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench_products, bench_constraint);
criterion_main!(benches);
