//! `affectd explain IMAGE`: the Explain RPC's path without a server (tokens stream to
//! stderr, the result is JSON on stdout), and `affectd eval explain DIR`: accuracy and
//! macro-F1 of the SoVTP judgements against labelled photos, beside the FER model alone,
//! the AU prototypes alone and chance, in the shape of the SoVTP paper's comparison.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use affectd::config::Config;
use affectd::explain::{self, Explainer, Explanation};
use affectd::vision::expression::LABELS as FACE_LABELS;
use affectd::vision::image::ImageInput;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A JPEG or PNG image, or a video (with --at).
    pub image: PathBuf,
    /// Video: explain the frame at this time, s from the video's start, with the faces'
    /// expression episodes up to it.
    #[arg(long)]
    pub at: Option<f64>,
    #[command(flatten)]
    pub options: ExplainOptions,
    /// Do not echo the tokens to stderr as they arrive.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct RecordedExplainArgs {
    /// A recorded session.
    pub session_id: String,
    /// The moment, s, in the session's client clock.
    #[arg(long)]
    pub at: f64,
    #[command(flatten)]
    pub options: ExplainOptions,
    /// Do not echo the tokens to stderr as they arrive.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainOptions {
    /// "candle" (in process) or "openai"; default: [llm] default_backend.
    #[arg(long, default_value = "")]
    pub backend: String,
    /// The label set, comma-separated (default: the 7 basic emotions).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Only these faces (ids as numbered in the marked image); default: all.
    #[arg(long = "face-id")]
    pub face_ids: Vec<u32>,
    /// Most tokens per attempt; 0 = enough for the answer's schema (grows with the faces).
    #[arg(long, default_value_t = 0)]
    pub max_tokens: u32,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Leave the marked image out of the prompt (text-only models never get it).
    #[arg(long)]
    pub no_image: bool,
    /// Scene or task context, quoted to the model as data.
    #[arg(long, default_value = "")]
    pub context: String,
    /// The prompt template: `sovtp@2` (default), `sovtp@1`, or a NAME@VERSION.txt file;
    /// overrides `[llm] template`.
    #[arg(long)]
    pub template: Option<String>,
}

impl ExplainOptions {
    /// The configuration with this command's template, if it names one.
    fn config(&self, config: &Config) -> Config {
        let mut config = config.clone();
        if let Some(template) = &self.template {
            config.llm.template = template.clone();
        }
        config
    }
}

impl ExplainOptions {
    fn request(&self, include_image: bool) -> explain::Request {
        explain::Request {
            labels: self.labels.clone(),
            backend: self.backend.clone(),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: (self.seed != 0).then_some(self.seed),
            include_image,
            context: self.context.clone(),
            face_ids: self.face_ids.clone(),
            ..Default::default()
        }
    }
}

/// The face models and chat backends, without a server: no port is bound and the session
/// database is never opened.
fn load_explainer(config: &Config) -> anyhow::Result<Explainer> {
    let (manifest, models) = affectd::engine::load_models(config)?;
    Ok(Explainer::new(config, &manifest, &models))
}

/// Runs one prepared explanation; `on_token` sees the streamed text.
fn explain_once(
    prepared: explain::Prepared,
    mut on_token: impl FnMut(&str),
) -> anyhow::Result<Explanation> {
    match explain::run(
        prepared,
        &mut |piece| {
            on_token(piece);
            true
        },
        &|| false,
    ) {
        Ok(Some(result)) => Ok(result),
        Ok(None) => bail!("the explanation was cancelled"),
        Err(e) => bail!("{e}"),
    }
}

