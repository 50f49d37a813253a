//! `affectd analyze PATH...`: faces in images and videos, as JSON lines or OpenFace-style
//! CSV, optionally with SoVTP-marked images.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};

use affectd::config::Config;
use affectd::formats::{events, faces_csv, faces_json, wire};
use affectd::vision::dynamics::{ExpressionEvent, FaceDynamics};
use affectd::vision::marks::{self, Encoding, Layers};
use affectd::vision::{AnalyzeOptions, FrameResult, PipelinedTracker, Tracker};

use super::video;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MarkFormat {
    Png,
    Jpeg,
}

#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Images (JPEG, PNG) or videos (anything ffmpeg reads: mp4, mov, ...).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub format: OutputFormat,
    /// Write results here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write SoVTP-marked images into this folder (one per image / video frame).
    #[arg(long)]
    pub marks_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = MarkFormat::Png)]
    pub marks_format: MarkFormat,
    /// Detector input: longest side in pixels.
    #[arg(long)]
    pub max_side: Option<u32>,
    /// Minimum detection score, `[0,1]`.
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Video: look for new faces every N frames; faces are tracked from their landmarks in
    /// between, and the detector also runs when one is lost (1 = no tracking, every face
    /// from the detector) [default: vision.detect_every_n_frames, 10].
    #[arg(long)]
    pub detect_every: Option<u32>,
    /// Video: stop after this many frames (0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_frames: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Video: also write the expression episodes here, as CSV (one row per ended episode;
    /// with `--format jsonl` they are also written as `"record": "expression_event"` lines).
    #[arg(long)]
    pub events: Option<PathBuf>,
}

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

struct Sink {
    out: Box<dyn Write>,
    format: OutputFormat,
    /// The CSV writer, once the header is written.
    csv: Option<csv::Writer<Box<dyn Write>>>,
    /// `--events`, with its header written.
    events: Option<csv::Writer<std::fs::File>>,
}

impl Sink {
    /// Ended episodes: JSON lines (with `--format jsonl`) and the `--events` table.
    fn events(&mut self, source: &str, found: Vec<ExpressionEvent>) -> anyhow::Result<()> {
        for event in found {
            if !matches!(event, ExpressionEvent::Ended(_)) {
                continue; // a file is read whole: an episode is reported once, ended
            }
            let message = wire::expression_event(&event);
            if self.format == OutputFormat::Jsonl {
                serde_json::to_writer(&mut self.out, &events::event_json(source, &message))?;
                writeln!(self.out)?;
            }
            if let Some(table) = &mut self.events {
                table.write_record(events::row(source, &message))?;
            }
        }
        Ok(())
    }

    fn write(
        &mut self,
        source: &str,
        frame: u64,
        timestamp: f64,
        result: &FrameResult,
    ) -> anyhow::Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(
                    &mut self.out,
                    &faces_json::frame_json(source, frame, timestamp, result),
                )?;
                writeln!(self.out)?;
            }
            OutputFormat::Csv => {
                let csv = match &mut self.csv {
                    Some(csv) => csv,
                    None => {
                        let out = std::mem::replace(&mut self.out, Box::new(std::io::sink()));
                        let mut csv = csv::Writer::from_writer(out);
                        csv.write_record(faces_csv::header())?;
                        self.csv.insert(csv)
                    }
                };
                for face in &result.faces {
                    csv.write_record(faces_csv::row(source, frame, timestamp, &wire::face(face)))?;
                }
            }
        }
        Ok(())
    }
}

