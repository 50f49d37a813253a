//! Wire-format cost of the largest routine message: one second of 64-channel EEG at 1 kHz
//! (64,000 f32 samples, sample-major), as a client streams it every second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

use affectd::proto::{SignalChunk, StreamRequest, stream_request};

fn chunk(channels: usize, rate_hz: usize) -> SignalChunk {
    let samples = (0..channels * rate_hz)
        .map(|i| {
            let (t, ch) = (
                (i / channels) as f32 / rate_hz as f32,
                (i % channels) as f32,
            );
            20.0 * (2.0 * std::f32::consts::PI * (10.0 + ch * 0.1) * t).sin()
        })
        .collect();
    SignalChunk {
        stream_id: "eeg".into(),
        first_timestamp: 12_345.678,
        samples,
        timestamps: Vec::new(),
        first_sample_index: Some(1_000_000),
    }
}

fn bench_signal_chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("signal_chunk_64ch_1s_1kHz");
    let request = StreamRequest {
        client_seq: 42,
        message: Some(stream_request::Message::Chunk(chunk(64, 1000))),
    };
    let encoded = request.encode_to_vec();
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function(BenchmarkId::new("encode", encoded.len()), |b| {
        let mut buffer = Vec::with_capacity(encoded.len());
        b.iter(|| {
            buffer.clear();
            request.encode(&mut buffer).unwrap();
            std::hint::black_box(&buffer);
        })
    });
    group.bench_function(BenchmarkId::new("decode", encoded.len()), |b| {
        b.iter(|| std::hint::black_box(StreamRequest::decode(encoded.as_slice()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench_signal_chunk);
criterion_main!(benches);
