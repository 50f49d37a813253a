//! Offline analysis and subject calibration, without a server:
//! - `affectd sessions analyze ID`: a recorded session through vision, signals and fusion
//!   again (with new settings if given);
//! - `affectd analyze-recording VIDEO XDF`: a video and an XDF file (LabRecorder) the same
//!   way;
//! - `affectd train-fusion ID`: a participant's calibrated fusion from a recorded session.
//!
//! Both analyses write one timeline (JSON lines or CSV) of face results, feature windows,
//! fused estimates and markers, in the order a live session would have sent them, and can
//! draw a PNG summary plot.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use affectd::config::Config;
use affectd::formats::{
    events, faces_csv, faces_json, features_csv, from_wire, fused_csv, labels, summary_plot, wire,
};
use affectd::fusion::FusedEstimate;
use affectd::fusion::calibrate::{self, FusionModel};
use affectd::replay::{Output, Replay};
use affectd::session::SessionConfig;
use affectd::signals::analyzers::SignalChunk;
use affectd::signals::features::FeatureWindow;
use affectd::store::{FrameData, StoredMessage, export};
use affectd::vision::dynamics::ExpressionEvent;

use super::video;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimelineFormat {
    Jsonl,
    Csv,
}

/// Where the timeline and the plot go.
#[derive(clap::Args)]
pub struct OutputArgs {
    #[arg(long, value_enum, default_value_t = TimelineFormat::Jsonl)]
    pub format: TimelineFormat,
    /// Timeline file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Also draw a summary plot (PNG): fused valence/arousal, each modality's arousal and
    /// weight, markers as vertical lines.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Settings that may differ from the recording's.
#[derive(clap::Args)]
pub struct SettingsArgs {
    /// Feature window length, s (default: the session's).
    #[arg(long)]
    pub window_s: Option<f64>,
    /// Hop between windows and fused estimates, s (default: the session's).
    #[arg(long)]
    pub hop_s: Option<f64>,
    /// Run the face detector every this many frames while tracking (default: the
    /// session's, else vision.detect_every_n_frames).
    #[arg(long)]
    pub detect_every: Option<u32>,
    /// A calibrated fusion (from `affectd train-fusion`): labels come from it.
    #[arg(long)]
    pub fusion_model: Option<PathBuf>,
}

impl SettingsArgs {
    fn apply(&self, session: &mut SessionConfig) -> anyhow::Result<()> {
        if let Some(w) = self.window_s {
            if !(w.is_finite() && w > 0.0) {
                bail!("--window-s must be a positive number of seconds, got {w}");
            }
            session.analysis.window_s = w;
        }
        if let Some(h) = self.hop_s {
            if !(h.is_finite() && h > 0.0) {
                bail!("--hop-s must be a positive number of seconds, got {h}");
            }
            session.analysis.hop_s = h;
        }
        if let Some(n) = self.detect_every {
            if n == 0 {
                bail!("--detect-every must be 1 or more");
            }
            session.detect_every = Some(n);
        }
        Ok(())
    }

    fn model(&self) -> anyhow::Result<Option<FusionModel>> {
        let Some(path) = &self.fusion_model else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --fusion-model {}", path.display()))?;
        let model: FusionModel = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not an affectd fusion model (train one with `affectd train-fusion`)",
                path.display()
            )
        })?;
        if model.format != calibrate::FORMAT {
            bail!(
                "{}: format {:?}, expected {:?}",
                path.display(),
                model.format,
                calibrate::FORMAT
            );
        }
        Ok(Some(model))
    }
}