pub fn run(config: &Config, args: AnalyzeArgs) -> anyhow::Result<()> {
    let models = affectd::models::loaded::load_face_models(config).map_err(anyhow::Error::msg)?;
    let max_pixels = config.vision.max_image_pixels;
    let mut options = AnalyzeOptions::default();
    options.detector.max_side = config.vision.detector_max_side;
    options.detector.min_score = config.vision.min_face_score;
    let detect_every = args
        .detect_every
        .unwrap_or(config.vision.detect_every_n_frames);
    if let Some(side) = args.max_side {
        options.detector.max_side = side.max(32);
    }
    if let Some(score) = args.min_score {
        if !(0.0..=1.0).contains(&score) {
            bail!("--min-score must be in [0,1], got {score}");
        }
        options.detector.min_score = score;
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let events = match &args.events {
        Some(path) => {
            let mut table = csv::Writer::from_writer(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            table.write_record(events::header())?;
            Some(table)
        }
        None => None,
    };
    let mut sink = Sink {
        out,
        format: args.format,
        csv: None,
        events,
    };
    if let Some(dir) = &args.marks_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let encoding = match args.marks_format {
        MarkFormat::Png => Encoding::Png,
        MarkFormat::Jpeg => Encoding::Jpeg,
    };
    let write_marks = |stem: &str,
                       frame: Option<u64>,
                       image: &image::RgbImage,
                       result: &FrameResult|
     -> anyhow::Result<()> {
        if let Some(dir) = &args.marks_dir {
            let ext = if encoding == Encoding::Png {
                "png"
            } else {
                "jpg"
            };
            let name = match frame {
                Some(f) => format!("{stem}_{f:06}.{ext}"),
                None => format!("{stem}.marked.{ext}"),
            };
            let marked = marks::render(image, &result.faces, &Layers::default());
            let bytes = marks::encode(&marked, encoding).map_err(anyhow::Error::msg)?;
            std::fs::write(dir.join(&name), bytes)
                .with_context(|| format!("writing {}", dir.join(&name).display()))?;
        }
        Ok(())
    };

    let stem_of = |path: &Path| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("frame")
            .to_owned()
    };
    let mut failures = 0;
    let mut next = 0;
    while next < args.paths.len() {
        // A run of image files is decoded and analysed on every core at once; results are
        // written in the order given.
        let images = args.paths[next..]
            .iter()
            .take_while(|path| is_image(path))
            .count();
        if images > 0 {
            let run = &args.paths[next..next + images];
            next += images;
            let analyze = |path: &PathBuf| -> anyhow::Result<(RgbImage, FrameResult)> {
                let source = path.display().to_string();
                let bytes = std::fs::read(path).with_context(|| format!("reading {source}"))?;
                let image = affectd::vision::image::decode(&bytes, max_pixels)
                    .with_context(|| source.clone())?;
                let result = models.analyze(&image, &options)?;
                Ok((image, result))
            };
            in_order_on_every_core(run, analyze, |path, analysed| {
                let source = path.display().to_string();
                let written = analysed.and_then(|(image, result)| {
                    sink.write(&source, 0, 0.0, &result)?;
                    write_marks(&stem_of(path), None, &image, &result)
                });
                if let Err(e) = written {
                    failures += 1;
                    eprintln!("affectd: {e:#}");
                }
            });
            continue;
        }
        let path = &args.paths[next];
        next += 1;
        let source = path.display().to_string();
        let stem = stem_of(path);
        let result = {
            (|| -> anyhow::Result<()> {
                let info = video::probe(path)?;
                let mut frames = video::Frames::open(path, info.clone())?;
                let bar = if args.quiet {
                    ProgressBar::hidden()
                } else {
                    let total = if args.max_frames > 0 {
                        info.frames.min(args.max_frames)
                    } else {
                        info.frames
                    };
                    let bar = ProgressBar::new(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} {bar:40} {pos}/{len} frames {per_sec} eta {eta}",
                        )
                        .expect("valid template"),
                    );
                    bar.set_message(stem.clone());
                    bar
                };
                // Pipelined: frame N's mesh runs beside frame N-1's remaining stages, and
                // each result arrives one frame late, for the frame kept in `in_flight`.
                let mut tracker =
                    PipelinedTracker::new(Tracker::new(detect_every), models.clone(), options);
                let mut in_flight: Option<(u64, Arc<RgbImage>)> = None;
                let mut index = 0u64;
                let mut dynamics = FaceDynamics::new(&config.expression);
                let mut emit = |(frame, image): (u64, Arc<RgbImage>),
                                mut result: FrameResult|
                 -> anyhow::Result<()> {
                    let t = frame as f64 / info.fps;
                    let found = dynamics.observe(t, &mut result);
                    sink.write(&source, frame, t, &result)?;
                    sink.events(&source, found)?;
                    write_marks(&stem, Some(frame), &image, &result)?;
                    bar.inc(1);
                    Ok(())
                };
                let decoded = (|| -> anyhow::Result<()> {
                    while args.max_frames == 0 || index < args.max_frames {
                        let Some(image) = frames.next_frame()? else {
                            break;
                        };
                        let image = Arc::new(image);
                        let returned = tracker.push(image.clone());
                        let finished = in_flight.replace((index, image));
                        index += 1;
                        if let Some(result) = returned? {
                            emit(finished.expect("a result follows its frame"), result)?;
                        }
                    }
                    Ok(())
                })();
                // The last frame's result, also after an error: what was decoded is kept.
                let last = match (tracker.finish(), in_flight.take()) {
                    (Ok(Some(result)), Some(frame)) => emit(frame, result),
                    (Ok(_), _) => Ok(()),
                    (Err(e), _) => Err(e.into()),
                };
                let last = last.and_then(|()| sink.events(&source, dynamics.finish()));
                bar.finish_and_clear();
                decoded?;
                last?;
                if index == 0 {
                    bail!("{source}: the video has no decodable frames");
                }
                Ok(())
            })()
        };
        if let Err(e) = result {
            failures += 1;
            eprintln!("affectd: {e:#}");
        }
    }
    match sink.csv.take() {
        Some(mut csv) => csv.flush()?,
        None => sink.out.flush()?,
    }
    if let Some(mut table) = sink.events.take() {
        table.flush()?;
    }
    if failures > 0 {
        bail!("{failures} of {} input(s) failed", args.paths.len());
    }
    Ok(())
}

