//! The in-process LLM's weight products, ours ([`Q8x8`]) against candle's `QMatMul` on the
//! same Q8_0 weights: one token through Qwen2.5 0.5B's output matrix (151,936 x 896, the
//! largest product of a generated token: memory-bound), one token through an FFN matrix
//! (4,864 x 896), and a 512-token prompt through that FFN matrix (compute-bound). Threads:
//! candle's pool (`CANDLE_NUM_THREADS`, else every core) for both. The whole model against
//! llama.cpp is `benches/compare_llm.py`.

use affectd::llm::candle::q8x8::{Q8x8, QuantizedVector};
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
        let ours = Q8x8::from_q8_0(&bytes, rows, cols);
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

criterion_group!(benches, bench_products);
criterion_main!(benches);