#[derive(clap::Args)]
pub struct AnalyzeSessionArgs {
    pub session_id: String,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct AnalyzeRecordingArgs {
    /// The video (anything ffmpeg reads).
    pub video: PathBuf,
    /// The XDF file with the signals (and markers) recorded alongside.
    pub xdf: PathBuf,
    /// When the video's first frame was taken, in the XDF's clock, s.
    #[arg(long, conflicts_with = "video_start_marker")]
    pub video_start: Option<f64>,
    /// The XDF marker stream whose first marker (or first marker with LABEL, as
    /// STREAM:LABEL) is the video's first frame.
    #[arg(long)]
    pub video_start_marker: Option<String>,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(clap::Args)]
pub struct TrainFusionArgs {
    /// A recorded session.
    pub session_id: String,
    /// Labelled blocks: "markers" (the session's markers: one with a duration labels that
    /// span, an instant one until the next marker) or a CSV file onset,duration,label in
    /// the session's clock.
    #[arg(long, default_value = "markers")]
    pub labels: String,
    /// Where to write the model (JSON).
    #[arg(long, default_value = "fusion-model.json")]
    pub model_out: PathBuf,
}

/// The timeline's rows, written as they come.
enum Sink {
    Jsonl(Box<dyn Write>),
    /// Rows go to a temporary file as they come (columns numbered on first sight), and the
    /// table is written at the end with the header of every column seen: a long session
    /// need not fit in memory.
    Csv(Box<CsvTimeline>),
}

struct CsvTimeline {
    out: Box<dyn Write>,
    columns: Vec<String>,
    index: HashMap<String, usize>,
    body: csv::Writer<std::fs::File>,
}

impl Sink {
    fn new(args: &OutputArgs) -> anyhow::Result<Sink> {
        let out: Box<dyn Write> = match &args.output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        Ok(match args.format {
            TimelineFormat::Jsonl => Sink::Jsonl(out),
            TimelineFormat::Csv => Sink::Csv(Box::new(CsvTimeline {
                out,
                columns: Vec::new(),
                index: HashMap::new(),
                body: csv::WriterBuilder::new()
                    .flexible(true)
                    .from_writer(tempfile::tempfile().context("creating a temporary file")?),
            })),
        })
    }

    fn json(&mut self, value: &Value) -> anyhow::Result<()> {
        if let Sink::Jsonl(out) = self {
            serde_json::to_writer(&mut *out, value)?;
            writeln!(out)?;
        }
        Ok(())
    }

    fn cells(&mut self, cells: Vec<(String, String)>) -> anyhow::Result<()> {
        if let Sink::Csv(table) = self {
            let CsvTimeline {
                columns,
                index,
                body,
                ..
            } = table.as_mut();
            let mut row = vec![String::new(); columns.len()];
            for (k, v) in cells {
                let i = *index.entry(k.clone()).or_insert_with(|| {
                    columns.push(k);
                    columns.len() - 1
                });
                if i >= row.len() {
                    row.resize(i + 1, String::new());
                }
                row[i] = v;
            }
            body.write_record(&row)?;
        }
        Ok(())
    }

    fn output(&mut self, source: &str, output: &Output) -> anyhow::Result<()> {
        match output {
            Output::Faces {
                client_seq,
                timestamp,
                result,
            } => {
                if matches!(self, Sink::Jsonl(_)) {
                    let mut v = faces_json::frame_json(source, *client_seq, *timestamp, result);
                    v["record"] = json!("faces");
                    return self.json(&v);
                }
                for face in &result.faces {
                    let row = faces_csv::row(source, *client_seq, *timestamp, &wire::face(face));
                    let mut cells = vec![("record".to_string(), "faces".to_string())];
                    cells.extend(faces_csv::header().iter().map(|h| h.to_string()).zip(row));
                    self.cells(cells)?;
                }
                Ok(())
            }
            Output::Expression(event) => {
                if !matches!(event, ExpressionEvent::Ended(_)) {
                    return Ok(()); // read whole: an episode is written once, ended
                }
                let message = wire::expression_event(event);
                if matches!(self, Sink::Jsonl(_)) {
                    return self.json(&events::event_json(source, &message));
                }
                let mut cells = vec![("record".to_string(), "expression_event".to_string())];
                cells.extend(
                    events::header()
                        .into_iter()
                        .zip(events::row(source, &message)),
                );
                self.cells(cells)
            }
            Output::Window(w) => self.window(source, w),
            Output::Fused(e) => self.fused(source, e),
            Output::SignalWarning(w) => {
                let message = format!("stream {}: {}", w.stream_id, w.message);
                self.note(source, "signal_warning", &message)
            }
            Output::FrameFailed { message, .. } => self.note(source, "frame_failed", message),
        }
    }

