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
    /// A JPEG or PNG image.
    pub image: PathBuf,
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
    #[arg(long, default_value_t = 512)]
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

fn result_json(r: &Explanation) -> serde_json::Value {
    let t = &r.timings;
    serde_json::json!({
        "parsed": r.parsed,
        "judgements": r.judgements,
        "parse_error": r.parse_error,
        "repair_attempts": r.repair_attempts,
        "raw_text": r.raw_text,
        "template_id": r.template_id,
        "image_included": r.image_included,
        "backend": r.backend,
        "model": r.model,
        "timings": {
            "time_to_first_token_ms": t.time_to_first_token_ms,
            "prompt_tokens": t.prompt_tokens,
            "generated_tokens": t.generated_tokens,
            "prompt_tokens_per_s": t.prompt_tokens_per_s,
            "generation_tokens_per_s": t.generation_tokens_per_s,
            "total_ms": t.total_ms,
        },
    })
}

pub fn run(config: &Config, args: ExplainArgs) -> anyhow::Result<()> {
    let encoded =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let explainer = load_explainer(config)?;
    let request = args.options.request(!args.options.no_image);
    let quiet = args.quiet;
    let prepared = explainer.prepare_image(&request, &ImageInput::Encoded(encoded))?;
    let result = explain_once(prepared, |t| {
        if !quiet {
            eprint!("{t}");
            let _ = std::io::stderr().flush();
        }
    })?;
    if !quiet {
        eprintln!();
    }
    println!("{}", serde_json::to_string_pretty(&result_json(&result))?);
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
    let explainer = load_explainer(config)?;
    let mut details = args
        .details
        .as_deref()
        .map(std::fs::File::create)
        .transpose()
        .context("creating the details file")?;
    let (mut fer, mut prototypes, mut llm) = (Vec::new(), Vec::new(), Vec::new());
    let mut llm_image = Vec::new();
    let (mut parsed, mut parsed_image) = (0, 0);
    let mut llm_backend = String::new();
    // The full SoVTP prompt (marked image + text) runs only where the model reads images.
    let image_row = !args.no_llm
        && explainer
            .backend(&args.options.backend)
            .is_ok_and(|b| b.accepts_images());
    for (n, (path, truth)) in photos.iter().enumerate() {
        eprintln!("[{}/{}] {} ({truth})", n + 1, photos.len(), path.display());
        let image = ImageInput::Encoded(std::fs::read(path)?);
        let at = |e: affectd::error::Error| anyhow::anyhow!("{}: {e}", path.display());
        let analyze = || {
            explainer
                .analyze_image(&image, &Default::default())
                .map(|(_, frame)| frame)
                .map_err(at)
        };
        // The faces are analysed once: by the prompt's preparation when the LLM runs.
        let (frame, prepared) = if args.no_llm {
            (analyze()?, None)
        } else {
            match explainer.prepare_image(&args.options.request(false), &image) {
                Ok(prepared) => (prepared.frame.clone(), Some(prepared)),
                // A photo without a face has nothing to explain: it counts as no answer
                // in every row. Any other failure stops the evaluation.
                Err(error) => {
                    let frame = analyze()?;
                    if !frame.faces.is_empty() {
                        return Err(at(error));
                    }
                    (frame, None)
                }
            }
        };
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
        fer.push((truth.clone(), fer_label.clone()));
        prototypes.push((truth.clone(), prototype_label.clone()));
        // The judgement of the subject (the prompt asks about every face); unparsed
        // answers count as no answer.
        let subject_label = |result: &Explanation| {
            result
                .judgements
                .iter()
                .find(|j| face.is_some_and(|f| f.face_id == j.face_id))
                .map(|j| j.label.clone())
        };
        let mut llm_label = None;
        let mut raw = String::new();
        let mut image_label = None;
        let mut image_raw = String::new();
        if let Some(prepared) = prepared {
            let result = explain_once(prepared, |_| {})?;
            llm_backend = format!("{} {}", result.backend, result.model);
            parsed += usize::from(result.parsed);
            llm_label = subject_label(&result);
            raw = result.raw_text;
            llm.push((truth.clone(), llm_label.clone()));
            if image_row {
                let prepared = explainer
                    .prepare_image(&args.options.request(true), &image)
                    .map_err(at)?;
                let result = explain_once(prepared, |_| {})?;
                parsed_image += usize::from(result.parsed);
                image_label = subject_label(&result);
                image_raw = result.raw_text;
                llm_image.push((truth.clone(), image_label.clone()));
            }
        } else if !args.no_llm {
            llm.push((truth.clone(), None));
            if image_row {
                llm_image.push((truth.clone(), None));
            }
        }
        if let Some(file) = &mut details {
            writeln!(
                file,
                "{}",
                serde_json::json!({
                    "file": path.file_name().map(|f| f.to_string_lossy().into_owned()),
                    "truth": truth,
                    "faces": frame.faces.len(),
                    "fer": fer_label,
                    "au_prototypes": prototype_label,
                    "llm_image_free": llm_label,
                    "llm_raw_text": raw,
                    "llm_with_image": image_label,
                    "llm_with_image_raw_text": image_raw,
                })
            )?;
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
    println!("No training and no split: every photo is a test photo (zero-shot).\n");
    println!("| method | accuracy | macro-F1 | note |");
    println!("|---|---|---|---|");
    let row = |name: &str, pairs: &[(String, Option<String>)], note: &str| {
        let (acc, f1) = scores(pairs);
        println!("| {name} | {acc:.3} | {f1:.3} | {note} |");
    };
    if args.no_llm {
        println!("| LLM, full SoVTP prompt (image) | - | - | not run (--no-llm) |");
        println!("| LLM, image-free SoVTP prompt | - | - | not run (--no-llm) |");
    } else {
        if image_row {
            row(
                "LLM, full SoVTP prompt (image)",
                &llm_image,
                &format!("{llm_backend}; parsed {parsed_image}/{n}, unparsed count as wrong"),
            );
        } else {
            println!(
                "| LLM, full SoVTP prompt (image) | - | - | not run: the model takes no images |"
            );
        }
        row(
            "LLM, image-free SoVTP prompt",
            &llm,
            &format!("{llm_backend}; parsed {parsed}/{n}, unparsed count as wrong"),
        );
    }
    row("FER model alone", &fer, "argmax of the 7-class FER CNN");
    row(
        "AU prototypes alone",
        &prototypes,
        "argmax of the EMFACS prototype scores",
    );
    println!(
        "| chance (uniform) | {:.3} | - | 1/{} labels |",
        1.0 / labels.len() as f64,
        labels.len()
    );
    println!("| chance (majority class) | {majority:.3} | - | always the most frequent label |");
    Ok(())
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
    /// Prompt tokens per forward pass.
    #[arg(long, default_value_t = 512)]
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
        constrain_labels: Vec::new(),
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