pub fn run(config: &Config, args: ExplainArgs) -> anyhow::Result<()> {
    let explainer = load_explainer(&args.options.config(config))?;
    let request = args.options.request(!args.options.no_image);
    let quiet = args.quiet;
    let prepared = match args.at {
        Some(at) => {
            if !(at >= 0.0 && at.is_finite()) {
                bail!("--at must be a time >= 0 s from the video's start, got {at}");
            }
            let info = super::video::probe(&args.image)?;
            let mut frames = super::video::Frames::open(&args.image, info.clone())?;
            let mut index = 0u64;
            let decoded = std::iter::from_fn(|| {
                let frame = frames.next_frame().transpose()?;
                let t = index as f64 / info.fps;
                index += 1;
                Some(frame.map(|image| (t, image)).map_err(|e| format!("{e:#}")))
            });
            explainer.prepare_video(
                &request,
                decoded,
                at,
                config.vision.detect_every_n_frames,
                &config.expression,
            )?
        }
        None => {
            let encoded = std::fs::read(&args.image)
                .with_context(|| format!("reading {}", args.image.display()))?;
            explainer.prepare_image(&request, &ImageInput::Encoded(encoded))?
        }
    };
    print_explanation(prepared, quiet)
}

/// `affectd sessions explain ID --at T`: a recorded moment, read from the database.
pub fn run_recorded(config: &Config, args: RecordedExplainArgs) -> anyhow::Result<()> {
    let store = super::sessions::open(config)?;
    let explainer = load_explainer(&args.options.config(config))?;
    let request = args.options.request(!args.options.no_image);
    let prepared = explainer.prepare(&request, || {
        affectd::explain::recorded_moment(
            &store,
            &args.session_id,
            args.at,
            config.vision.max_image_pixels,
        )
    })?;
    print_explanation(prepared, args.quiet)
}

/// Runs a prepared explanation, echoing its tokens unless `quiet`, and prints the result
/// with the prompt's text as JSON.
fn print_explanation(prepared: explain::Prepared, quiet: bool) -> anyhow::Result<()> {
    let prompt: serde_json::Map<String, serde_json::Value> = prepared
        .prompt_text()
        .into_iter()
        .map(|(role, text)| (role.to_owned(), serde_json::Value::String(text)))
        .collect();
    let result = explain_once(prepared, |t| {
        if !quiet {
            eprint!("{t}");
            let _ = std::io::stderr().flush();
        }
    })?;
    if !quiet {
        eprintln!();
    }
    let mut out = affectd::formats::explanation_json::explanation_json(&result);
    out["prompt"] = serde_json::Value::Object(prompt);
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum EvalCommand {
    /// Accuracy and macro-F1 of SoVTP judgements on labelled face photos.
    Explain(EvalExplainArgs),
}

#[derive(Debug, clap::Args)]
pub struct EvalExplainArgs {
    /// A folder of JPEG/PNG photos of one face each. The label comes from --labels-csv, or
    /// else from the file name: a label word ("happy") or a NimStim-style code ("ha",
    /// "hao", "anc": ha=happy, sa=sad, an=angry, di=disgust, fe=fear, su=surprise,
    /// ne/ca=neutral) as a part of the name between - or _.
    pub dir: PathBuf,
    /// A CSV with columns file,label (file relative to DIR).
    #[arg(long)]
    pub labels_csv: Option<PathBuf>,
    /// Skip the language model (only the FER and AU-prototype rows).
    #[arg(long)]
    pub no_llm: bool,
    /// Write each photo's predictions and raw model text here (JSON lines).
    #[arg(long)]
    pub details: Option<PathBuf>,
    #[command(flatten)]
    pub options: ExplainOptions,
}

/// The label a file name states, if any.
fn label_from_name(path: &Path, labels: &[String]) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_lowercase();
    let codes = [
        ("ha", "happy"),
        ("sa", "sad"),
        ("an", "angry"),
        ("di", "disgust"),
        ("fe", "fear"),
        ("su", "surprise"),
        ("ne", "neutral"),
        ("ca", "neutral"),
    ];
    for part in stem.split(['-', '_', ' ', '.']) {
        if let Some(l) = labels.iter().find(|l| l.to_lowercase() == part) {
            return Some(l.clone());
        }
        // NimStim: two letters, then o/c/x for open/closed/exuberant mouth.
        let code = part.strip_suffix(['o', 'c', 'x']).unwrap_or(part);
        if code.len() == 2
            && let Some((_, name)) = codes.iter().find(|(c, _)| *c == code)
            && let Some(l) = labels.iter().find(|l| l.eq_ignore_ascii_case(name))
        {
            return Some(l.clone());
        }
    }
    None
}