    fn window(&mut self, source: &str, w: &FeatureWindow) -> anyhow::Result<()> {
        if matches!(self, Sink::Jsonl(_)) {
            let mut v = serde_json::to_value(w)?;
            v["record"] = json!("features");
            v["source"] = json!(source);
            return self.json(&v);
        }
        let mut cells = vec![("record".to_string(), "features".to_string())];
        cells.extend(features_csv::cells(source, &wire::feature_window(w)));
        self.cells(cells)
    }

    fn fused(&mut self, source: &str, e: &FusedEstimate) -> anyhow::Result<()> {
        if matches!(self, Sink::Jsonl(_)) {
            let mut v = serde_json::to_value(e)?;
            v["record"] = json!("fused");
            v["source"] = json!(source);
            return self.json(&v);
        }
        let encoded = wire::fused_estimate(e);
        let mut cells = vec![("record".to_string(), "fused".to_string())];
        cells.extend(
            fused_csv::fixed_columns()
                .into_iter()
                .zip(fused_csv::row(source, &encoded)),
        );
        cells.extend(
            encoded
                .labels
                .iter()
                .map(|l| (format!("p.{}", l.label), format!("{:.6}", l.probability))),
        );
        self.cells(cells)
    }

    fn marker(
        &mut self,
        source: &str,
        time: f64,
        label: &str,
        duration_s: f64,
    ) -> anyhow::Result<()> {
        if matches!(self, Sink::Jsonl(_)) {
            return self.json(&json!({
                "record": "marker", "source": source, "timestamp": time,
                "label": label, "duration_s": duration_s,
            }));
        }
        self.cells(vec![
            ("record".into(), "marker".into()),
            ("source".into(), source.into()),
            ("timestamp".into(), format!("{time:.6}")),
            ("label".into(), label.into()),
            ("duration_s".into(), duration_s.to_string()),
        ])
    }

    fn note(&mut self, source: &str, record: &str, message: &str) -> anyhow::Result<()> {
        if matches!(self, Sink::Jsonl(_)) {
            return self.json(&json!({"record": record, "source": source, "message": message}));
        }
        self.cells(vec![
            ("record".into(), record.into()),
            ("source".into(), source.into()),
            ("message".into(), message.into()),
        ])
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Jsonl(mut out) => out.flush()?,
            Sink::Csv(table) => {
                let CsvTimeline {
                    out, columns, body, ..
                } = *table;
                let mut file = body.into_inner().map_err(|e| e.into_error())?;
                file.rewind()?;
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&columns)?;
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(std::io::BufReader::new(file));
                for record in reader.records() {
                    let record = record?;
                    let mut row: Vec<&str> = record.iter().collect();
                    row.resize(columns.len(), "");
                    w.write_record(&row)?;
                }
                w.flush()?;
            }
        }
        Ok(())
    }
}

fn progress(total: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("a valid template"),
    );
    bar
}

/// Everything the plot and the summary need, collected while writing.
#[derive(Default)]
struct Collected {
    fused: Vec<FusedEstimate>,
    markers: Vec<(f64, String)>,
}

impl Collected {
    fn write(&mut self, sink: &mut Sink, source: &str, outputs: Vec<Output>) -> anyhow::Result<()> {
        for output in outputs {
            sink.output(source, &output)?;
            if let Output::Fused(e) = output {
                self.fused.push(e);
            }
        }
        Ok(())
    }

    fn finish(self, args: &OutputArgs, title: &str) -> anyhow::Result<()> {
        if let Some(path) = &args.plot {
            summary_plot::write(path, title, &self.fused, &self.markers)
                .map_err(anyhow::Error::msg)?;
        }
        eprintln!("{} fused estimates", self.fused.len());
        Ok(())
    }
}

