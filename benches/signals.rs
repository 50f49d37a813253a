//! DSP core at EEG scale: 64 channels at 1 kHz.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use affectd::signals::dsp::{
    BandType, Detrend, SosFilter, SosFilterBank, Welch, WelchConfig, butter_sos, sosfiltfilt,
    sosfiltfilt_channels,
};
use affectd::signals::eeg::{EegConfig, EegEncoder};
use affectd::signals::features::SignalKind;
use affectd::signals::stream::{AnalysisConfig, ChannelSpec, Chunk, StreamAnalyzer, StreamSpec};
use affectd::signals::{cardiac, eda};

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
    // The 64 channels through the filter bank (eight channels side by side), and one
    // channel at a time for comparison.
    let mut bank = SosFilterBank::new(sos.clone(), CHANNELS);
    let mut scratch = one_second.clone();
    group.bench_function("stream_bandpass_1s", |b| {
        b.iter(|| {
            for (out, x) in scratch.iter_mut().zip(&one_second) {
                out.copy_from_slice(x);
            }
            bank.process(&mut scratch);
        })
    });
    let mut filters: Vec<SosFilter> = (0..CHANNELS).map(|_| SosFilter::new(sos.clone())).collect();
    group.bench_function("stream_bandpass_1s_channel_by_channel", |b| {
        b.iter(|| {
            for ((f, x), out) in filters.iter_mut().zip(&one_second).zip(scratch.iter_mut()) {
                out.copy_from_slice(x);
                f.process(out);
            }
        })
    });
    let rows: Vec<&[f64]> = four_seconds.iter().map(|x| x.as_slice()).collect();
    group.bench_function("zero_phase_bandpass_4s", |b| {
        b.iter(|| sosfiltfilt_channels(&sos, &rows).unwrap())
    });
    group.bench_function("zero_phase_bandpass_4s_channel_by_channel", |b| {
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

/// 64 channels named in the 10-10 system, so the asymmetry pairs exist.
const LABELS: [&str; 64] = [
    "Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "Fz", "F2",
    "F4", "F6", "F8", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "T7", "C5",
    "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4",
    "CP6", "TP8", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4",
    "PO8", "O1", "Oz", "O2", "Iz", "TP9", "TP10",
];

fn interleave(channels: &[Vec<f64>]) -> Vec<f64> {
    (0..channels[0].len())
        .flat_map(|i| channels.iter().map(move |c| c[i]))
        .collect()
}

fn testdata_column(name: &str, parse: impl Fn(&str) -> Option<f64>) -> Vec<f64> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".testdata")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run scripts/fetch-testdata.sh", path.display()))
        .lines()
        .filter_map(parse)
        .collect()
}

/// The encoders as benches/compare_signals.py runs their Python equivalents.
fn bench_encoders(c: &mut Criterion) {
    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    let four_seconds: Vec<Vec<f64>> = (0..CHANNELS).map(|ch| channel(ch, 4)).collect();
    let mut group = c.benchmark_group("encoders");

    // One EEG window: Welch (2 s segments) + 5 bands + relative power + DE + asymmetry +
    // indices + quality, 64 ch x 4 s at 1 kHz.
    let encoder = EegEncoder::new(labels.clone(), FS, 4000, EegConfig::default()).unwrap();
    group.bench_function("eeg_window_64ch_1kHz_4s", |b| {
        b.iter(|| encoder.encode(&four_seconds))
    });

    // A live stream: what one second of 64 ch x 1 kHz costs (one window per 1 s hop).
    let spec = StreamSpec {
        id: "eeg".into(),
        kind: SignalKind::Eeg,
        rate_hz: FS,
        channels: labels
            .iter()
            .map(|l| ChannelSpec {
                label: l.clone(),
                unit: "uV".into(),
            })
            .collect(),
    };
    let ten_seconds = interleave(&(0..CHANNELS).map(|ch| channel(ch, 10)).collect::<Vec<_>>());
    let second = CHANNELS * 1000;
    group.bench_function("eeg_stream_one_second_64ch_1kHz", |b| {
        let mut analyzer = StreamAnalyzer::new(spec.clone(), &AnalysisConfig::default()).unwrap();
        // Warm up to steady state (a full window buffered).
        for k in 0..4 {
            analyzer
                .push(Chunk {
                    first_timestamp: k as f64,
                    samples: &ten_seconds[k * second..(k + 1) * second],
                    timestamps: &[],
                    first_sample_index: None,
                })
                .unwrap();
        }
        let mut k = 4;
        b.iter(|| {
            let at = (k % 10) * second;
            let out = analyzer
                .push(Chunk {
                    first_timestamp: k as f64,
                    samples: &ten_seconds[at..at + second],
                    timestamps: &[],
                    first_sample_index: None,
                })
                .unwrap();
            k += 1;
            out
        })
    });

    // Whole recordings through the NeuroKit2 ports.
    let ecg = testdata_column("SampleECG.txt", |l| {
        if l.starts_with('#') {
            None
        } else {
            l.split_whitespace().nth(5)?.parse().ok()
        }
    });
    group.bench_function("ecg_clean_and_r_peaks_pyhrv_22s_1kHz", |b| {
        b.iter(|| cardiac::ecg_r_peaks(&cardiac::ecg_clean(&ecg, 1000.0, 50.0).unwrap(), 1000.0))
    });
    let ppg = testdata_column("heartpy_ppg.csv", |l| l.trim().parse().ok());
    group.bench_function("ppg_clean_and_peaks_heartpy_25s_100Hz", |b| {
        b.iter(|| cardiac::ppg_peaks(&cardiac::ppg_clean(&ppg, 100.0).unwrap(), 100.0))
    });
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/golden/physio.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let eda_signal: Vec<f64> = golden["eda"]["signal"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    group.bench_function("eda_clean_split_and_scrs_90s_50Hz", |b| {
        b.iter(|| {
            let cleaned = eda::eda_clean(&eda_signal, 50.0).unwrap();
            let parts = eda::eda_decompose(&cleaned, 50.0).unwrap();
            eda::scr_peaks(&parts.phasic, 50.0)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_dsp, bench_encoders);
criterion_main!(benches);
