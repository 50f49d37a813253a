//! `affectd signals FILE...`: a features table per window from EDF/BDF/XDF/CSV recordings;
//! `affectd train-eeg FILE...`: a subject-specific EEG classifier from labelled windows.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use affectd::formats::{features_csv, labels, wire};
use affectd::signals::classifier::{ShrinkageLda, cross_validate};
use affectd::signals::features::{FeatureWindow, Features, SignalKind};
use affectd::signals::readers::{self, Annotation, Recording, csv::CsvOptions};
use affectd::signals::stream::{AnalysisConfig, Chunk, StreamAnalyzer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WindowArgs {
    /// Window length, s.
    #[arg(long, default_value_t = 4.0)]
    pub window_s: f64,
    /// Hop between window starts, s.
    #[arg(long, default_value_t = 1.0)]
    pub hop_s: f64,
    /// Mains frequency, Hz (50 or 60).
    #[arg(long, default_value_t = 50.0)]
    pub line_hz: f64,
    /// Seconds at the start used as the heart-rate baseline (0 = none).
    #[arg(long, default_value_t = 0.0)]
    pub baseline_s: f64,
    /// CSV input: sample rate in Hz when the file has no time column, or instead of the
    /// rate its time column implies.
    #[arg(long)]
    pub rate: Option<f64>,
    /// CSV input: the signal kind of every column instead of guessing from the names.
    #[arg(long, value_enum)]
    pub kind: Option<SignalKind>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl WindowArgs {
    fn config(&self) -> AnalysisConfig {
        AnalysisConfig {
            window_s: self.window_s,
            hop_s: self.hop_s,
            line_hz: self.line_hz,
            baseline_s: self.baseline_s,
            ..AnalysisConfig::default()
        }
    }

    fn csv(&self) -> CsvOptions {
        CsvOptions {
            rate_hz: self.rate,
            kind: self.kind,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct SignalsArgs {
    /// Recordings: .edf, .bdf, .xdf, .csv.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub format: OutputFormat,
    /// Write results here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// A classifier from `affectd train-eeg`: EEG windows get its prediction.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// EEG recordings (.edf, .bdf, .xdf, .csv) of one participant.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Where window labels come from: "annotations" (EDF+ annotations or XDF markers; a
    /// marker without duration lasts until the next one) or a CSV file with columns
    /// onset,duration,label (seconds in the recording's clock).
    #[arg(long)]
    pub labels: String,
    /// Where to save the trained model (JSON).
    #[arg(long)]
    pub model_out: PathBuf,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    #[command(flatten)]
    pub window: WindowArgs,
}

/// A window, its EEG classifier feature vector (when the window has one) and the vector's
/// feature names.
type AnalysedWindow = (FeatureWindow, Option<Vec<f64>>, Vec<String>);

/// Runs every stream of a recording through its analyzer, in 1 s chunks (as a live stream
/// would arrive), and returns the windows with the EEG feature vectors where they exist.
fn analyse(
    path: &Path,
    recording: &Recording,
    config: &AnalysisConfig,
    quiet: bool,
) -> anyhow::Result<Vec<AnalysedWindow>> {
    let total: u64 = recording
        .streams
        .iter()
        .map(|s| (s.channels[0].samples.len() * s.channels.len()) as u64)
        .sum();
    let bar = if quiet || total < 5_000_000 {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {percent}% {per_sec} eta {eta}")
                .expect("valid template"),
        );
        bar.set_message(path.display().to_string());
        bar
    };
    let mut out = Vec::new();
    for s in &recording.streams {
        let mut analyzer =
            StreamAnalyzer::new(s.spec(), config).with_context(|| format!("{}", path.display()))?;
        let per_chunk = (s.rate_hz.ceil() as usize).max(1);
        let n = s.channels[0].samples.len();
        let mut interleaved = Vec::with_capacity(per_chunk * s.channels.len());
        let collect = |analyzer: &StreamAnalyzer, windows: Vec<FeatureWindow>, out: &mut Vec<_>| {
            for w in windows {
                let (vector, names) = match (&w.features, analyzer.eeg_encoder()) {
                    (Features::Eeg(f), Some(e)) => (e.feature_vector(f), e.feature_names()),
                    _ => (None, Vec::new()),
                };
                out.push((w, vector, names));
            }
        };
        for start in (0..n).step_by(per_chunk) {
            let end = (start + per_chunk).min(n);
            interleaved.clear();
            for i in start..end {
                interleaved.extend(s.channels.iter().map(|c| c.samples[i]));
            }
            let (windows, _) = analyzer
                .push(Chunk {
                    first_timestamp: s.first_timestamp + start as f64 / s.rate_hz,
                    samples: &interleaved,
                    timestamps: &[],
                    first_sample_index: None,
                })
                .with_context(|| format!("{}", path.display()))?;
            collect(&analyzer, windows, &mut out);
            bar.inc(interleaved.len() as u64);
        }
        let tail: Vec<FeatureWindow> = analyzer.finish().into_iter().collect();
        collect(&analyzer, tail, &mut out);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn read(path: &Path, window: &WindowArgs) -> anyhow::Result<Recording> {
    let recording = readers::read(path, &window.csv())?;
    for w in &recording.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    if recording.streams.is_empty() {
        bail!("{}: no regularly sampled signal to analyse", path.display());
    }
    Ok(recording)
}

pub fn run(args: SignalsArgs) -> anyhow::Result<()> {
    let config = args.window.config();
    let model: Option<ShrinkageLda> = match &args.model {
        Some(p) => Some(
            serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("reading model {}", p.display()))?,
            )
            .with_context(|| {
                format!(
                    "{} is not an affectd classifier (train one with `affectd train-eeg`)",
                    p.display()
                )
            })?,
        ),
        None => None,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut table = features_csv::Table::default();
    for path in &args.paths {
        let recording = read(path, &args.window)?;
        let source = path.display().to_string();
        for (w, vector, names) in analyse(path, &recording, &config, args.window.quiet)? {
            let prediction = match (&model, &vector) {
                (Some(m), Some(v)) => {
                    if m.feature_names != names {
                        bail!(
                            "{}: the model was trained on features {:?}..., this recording gives {:?}...; use a recording with the same channels and bands",
                            source,
                            m.feature_names.iter().take(3).collect::<Vec<_>>(),
                            names.iter().take(3).collect::<Vec<_>>()
                        );
                    }
                    let p = m.predict_proba(v)?;
                    let mut map = Map::new();
                    let best = (0..p.len())
                        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                        .unwrap_or(0);
                    map.insert("predicted".into(), json!(m.classes[best]));
                    for (c, p) in m.classes.iter().zip(&p) {
                        map.insert(format!("p_{c}"), json!(p));
                    }
                    Some(map)
                }
                _ => None,
            };
            match args.format {
                OutputFormat::Jsonl => {
                    let mut value = serde_json::to_value(&w)?;
                    value["source"] = json!(source);
                    if let Some(p) = prediction {
                        value["prediction"] = Value::Object(p);
                    }
                    serde_json::to_writer(&mut out, &value)?;
                    writeln!(out)?;
                }
                OutputFormat::Csv => {
                    let mut cells = features_csv::cells(&source, &wire::feature_window(&w));
                    cells.extend(prediction.iter().flatten().map(|(k, v)| {
                        let text = v.as_str().map_or_else(|| v.to_string(), String::from);
                        (k.clone(), text)
                    }));
                    table.push(cells);
                }
            }
        }
    }
    if args.format == OutputFormat::Csv {
        table.write(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// Labelled intervals [onset, end) with their label, per recording.
fn intervals(
    spec: &str,
    recordings: &[(PathBuf, Recording)],
) -> anyhow::Result<Vec<Vec<(f64, f64, String)>>> {
    let as_tuples = |blocks: Vec<labels::LabelledBlock>| {
        blocks
            .into_iter()
            .map(|b| (b.start, b.end, b.label))
            .collect::<Vec<_>>()
    };
    if spec == "annotations" {
        return Ok(recordings
            .iter()
            .map(|(_, r)| {
                let markers: Vec<(f64, f64, String)> = r
                    .annotations
                    .iter()
                    .map(|a: &Annotation| (a.onset, a.duration, a.text.clone()))
                    .collect();
                as_tuples(labels::from_markers(&markers))
            })
            .collect());
    }
    let blocks = labels::read_csv(Path::new(spec))
        .map_err(|e| anyhow::anyhow!("--labels {spec}: not \"annotations\" and {e}"))?;
    Ok(vec![as_tuples(blocks); recordings.len()])
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.window.config();
    let recordings: Vec<(PathBuf, Recording)> = args
        .paths
        .iter()
        .map(|p| Ok((p.clone(), read(p, &args.window)?)))
        .collect::<anyhow::Result<_>>()?;
    let labels = intervals(&args.labels, &recordings)?;
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut names: Option<Vec<String>> = None;
    let mut skipped = 0;
    for ((path, recording), intervals) in recordings.iter().zip(&labels) {
        for (w, vector, feature_names) in analyse(path, recording, &config, args.window.quiet)? {
            if w.kind != SignalKind::Eeg {
                continue;
            }
            let label = intervals
                .iter()
                .find(|(a, b, _)| w.start_time >= *a && w.end_time <= *b)
                .map(|(_, _, l)| l.clone());
            match (label, vector) {
                (Some(l), Some(v)) => {
                    if names.get_or_insert_with(|| feature_names.clone()) != &feature_names {
                        bail!(
                            "{}: its EEG channels differ from the first recording's",
                            path.display()
                        );
                    }
                    x.push(v);
                    y.push(l);
                }
                (Some(_), None) => skipped += 1,
                (None, _) => {}
            }
        }
    }
    let names = names.context(
        "no EEG window lies inside a labelled interval; check --labels and the recording's clock",
    )?;
    let cv = cross_validate(&x, &y, args.folds, &names)?;
    let model = ShrinkageLda::fit(&x, &y, names)?;
    std::fs::write(&args.model_out, serde_json::to_vec_pretty(&model)?)
        .with_context(|| format!("writing {}", args.model_out.display()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "model": args.model_out.display().to_string(),
            "windows": x.len(),
            "windows_skipped_for_quality": skipped,
            "classes": model.classes,
            "cross_validation": cv,
        }))?
    );
    eprintln!(
        "balanced accuracy {:.3} over {} folds (chance {:.3}; 95th percentile of chance {:.3})",
        cv.balanced_accuracy, cv.folds, cv.chance_level, cv.chance_95th_percentile
    );
    Ok(())
}