fn labels_from_csv(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{}: row {}", path.display(), n + 2))?;
        if row.len() < 2 {
            bail!("{}: row {} needs file,label", path.display(), n + 2);
        }
        out.insert(row[0].trim().to_string(), row[1].trim().to_string());
    }
    Ok(out)
}

/// Accuracy and macro-F1 (over the classes that occur in truth or prediction, as
/// scikit-learn's default); a missing prediction is wrong and belongs to no class.
fn scores(pairs: &[(String, Option<String>)]) -> (f64, f64) {
    if pairs.is_empty() {
        return (0.0, 0.0);
    }
    let correct = pairs
        .iter()
        .filter(|(t, p)| p.as_deref() == Some(t.as_str()))
        .count();
    let mut classes: Vec<&str> = pairs.iter().map(|(t, _)| t.as_str()).collect();
    classes.extend(pairs.iter().filter_map(|(_, p)| p.as_deref()));
    classes.sort();
    classes.dedup();
    let f1s: Vec<f64> = classes
        .iter()
        .map(|c| {
            let tp = pairs
                .iter()
                .filter(|(t, p)| t == c && p.as_deref() == Some(c))
                .count() as f64;
            let predicted = pairs
                .iter()
                .filter(|(_, p)| p.as_deref() == Some(c))
                .count() as f64;
            let actual = pairs.iter().filter(|(t, _)| t == c).count() as f64;
            if tp == 0.0 {
                0.0
            } else {
                2.0 * tp / (predicted + actual)
            }
        })
        .collect();
    (
        correct as f64 / pairs.len() as f64,
        f1s.iter().sum::<f64>() / f1s.len() as f64,
    )
}

fn argmax_label(probabilities: &[f32; 7], labels: &[String]) -> Option<String> {
    // The face models' classes, restricted to the evaluated label set.
    FACE_LABELS
        .iter()
        .zip(probabilities)
        .filter(|(name, _)| labels.iter().any(|l| l.eq_ignore_ascii_case(name)))
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(name, _)| name.to_string())
}