/// The cardiac stress model when fusion.cardiac_encoder asks for it.
fn stress_model(
    config: &Config,
) -> anyhow::Result<Option<std::sync::Arc<dyn affectd::vision::backend::Inference>>> {
    if config.fusion.cardiac_encoder != affectd::config::CardiacEncoder::SynheartStress {
        return Ok(None);
    }
    let manifest = affectd::models::Manifest::load(&config.models.dir, &config.models.cache_dir)?;
    let set = affectd::models::loaded::ModelSet::load_formats(
        &manifest,
        affectd::onnx::init(&config.onnx.library),
        &config.onnx,
        &[affectd::models::manifest::Format::Onnx],
    );
    affectd::engine::stress_model(config, &set).map_err(anyhow::Error::msg)
}

/// The face models, when the analysis needs them.
fn face_models(config: &Config, needed_for: &str) -> anyhow::Result<affectd::vision::FaceModels> {
    affectd::models::loaded::load_face_models(config)
        .map_err(|e| anyhow::anyhow!("{needed_for} needs the face models: {e}"))
}

pub fn analyze_session(config: &Config, args: AnalyzeSessionArgs) -> anyhow::Result<()> {
    let store = super::sessions::open(config)?;
    let id = &args.session_id;
    let row = store.get(id)?;
    let recorded = export::session_config(&store, id)?;
    let mut session = from_wire::session_config(recorded)
        .map_err(|e| anyhow::anyhow!("session `{id}`: its recorded configuration: {e}"))?;
    args.settings.apply(&mut session)?;
    let models = if row.frames > 0 {
        Some(face_models(
            config,
            &format!("session `{id}` has frames; analysing them"),
        )?)
    } else {
        None
    };
    let mut replay =
        Replay::new(config, &session, models, stress_model(config)?).map_err(anyhow::Error::msg)?;
    if let Some(model) = args.settings.model()? {
        replay.calibrate(model);
    }
    let mut sink = Sink::new(&args.output)?;
    let mut collected = Collected::default();
    let bar = progress(store.message_count(id)?, args.output.quiet, "analysing");
    let max_pixels = config.vision.max_image_pixels;
    store.replay(id, |message| -> anyhow::Result<()> {
        bar.inc(1);
        match message {
            StoredMessage::Frame {
                client_seq,
                timestamp,
                width,
                height,
                data,
            } => {
                let image = match data {
                    FrameData::Encoded(bytes) => affectd::vision::image::decode(&bytes, max_pixels)
                        .with_context(|| format!("session `{id}`: frame {client_seq}"))?,
                    FrameData::Rgb8(pixels) => image::RgbImage::from_raw(width, height, pixels)
                        .with_context(|| {
                            format!("session `{id}`: frame {client_seq}: stored pixels do not fill {width}x{height}")
                        })?,
                };
                let outputs = replay.frame(client_seq, timestamp, &image);
                collected.write(&mut sink, id, outputs)
            }
            StoredMessage::Chunk {
                client_seq,
                stream_id,
                first_timestamp,
                first_sample_index,
                samples,
                timestamps,
            } => {
                let chunk = SignalChunk {
                    stream_id,
                    first_timestamp,
                    samples,
                    timestamps,
                    first_sample_index,
                };
                let outputs = replay
                    .chunk(&chunk)
                    .map_err(|e| anyhow::anyhow!("session `{id}`: chunk {client_seq}: {e}"))?;
                collected.write(&mut sink, id, outputs)
            }
            StoredMessage::Marker {
                timestamp,
                label,
                duration_s,
                ..
            } => {
                collected.markers.push((timestamp, label.clone()));
                sink.marker(id, timestamp, &label, duration_s)
            }
        }
    })?;
    collected.write(&mut sink, id, replay.finish())?;
    bar.finish_and_clear();
    sink.finish()?;
    collected.finish(&args.output, &format!("session {id}"))
}

