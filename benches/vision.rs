//! Face pipeline benchmarks at 640x480: each stage, the whole single-image pipeline with 1
//! and 5 faces, tracking mode, and the expression dynamics of a tracked face. ONNX Runtime uses 1 intra-op thread, like the Python
//! reference in benches/compare_faces.py, which reads the frames this bench writes to
//! target/bench-frames/ so that both sides see identical pixels.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use image::{RgbImage, imageops};

use affectd::config::Config;
use affectd::vision::detector::{self, DetectorConfig};
use affectd::vision::dynamics::FaceDynamics;
use affectd::vision::mesh::{self, CropRegion};
use affectd::vision::{
    AnalyzeOptions, FaceModels, PipelinedTracker, Tracker, blendshapes, expression,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn photo(name: &str) -> RgbImage {
    let bytes = std::fs::read(repo().join(".testdata").join(name))
        .expect("run scripts/fetch-testdata.sh first");
    affectd::vision::image::decode(&bytes, 1 << 30).unwrap()
}

/// The photo scaled to fit 640x480 and centred on a grey canvas.
fn frame_640x480(name: &str) -> RgbImage {
    let p = photo(name);
    let scale = (640.0 / p.width() as f32).min(480.0 / p.height() as f32);
    let (w, h) = (
        (p.width() as f32 * scale).round() as u32,
        (p.height() as f32 * scale).round() as u32,
    );
    let resized = imageops::resize(&p, w, h, imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([110, 110, 110]));
    imageops::overlay(
        &mut canvas,
        &resized,
        i64::from((640 - w) / 2),
        i64::from((480 - h) / 2),
    );
    canvas
}

fn models() -> FaceModels {
    // The same AFFECTD_ONNX_THREADS / AFFECTD_ONNX_SPINNING settings as the server.
    let mut config = Config::default();
    if let Some(t) = std::env::var("AFFECTD_ONNX_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.onnx.intra_threads = t;
    }
    config.onnx.spinning = std::env::var("AFFECTD_ONNX_SPINNING").is_ok_and(|v| v == "true");
    eprintln!(
        "ONNX Runtime: {} intra-op thread(s), spinning {}",
        config.onnx.intra_threads, config.onnx.spinning
    );
    affectd::models::loaded::load_face_models(&config).expect("face models (run scripts/setup.sh)")
}

fn save(frame: &RgbImage, name: &str) -> Vec<u8> {
    let dir = repo().join("target/bench-frames");
    std::fs::create_dir_all(&dir).unwrap();
    frame.save(dir.join(name)).unwrap();
    let mut jpeg = Vec::new();
    frame
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    jpeg
}

fn bench_faces(c: &mut Criterion) {
    let models = models();
    let one = frame_640x480("single_face.jpg");
    let five = frame_640x480("multi_face.jpg");
    let one_jpeg = save(&one, "1face.png");
    save(&five, "5faces.png");
    let options = AnalyzeOptions::default();
    assert_eq!(models.analyze(&one, &options).unwrap().faces.len(), 1);
    assert_eq!(models.analyze(&five, &options).unwrap().faces.len(), 5);

    let mut stages = c.benchmark_group("face_stages_640x480");
    stages.bench_function("decode_jpeg", |b| {
        b.iter(|| affectd::vision::image::decode(&one_jpeg, 1 << 30).unwrap())
    });
    let config = DetectorConfig::default();
    stages.bench_function("detect_preprocess", |b| {
        b.iter(|| detector::preprocess(&one, 640, 480))
    });
    stages.bench_function("detect", |b| {
        b.iter(|| detector::detect(models.detector.as_ref(), &one, &config).unwrap())
    });
    let d = detector::detect(models.detector.as_ref(), &one, &config).unwrap()[0];
    let region =
        CropRegion::from_detection(d.x, d.y, d.width, d.height, d.keypoints[0], d.keypoints[1]);
    let mesh_model = models.mesh.as_deref().unwrap();
    stages.bench_function("landmarks_preprocess", |b| {
        b.iter(|| mesh::preprocess(&one, &region))
    });
    stages.bench_function("landmarks", |b| {
        b.iter(|| mesh::run(mesh_model, &one, &region).unwrap())
    });
    let m = mesh::run(mesh_model, &one, &region).unwrap();
    stages.bench_function("head_pose", |b| b.iter(|| mesh::head_pose(&m.points)));
    let bs_model = models.blendshapes.as_deref().unwrap();
    stages.bench_function("blendshapes", |b| {
        b.iter(|| blendshapes::run(bs_model, &m.points).unwrap())
    });
    let scores = blendshapes::run(bs_model, &m.points).unwrap();
    stages.bench_function("action_units", |b| {
        b.iter(|| affectd::vision::action_units::estimate(&scores, &m.points))
    });
    let fer = models.expression.as_deref().unwrap();
    stages.bench_function("expression", |b| {
        b.iter(|| expression::run_fer(fer, &one, d.x, d.y, d.width, d.height).unwrap())
    });
    stages.finish();

    let mut pipeline = c.benchmark_group("face_pipeline_640x480");
    pipeline.bench_function("single_image_1face", |b| {
        b.iter(|| models.analyze(&one, &options).unwrap())
    });
    pipeline.bench_function("single_image_5faces", |b| {
        b.iter(|| models.analyze(&five, &options).unwrap())
    });
    let mut tracker = Tracker::new(10);
    pipeline.bench_function("tracking_1face_detect_every_10", |b| {
        b.iter(|| {
            let r = tracker.process(&models, &one, &options).unwrap();
            assert_eq!(r.faces.len(), 1);
            r
        })
    });
    // Throughput over a stream: each push measures one frame while the worker completes
    // the one before it.
    let mut pipelined = PipelinedTracker::new(Tracker::new(10), models.clone(), options);
    let shared = std::sync::Arc::new(one.clone());
    pipeline.bench_function("tracking_1face_detect_every_10_pipelined", |b| {
        b.iter(|| pipelined.push(shared.clone()).unwrap())
    });
    // Expression dynamics on one tracked face's frame once its baseline has settled: the
    // baseline quantiles, the corrected prototypes, the mesh alignment and the spotter.
    // Compare with tracking_1face_detect_every_10 (the budget: under 2%).
    let template = tracker.process(&models, &one, &options).unwrap();
    let mut dynamics = FaceDynamics::new(&Config::default().expression);
    let mut t = 0.0;
    while t < 3.0 {
        dynamics.observe(t, &mut template.clone());
        t += 1.0 / 30.0;
    }
    pipeline.bench_function("expression_dynamics_1face", |b| {
        b.iter_batched(
            || template.clone(),
            |mut frame| {
                t += 1.0 / 30.0;
                dynamics.observe(t, &mut frame)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    pipeline.finish();
}

fn config() -> Criterion {
    // Noisy 2-core machines: more samples, quoted as medians by compare_faces.py.
    Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_faces
}
criterion_main!(benches);