pub fn eval(config: &Config, command: EvalCommand) -> anyhow::Result<()> {
    let EvalCommand::Explain(args) = command;
    let labels = affectd::prompt::label_set(&args.options.labels)?;
    let csv_labels = args
        .labels_csv
        .as_deref()
        .map(labels_from_csv)
        .transpose()?;
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(&args.dir)
        .with_context(|| format!("reading folder {}", args.dir.display()))?
    {
        let path = entry?.path();
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if !matches!(ext.as_str(), "jpg" | "jpeg" | "png") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let label = match &csv_labels {
            Some(map) => map.get(&name).cloned(),
            None => label_from_name(&path, &labels),
        };
        if let Some(label) = label {
            if !labels.contains(&label) {
                bail!("{name}: label {label:?} is not in the label set {labels:?}");
            }
            photos.push((path, label));
        }
    }
    photos.sort();
    if photos.is_empty() {
        bail!(
            "no labelled photos in {} (name them with a label or a NimStim code, or pass --labels-csv)",
            args.dir.display()
        );
    }
    let config = &args.options.config(config);
    let explainer = load_explainer(config)?;
    let mut details = args
        .details
        .as_deref()
        .map(std::fs::File::create)
        .transpose()
        .context("creating the details file")?;
    // Per row, (truth, prediction) pairs; the LLM rows per prompt variant.
    let (mut fer, mut prototypes, mut measured) = (Vec::new(), Vec::new(), Vec::new());
    let mut variants: Vec<Variant> = Vec::new();
    if !args.no_llm {
        variants.push(Variant::new("image-free SoVTP prompt", false));
        // The full SoVTP prompt (marked image + text) runs only where the model reads images.
        if explainer
            .backend(&args.options.backend)
            .is_ok_and(|b| b.accepts_images())
        {
            variants.push(Variant::new("full SoVTP prompt (image)", true));
        }
    }
    for (n, (path, truth)) in photos.iter().enumerate() {
        eprintln!("[{}/{}] {} ({truth})", n + 1, photos.len(), path.display());
        let image = ImageInput::Encoded(std::fs::read(path)?);
        let at = |e: affectd::error::Error| anyhow::anyhow!("{}: {e}", path.display());
        let frame = explainer
            .analyze_image(&image, &Default::default())
            .map(|(_, frame)| frame)
            .map_err(at)?;
        // The largest face is the photo's subject.
        let face = frame.faces.iter().max_by(|a, b| {
            (a.detection.width * a.detection.height)
                .total_cmp(&(b.detection.width * b.detection.height))
        });
        let expression = face.and_then(|f| f.expression.as_ref());
        let fer_label = expression
            .and_then(|e| e.fer.as_ref())
            .and_then(|p| argmax_label(p, &labels));
        let prototype_label = expression
            .and_then(|e| e.au_prototypes.as_ref())
            .and_then(|p| argmax_label(p, &labels));
        let measured_label = expression.and_then(|e| argmax_label(&e.combined, &labels));
        fer.push((truth.clone(), fer_label.clone()));
        prototypes.push((truth.clone(), prototype_label.clone()));
        measured.push((truth.clone(), measured_label.clone()));
        let mut detail = serde_json::json!({
            "file": path.file_name().map(|f| f.to_string_lossy().into_owned()),
            "truth": truth,
            "faces": frame.faces.len(),
            "fer": fer_label,
            "au_prototypes": prototype_label,
            "combined_expression": measured_label,
        });
        for variant in &mut variants {
            // A photo without a face has nothing to explain: it counts as no answer in
            // every LLM row. Any other failure stops the evaluation.
            let result = match face {
                None => None,
                Some(_) => {
                    let prepared = explainer
                        .prepare_image(&args.options.request(variant.image), &image)
                        .map_err(at)?;
                    Some(explain_once(prepared, |_| {})?)
                }
            };
            variant.add(truth, &labels, face.map(|f| f.face_id), result.as_ref());
            detail[variant.name] = result.as_ref().map_or(
                serde_json::Value::Null,
                affectd::formats::explanation_json::explanation_json,
            );
        }
        if let Some(file) = &mut details {
            writeln!(file, "{detail}")?;
        }
    }
    let n = photos.len();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, truth) in &photos {
        *counts.entry(truth.as_str()).or_default() += 1;
    }
    let majority = *counts.values().max().unwrap_or(&0) as f64 / n as f64;
    println!(
        "{n} photos from {}; label set of {} ({}); classes present: {}",
        args.dir.display(),
        labels.len(),
        labels.join(", "),
        counts
            .iter()
            .map(|(l, c)| format!("{l} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "No training and no split: every photo is a test photo (zero-shot). Prompt template: {}.\n",
        config.llm.template
    );
    println!("| method | accuracy | macro-F1 | note |");
    println!("|---|---|---|---|");
    let row = |name: &str, pairs: &[(String, Option<String>)], note: &str| {
        let (acc, f1) = scores(pairs);
        println!("| {name} | {acc:.3} | {f1:.3} | {note} |");
    };
    if args.no_llm {
        println!("| LLM, image-free SoVTP prompt | - | - | not run (--no-llm) |");
    }
    for v in &variants {
        let unparsed = "unparsed count as wrong";
        row(
            &format!("LLM, {}", v.name),
            &v.llm,
            &format!(
                "{}; parsed without repair {}/{n}, after repair {}/{n}, {unparsed}",
                v.backend, v.parsed_first, v.parsed
            ),
        );
        row(
            &format!("LLM combined with evidence, {}", v.name),
            &v.combined,
            &format!(
                "{}; no label probabilities or no measured expression count as wrong",
                if v.method.is_empty() {
                    "-"
                } else {
                    v.method.as_str()
                }
            ),
        );
    }
    row("FER model alone", &fer, "argmax of the 7-class FER CNN");
    row(
        "AU prototypes alone",
        &prototypes,
        "argmax of the EMFACS prototype scores",
    );
    row(
        "face pipeline's combined expression",
        &measured,
        "argmax of the FER and AU-prototype average (the evidence the combination uses)",
    );
    println!(
        "| chance (uniform) | {:.3} | - | 1/{} labels |",
        1.0 / labels.len() as f64,
        labels.len()
    );
    println!("| chance (majority class) | {majority:.3} | - | always the most frequent label |");
    for v in &variants {
        if let Some((ece, brier, m)) = calibration(&v.probabilities, &labels) {
            println!(
                "\nCalibration of the label probabilities ({}; {m} judgements): expected calibration error {ece:.3} (10 bins of the top label's probability), Brier score {brier:.3} (multi-class, 0 best, 2 worst).",
                v.name
            );
        }
    }
    Ok(())
}

/// One LLM row of the evaluation: a prompt variant's answers.
struct Variant {
    name: &'static str,
    image: bool,
    backend: String,
    method: String,
    llm: Vec<(String, Option<String>)>,
    combined: Vec<(String, Option<String>)>,
    parsed: usize,
    parsed_first: usize,
    /// (truth, label probabilities) of every judgement that has them.
    probabilities: Vec<(String, Vec<f32>)>,
}

impl Variant {
    fn new(name: &'static str, image: bool) -> Self {
        Self {
            name,
            image,
            backend: String::new(),
            method: String::new(),
            llm: Vec::new(),
            combined: Vec::new(),
            parsed: 0,
            parsed_first: 0,
            probabilities: Vec::new(),
        }
    }

    /// The answer about the photo's subject (`subject`: its face id), or none.
    fn add(
        &mut self,
        truth: &str,
        labels: &[String],
        subject: Option<u32>,
        result: Option<&Explanation>,
    ) {
        let judged = result.and_then(|r| {
            r.judgements
                .iter()
                .find(|j| Some(j.judgement.face_id) == subject)
        });
        if let Some(r) = result {
            self.backend = format!("{} {}", r.backend, r.model);
            self.parsed += usize::from(r.parsed);
            self.parsed_first += usize::from(r.parsed && r.repair_attempts == 0);
            if !r.combination_method.is_empty() {
                self.method = r.combination_method.clone();
            }
        }
        self.llm
            .push((truth.to_string(), judged.map(|j| j.judgement.label.clone())));
        self.combined.push((
            truth.to_string(),
            judged.and_then(|j| j.combined.as_ref().map(|c| c.0.clone())),
        ));
        if let Some(j) = judged
            && j.label_probabilities.len() == labels.len()
        {
            self.probabilities
                .push((truth.to_string(), j.label_probabilities.clone()));
        }
    }
}

/// Expected calibration error (10 equal-width bins of the top probability; Guo et al.
/// 2017) and the multi-class Brier score (sum over labels of the squared error, averaged;
/// Brier 1950) of label distributions against the truth. None without any.
fn calibration(rows: &[(String, Vec<f32>)], labels: &[String]) -> Option<(f64, f64, usize)> {
    if rows.is_empty() {
        return None;
    }
    let mut bins = vec![(0usize, 0.0f64, 0.0f64); 10];
    let mut brier = 0.0;
    for (truth, p) in rows {
        let (best, top) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, v)| (i, *v as f64))
            .unwrap_or((0, 0.0));
        let correct = labels.get(best).is_some_and(|l| l == truth);
        let bin = &mut bins[((top * 10.0) as usize).min(9)];
        bin.0 += 1;
        bin.1 += top;
        bin.2 += f64::from(u8::from(correct));
        brier += labels
            .iter()
            .zip(p)
            .map(|(l, &q)| {
                let y = f64::from(u8::from(l == truth));
                (q as f64 - y).powi(2)
            })
            .sum::<f64>();
    }
    let n = rows.len() as f64;
    let ece = bins
        .iter()
        .filter(|b| b.0 > 0)
        .map(|(count, confidence, correct)| {
            (*count as f64 / n) * ((confidence - correct) / *count as f64).abs()
        })
        .sum();
    Some((ece, brier / n, rows.len()))
}

