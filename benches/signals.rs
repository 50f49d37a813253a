//! DSP core at EEG scale: 64 channels at 1 kHz.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use affectd::signals::dsp::{
    BandType, Detrend, SosFilter, Welch, WelchConfig, butter_sos, sosfiltfilt,
};

const CHANNELS: usize = 64;
const FS: f64 = 1000.0;

fn channel(c: usize, seconds: usize) -> Vec<f64> {
    (0..seconds * FS as usize)
        .map(|i| {
            let t = i as f64 / FS;
            20.0 * (2.0 * std::f64::consts::PI * (10.0 + c as f64 * 0.1) * t).sin()
                + ((i * 7919 + c * 104729) % 997) as f64 / 100.0
        })
        .collect()
}

fn bench_dsp(c: &mut Criterion) {
    let sos = butter_sos(4, BandType::Bandpass(1.0, 45.0), FS).unwrap();
    let one_second: Vec<Vec<f64>> = (0..CHANNELS).map(|ch| channel(ch, 1)).collect();
    let four_seconds: Vec<Vec<f64>> = (0..CHANNELS).map(|ch| channel(ch, 4)).collect();

    let mut group = c.benchmark_group("dsp_64ch_1kHz");
    group.throughput(Throughput::Elements((CHANNELS * 1000) as u64));
    group.bench_function("design_butter_bandpass_order4", |b| {
        b.iter(|| butter_sos(4, BandType::Bandpass(1.0, 45.0), FS).unwrap())
    });
    let mut filters: Vec<SosFilter> = (0..CHANNELS).map(|_| SosFilter::new(sos.clone())).collect();
    let mut scratch = one_second.clone();
    group.bench_function("stream_bandpass_1s", |b| {
        b.iter(|| {
            for ((f, x), out) in filters.iter_mut().zip(&one_second).zip(scratch.iter_mut()) {
                out.copy_from_slice(x);
                f.process(out);
            }
        })
    });
    group.bench_function("zero_phase_bandpass_4s", |b| {
        b.iter(|| {
            four_seconds
                .iter()
                .map(|x| sosfiltfilt(&sos, x).unwrap())
                .collect::<Vec<_>>()
        })
    });
    let welch = Welch::new(
        WelchConfig {
            nperseg: 1000,
            noverlap: None,
            detrend: Detrend::Constant,
        },
        FS,
        4000,
    )
    .unwrap();
    group.bench_function("welch_4s_window", |b| {
        b.iter(|| {
            four_seconds
                .iter()
                .map(|x| welch.spectrum(x))
                .collect::<Vec<_>>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_dsp);
criterion_main!(benches);