/// The video's start in the XDF clock: given, or the named marker's time.
fn video_start(args: &AnalyzeRecordingArgs, xdf_bytes: &[u8]) -> anyhow::Result<f64> {
    if let Some(t) = args.video_start {
        if !t.is_finite() {
            bail!("--video-start must be a finite time, got {t}");
        }
        return Ok(t);
    }
    let Some(spec) = &args.video_start_marker else {
        bail!(
            "give the video's start: --video-start SECONDS (in the XDF's clock) or --video-start-marker STREAM[:LABEL]"
        );
    };
    let (name, label) = match spec.split_once(':') {
        Some((n, l)) => (n, Some(l)),
        None => (spec.as_str(), None),
    };
    let streams = affectd::formats::xdf::load(xdf_bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.xdf.display()))?;
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    let stream = streams.iter().find(|s| s.name == name).with_context(|| {
        format!(
            "--video-start-marker: {} has no stream named {name:?} (it has {names:?})",
            args.xdf.display()
        )
    })?;
    let affectd::formats::xdf::Values::Text(rows) = &stream.values else {
        bail!("--video-start-marker: stream {name:?} holds numbers, not markers");
    };
    stream
        .time_stamps
        .iter()
        .zip(rows)
        .find(|(_, row)| label.is_none_or(|l| row.iter().any(|v| v == l)))
        .map(|(t, _)| *t)
        .with_context(|| match label {
            Some(l) => format!("--video-start-marker: stream {name:?} has no marker {l:?}"),
            None => format!("--video-start-marker: stream {name:?} has no markers"),
        })
}