#[cfg(feature = "candle")]
#[derive(Debug, clap::Args)]
pub struct BenchLlmArgs {
    /// A Qwen2 or Gemma 3 GGUF.
    #[arg(long)]
    pub model: PathBuf,
    /// The user message (the chat template and system turn are added).
    #[arg(long)]
    pub prompt_file: PathBuf,
    /// Greedy tokens to generate per run (end-of-turn ignored).
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Prompt tokens per forward pass (the server's default).
    #[arg(long, default_value_t = affectd::llm::candle::DEFAULT_PREFILL_CHUNK)]
    pub chunk: usize,
}

/// Prints one JSON object: the prompt's token ids, per-run timings and the greedy tokens,
/// so that a peer can be run on exactly the same ids.
#[cfg(feature = "candle")]
pub fn bench_llm(args: BenchLlmArgs) -> anyhow::Result<()> {
    use affectd::llm::{ChatRequest, Message};
    let user = std::fs::read_to_string(&args.prompt_file)
        .with_context(|| format!("reading {}", args.prompt_file.display()))?;
    let loading = std::time::Instant::now();
    let mut model = affectd::llm::candle::Loaded::load(&args.model)?;
    let load_s = loading.elapsed().as_secs_f64();
    let request = ChatRequest {
        messages: vec![
            Message::text("system", "You are a careful affective-computing assistant."),
            Message::text("user", user),
        ],
        max_tokens: args.tokens as u32,
        temperature: 0.0,
        top_p: 1.0,
        seed: None,
        stop: Vec::new(),
        response: None,
        no_repeat_ngram: 0,
    };
    let prompt = model.prompt_tokens(&request)?;
    let mut runs = Vec::new();
    let mut generated = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let (prompt_time, generate_time, tokens) =
            model.time_greedy(&prompt, args.tokens, args.chunk)?;
        runs.push(serde_json::json!({
            "prompt_s": prompt_time.as_secs_f64(),
            "generate_s": generate_time.as_secs_f64(),
        }));
        generated = tokens;
    }
    println!(
        "{}",
        serde_json::json!({
            "load_s": load_s,
            "prompt_ids": prompt,
            "runs": runs,
            "generated": generated,
        })
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_py_feat_and_plain_names() {
        let labels: Vec<String> = affectd::prompt::DEFAULT_LABELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let l = |name: &str| label_from_name(Path::new(name), &labels);
        assert_eq!(l("0-f1-su-ph.jpg").as_deref(), Some("surprise"));
        assert_eq!(l("0-f15-hao-ph.jpg").as_deref(), Some("happy"));
        assert_eq!(l("15-f13-anc-ph.jpg").as_deref(), Some("angry"));
        assert_eq!(l("45-m7-di-ph.jpg").as_deref(), Some("disgust"));
        assert_eq!(l("subject3_sad.png").as_deref(), Some("sad"));
        assert_eq!(l("single_face.jpg"), None);
        assert_eq!(l("multi_face.jpg"), None);
    }

    #[test]
    fn calibration_as_worked_out_by_hand() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // Two answers at 0.8 on "a": one right, one wrong. Bin 8: confidence 0.8,
        // accuracy 0.5, so ECE = 0.3; Brier = ((0.2^2 + 0.2^2) + (0.8^2 + 0.8^2)) / 2 = 0.68.
        let rows = vec![
            ("a".to_string(), vec![0.8, 0.2]),
            ("b".to_string(), vec![0.8, 0.2]),
        ];
        let (ece, brier, n) = calibration(&rows, &labels).unwrap();
        assert!((ece - 0.3).abs() < 1e-6, "{ece}");
        assert!((brier - 0.68).abs() < 1e-6, "{brier}");
        assert_eq!(n, 2);
        assert!(calibration(&[], &labels).is_none());
    }

    #[test]
    fn accuracy_and_macro_f1_as_scikit_learn() {
        // sklearn: accuracy_score 0.5, f1_score(average="macro") over {a, b, c} = 0.4444.
        let pairs = vec![
            ("a".to_string(), Some("a".to_string())),
            ("a".to_string(), Some("b".to_string())),
            ("b".to_string(), Some("b".to_string())),
            ("c".to_string(), None),
        ];
        let (acc, f1) = scores(&pairs);
        assert_eq!(acc, 0.5);
        assert!(
            (f1 - (2.0 / 3.0 + 2.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12,
            "{f1}"
        );
    }
}