/// Runs `work` on each item with one thread per core and hands each result to `emit` in
/// the items' order. Items go in chunks of four per core, so that at most that many
/// results (decoded images) are held at once; within a chunk each thread takes the next
/// item as it becomes free. Hand-written with scoped threads: the crate has no rayon
/// (candle's own threads take the cores when it runs), and this is all it needs.
fn in_order_on_every_core<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    mut emit: impl FnMut(&T, R),
) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for chunk in items.chunks(4 * threads) {
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<Option<R>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.min(chunk.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(item) = chunk.get(i) else {
                                return done;
                            };
                            done.push((i, work(item)));
                        }
                    })
                })
                .collect();
            let mut results: Vec<Option<R>> = (0..chunk.len()).map(|_| None).collect();
            for worker in workers {
                // A panic in `work` is a bug: it propagates, as on one thread.
                for (i, result) in worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
                {
                    results[i] = Some(result);
                }
            }
            results
        });
        for (item, result) in chunk.iter().zip(results.iter_mut()) {
            emit(
                item,
                result.take().expect("every item of the chunk was taken"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items that take uneven times still come out once each, in order, and the work ran
    /// on more than one thread where the machine has more than one core.
    #[test]
    fn results_come_out_in_the_items_order() {
        let items: Vec<u64> = (0..37).collect();
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        let mut seen = Vec::new();
        in_order_on_every_core(
            &items,
            |&i| {
                threads.lock().unwrap().insert(std::thread::current().id());
                std::thread::sleep(std::time::Duration::from_millis((37 - i) % 5));
                i * 10
            },
            |&item, result| seen.push((item, result)),
        );
        assert_eq!(seen, items.iter().map(|&i| (i, i * 10)).collect::<Vec<_>>());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads.lock().unwrap().len() > 1, cores > 1);
        // Nothing to do: nothing emitted, no thread started.
        in_order_on_every_core(&[] as &[u64], |_| unreachable!(), |_, _: ()| unreachable!());
    }
}