pub fn analyze_recording(config: &Config, args: AnalyzeRecordingArgs) -> anyhow::Result<()> {
    let xdf_bytes =
        std::fs::read(&args.xdf).with_context(|| format!("reading {}", args.xdf.display()))?;
    let start = video_start(&args, &xdf_bytes)?;
    let recording = affectd::signals::readers::xdf::parse(&xdf_bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.xdf.display()))?;
    for w in &recording.warnings {
        eprintln!("{}: {w}", args.xdf.display());
    }
    let info = video::probe(&args.video)?;
    let video_end = start
        + info
            .duration_s
            .or((info.frames > 0).then(|| info.frames as f64 / info.fps))
            .with_context(|| {
                format!(
                    "{}: ffprobe reports neither a duration nor a frame count",
                    args.video.display()
                )
            })?;
    let signal_span = recording
        .streams
        .iter()
        .filter(|s| !s.channels.is_empty())
        .map(|s| {
            let n = s.channels[0].samples.len() as f64;
            (s.first_timestamp, s.first_timestamp + n / s.rate_hz)
        })
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        .with_context(|| format!("{}: no numeric streams to analyse", args.xdf.display()))?;
    if video_end <= signal_span.0 || start >= signal_span.1 {
        bail!(
            "the video and the XDF do not overlap in time: the video spans {start:.3} to {video_end:.3} s and the XDF's signals {:.3} to {:.3} s (XDF clock); check --video-start / --video-start-marker",
            signal_span.0,
            signal_span.1
        );
    }
    let mut session = SessionConfig {
        streams: recording.streams.iter().map(|s| s.spec()).collect(),
        record: false,
        ..Default::default()
    };
    args.settings.apply(&mut session)?;
    let models = face_models(config, "analysing the video")?;
    let mut replay = Replay::new(config, &session, Some(models), stress_model(config)?)
        .map_err(anyhow::Error::msg)?;
    if let Some(model) = args.settings.model()? {
        replay.calibrate(model);
    }
    let source = args.video.display().to_string();
    let mut sink = Sink::new(&args.output)?;
    let mut collected = Collected::default();
    for a in &recording.annotations {
        collected.markers.push((a.onset, a.text.clone()));
    }
    let expected_frames = if info.frames > 0 {
        info.frames
    } else {
        ((video_end - start) * info.fps).round() as u64
    };
    let bar = progress(expected_frames, args.output.quiet, "analysing");

    // One-second chunks of every stream, merged with the frames in time order (what a
    // client streaming both live would have sent).
    let mut chunks: Vec<(f64, SignalChunk)> = Vec::new();
    for s in &recording.streams {
        let per_chunk = (s.rate_hz.round() as usize).max(1);
        let n = s.channels.first().map_or(0, |c| c.samples.len());
        for first in (0..n).step_by(per_chunk) {
            let last = (first + per_chunk).min(n);
            let samples: Vec<f32> = (first..last)
                .flat_map(|i| s.channels.iter().map(move |c| c.samples[i] as f32))
                .collect();
            let t = s.first_timestamp + first as f64 / s.rate_hz;
            chunks.push((
                t,
                SignalChunk {
                    stream_id: s.name.clone(),
                    first_timestamp: t,
                    samples,
                    timestamps: Vec::new(),
                    first_sample_index: Some(first as u64),
                },
            ));
        }
    }
    chunks.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut chunks = chunks.into_iter().peekable();
    let mut markers: Vec<_> = recording.annotations.iter().collect();
    markers.sort_by(|a, b| a.onset.total_cmp(&b.onset));
    let mut markers = markers.into_iter().peekable();
    let mut frames = video::Frames::open(&args.video, info.clone())?;
    let mut seq = 0u64;
    let mut index = 0u64;
    let mut next_frame = frames.next_frame()?;
    loop {
        let frame_time = start + index as f64 / info.fps;
        let chunk_time = chunks.peek().map(|c| c.0);
        let marker_time = markers.peek().map(|m| m.onset);
        let frame_first = next_frame.is_some()
            && chunk_time.is_none_or(|t| frame_time <= t)
            && marker_time.is_none_or(|t| frame_time <= t);
        seq += 1;
        if frame_first {
            let image = next_frame.take().expect("checked");
            let outputs = replay.frame(seq, frame_time, &image);
            collected.write(&mut sink, &source, outputs)?;
            bar.inc(1);
            index += 1;
            next_frame = frames.next_frame()?;
        } else if marker_time.is_some_and(|m| chunk_time.is_none_or(|c| m <= c)) {
            let m = markers.next().expect("checked");
            sink.marker(&source, m.onset, &m.text, m.duration)?;
        } else if let Some((_, chunk)) = chunks.next() {
            let outputs = replay.chunk(&chunk).map_err(|e| {
                anyhow::anyhow!("{}: stream {}: {e}", args.xdf.display(), chunk.stream_id)
            })?;
            collected.write(&mut sink, &source, outputs)?;
        } else {
            break;
        }
    }
    collected.write(&mut sink, &source, replay.finish())?;
    bar.finish_and_clear();
    sink.finish()?;
    let title = format!("{} with {}", file_name(&args.video), file_name(&args.xdf));
    collected.finish(&args.output, &title)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub fn train_fusion(config: &Config, args: TrainFusionArgs) -> anyhow::Result<()> {
    let store = super::sessions::open(config)?;
    let id = &args.session_id;
    store.get(id)?;
    let conn = store.connect()?;
    let fused: Vec<FusedEstimate> = export::fused_estimates(&conn, id)?
        .iter()
        .map(from_wire::fused_estimate)
        .collect();
    if fused.is_empty() {
        bail!(
            "session `{id}` has no fused estimates (recorded before fusion, or without data): run `affectd sessions analyze {id}` to see what its data gives"
        );
    }
    let blocks = if args.labels == "markers" {
        let mut markers = Vec::new();
        store.replay(id, |m| -> anyhow::Result<()> {
            if let StoredMessage::Marker {
                timestamp,
                label,
                duration_s,
                ..
            } = m
            {
                markers.push((timestamp, duration_s, label));
            }
            Ok(())
        })?;
        labels::from_markers(&markers)
    } else {
        labels::read_csv(Path::new(&args.labels)).map_err(anyhow::Error::msg)?
    };
    let model =
        calibrate::train(&fused, &blocks).map_err(|e| anyhow::anyhow!("session `{id}`: {e}"))?;
    std::fs::write(&args.model_out, serde_json::to_vec_pretty(&model)?)
        .with_context(|| format!("writing {}", args.model_out.display()))?;
    let cv = &model.cross_validation;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "model": args.model_out.display().to_string(),
            "features": model.lda.feature_names,
            "cross_validation": cv,
        }))?
    );
    eprintln!(
        "balanced accuracy {:.3} over {} folds of {} hops (chance {:.3}; 95th percentile of chance {:.3})",
        cv.balanced_accuracy, cv.folds, cv.hops, cv.chance_level, cv.chance_95th_percentile
    );
    Ok(())
}
