//! Explain: image -> faces -> SoVTP prompt -> a chat backend's streamed tokens -> a
//! validated judgement (one repair attempt), or the raw text marked unparsed. No label ever
//! comes from anywhere but the model.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::Status;

use super::convert;
use super::state::ServerState;
use crate::config::LlmConfig;
use crate::llm::candle::{CandleBackend, CandleConfig};
use crate::llm::openai::{OpenAiBackend, OpenAiConfig};
use crate::llm::{ChatBackend, ChatRequest, Generation, LlmError, Message, Part};
use crate::models::loaded::ModelSet;
use crate::models::manifest::Manifest;
use crate::prompt::{self, FaceCue, PromptInput, Template, judgement};
use crate::proto;
use crate::vision::marks;

const DEFAULT_MAX_TOKENS: u32 = 512;

/// Everything checked and computed before streaming starts, so that bad requests get a
/// status instead of a broken stream.
pub struct Prepared {
    /// The faces the prompt describes.
    pub frame: crate::vision::FrameResult,
    backend: Arc<dyn ChatBackend>,
    template: Template,
    labels: Vec<String>,
    targets: Vec<u32>,
    /// Whether the marked image is in the prompt.
    with_image: bool,
    messages: Vec<Message>,
    request: ChatRequest,
}

/// The openai backend from the configuration; None when `llm.openai_url` is empty.
/// The candle backend for the configured GGUF (`[llm] candle_model`: a manifest id or a
/// path; empty: the manifest's default explanation model), or why there is none. The
/// model is checked on disk here and loaded on the first request.
pub fn candle_backend(
    llm: &LlmConfig,
    manifest: &Manifest,
    models: &ModelSet,
) -> Result<Arc<dyn ChatBackend>, String> {
    let chosen = llm.candle_model.trim();
    let (path, name) = if chosen.ends_with(".gguf") || chosen.contains('/') {
        let path = PathBuf::from(chosen);
        if !path.is_file() {
            return Err(format!(
                "[llm] candle_model {} is not a file",
                path.display()
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (path, name)
    } else {
        let entry = if chosen.is_empty() {
            manifest
                .default_for("explanation-llm")
                .ok_or("the model manifest names no default explanation-llm")?
        } else {
            manifest.get(chosen).map_err(|e| e.to_string())?
        };
        if let Some(state) = models.get(&entry.id)
            && state.status != crate::models::loaded::Status::Available
        {
            return Err(format!("model {}: {}", entry.id, state.reason));
        }
        (manifest.path_of(entry), entry.id.clone())
    };
    Ok(Arc::new(CandleBackend::new(CandleConfig {
        model_path: path,
        model_name: name,
        prefill_chunk: 256,
    })))
}

pub fn openai_backend(llm: &LlmConfig) -> Option<Arc<dyn ChatBackend>> {
    if llm.openai_url.is_empty() {
        return None;
    }
    let api_key = (!llm.openai_api_key_env.is_empty())
        .then(|| std::env::var(&llm.openai_api_key_env).ok())
        .flatten();
    Some(Arc::new(OpenAiBackend::new(OpenAiConfig {
        base_url: llm.openai_url.clone(),
        model: llm.openai_model.clone(),
        api_key,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs_f64(llm.timeout_s),
        retries: llm.retries,
        accepts_images: llm.openai_images,
    })))
}

pub fn backend(state: &ServerState, requested: &str) -> Result<Arc<dyn ChatBackend>, Status> {
    let name = if requested.is_empty() {
        state.config.llm.default_backend.as_str()
    } else {
        requested
    };
    match name {
        "openai" => state.openai.clone().ok_or_else(|| {
            Status::failed_precondition(
                "backend openai is not configured: set [llm] openai_url (or AFFECTD_OPENAI_URL) to an OpenAI-compatible server",
            )
        }),
        "candle" => match &state.candle {
            Ok(backend) => Ok(backend.clone()),
            Err(reason) => Err(Status::unavailable(format!(
                "backend candle is unavailable: {reason}"
            ))),
        },
        other => Err(Status::invalid_argument(format!(
            "backend {other:?} is unknown; use \"candle\" or \"openai\""
        ))),
    }
}

fn llm_status(e: LlmError) -> Status {
    match e {
        LlmError::Unavailable { .. } | LlmError::Protocol { .. } => {
            Status::unavailable(e.to_string())
        }
        LlmError::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
        LlmError::Unsupported { .. } | LlmError::TooLong { .. } => {
            Status::invalid_argument(e.to_string())
        }
        LlmError::Model { .. } => Status::internal(e.to_string()),
    }
}

/// The faces in encoded image bytes, analysed with the server's defaults (for evaluation
/// against the same faces the prompt describes).
pub fn analyze_image(
    state: &ServerState,
    encoded: &[u8],
) -> Result<crate::vision::FrameResult, Status> {
    let input = proto::ImageInput {
        data: Some(proto::image_input::Data::Encoded(encoded.to_vec())),
    };
    analyze(state, &input, None).map(|(_, frame)| frame)
}

/// The decoded image and its faces, as the prompt will describe them.
fn analyze(
    state: &ServerState,
    input: &proto::ImageInput,
    frame_options: Option<&proto::FrameOptions>,
) -> Result<(image::RgbImage, crate::vision::FrameResult), Status> {
    let models = state.face_models.as_ref().ok_or_else(|| {
        Status::failed_precondition(
            "face_detection is unavailable, so there are no faces to explain",
        )
    })?;
    let vision = &state.config.vision;
    let image = convert::decode_image(Some(input), vision.max_image_pixels)?;
    let options = convert::analyze_options(frame_options, vision)?;
    let frame = models
        .analyze(&image, &options)
        .map_err(|e| Status::internal(format!("face analysis failed: {e}")))?;
    Ok((image, frame))
}

/// Windows that ended this long before the explained frame are stale: their stream has
/// stopped, and they do not describe the moment being explained.
const STALE_WINDOW_S: f64 = 30.0;

/// What the prompt describes: a decoded frame, its faces and, from a live session, the
/// physiological cues of its current windows.
pub struct Moment {
    pub image: Arc<image::RgbImage>,
    pub frame: crate::vision::FrameResult,
    pub physiology: Option<prompt::PhysioCues>,
}

/// A live session's latest frame and the windows current at it.
pub fn session_moment(state: &ServerState, session_id: &str) -> Result<Moment, Status> {
    let live = state.sessions.get(session_id).ok_or_else(|| {
        Status::not_found(format!(
            "no live session `{session_id}`: explanations read a running session's latest window (a recorded session that has ended can be exported, not explained)"
        ))
    })?;
    moment_of(&live.snapshot(), session_id)
}

/// The moment a session snapshot holds.
pub fn moment_of(snapshot: &crate::session::Snapshot, session_id: &str) -> Result<Moment, Status> {
    let frame = snapshot.frame.as_ref().ok_or_else(|| {
        Status::failed_precondition(format!(
            "session `{session_id}` has no analysed frame yet, so there are no faces to explain; send frames first"
        ))
    })?;
    let windows: Vec<_> = snapshot
        .windows
        .values()
        .filter(|w| w.end_time >= frame.timestamp - STALE_WINDOW_S)
        .cloned()
        .collect();
    let physiology = (!windows.is_empty())
        .then(|| prompt::PhysioCues::from_windows(&windows))
        .filter(|cues| *cues != prompt::PhysioCues::default());
    Ok(Moment {
        image: frame.image.clone(),
        frame: (*frame.faces).clone(),
        physiology,
    })
}

/// CPU-bound part (decode, faces, marks, prompt); run off the async workers.
pub fn prepare(state: &ServerState, request: &proto::ExplainRequest) -> Result<Prepared, Status> {
    prepare_from(state, request, |state| match &request.source {
        Some(proto::explain_request::Source::Image(input)) => {
            let (image, frame) = analyze(state, input, request.frame_options.as_ref())?;
            Ok(Moment {
                image: Arc::new(image),
                frame,
                physiology: None,
            })
        }
        Some(proto::explain_request::Source::SessionId(id)) => session_moment(state, id),
        None => Err(Status::invalid_argument(
            "source: send an image (or a session_id)",
        )),
    })
}

/// Checks the request, then builds the prompt for the moment `moment` resolves (called
/// only once the request's own fields are valid).
pub fn prepare_from(
    state: &ServerState,
    request: &proto::ExplainRequest,
    moment: impl FnOnce(&ServerState) -> Result<Moment, Status>,
) -> Result<Prepared, Status> {
    let labels =
        prompt::label_set(&request.labels).map_err(|e| Status::invalid_argument(e.to_string()))?;
    if !(request.temperature >= 0.0 && request.temperature.is_finite()) {
        return Err(Status::invalid_argument(format!(
            "temperature must be >= 0, got {}",
            request.temperature
        )));
    }
    if !(0.0..=1.0).contains(&request.top_p) {
        return Err(Status::invalid_argument(format!(
            "top_p must be in (0,1] (0 = 1), got {}",
            request.top_p
        )));
    }
    let backend = backend(state, &request.backend)?;
    if !request.model.is_empty() && request.model != backend.model() {
        return Err(Status::unimplemented(format!(
            "model {:?}: choosing the model per request is not built; backend {} runs {:?} (leave model empty, or configure the model: [llm] candle_model, or the openai server's)",
            request.model,
            backend.name(),
            backend.model()
        )));
    }
    let template = if state.config.llm.template.as_os_str().is_empty() {
        Template::builtin()
    } else {
        Template::load(&state.config.llm.template)
            .map_err(|e| Status::failed_precondition(e.to_string()))?
    };
    let Moment {
        image,
        frame: result,
        physiology,
    } = moment(state)?;
    if result.faces.is_empty() {
        return Err(Status::invalid_argument(
            "no face was found in the image, so there is nothing to explain",
        ));
    }
    let targets: Vec<u32> = if request.face_ids.is_empty() {
        result.faces.iter().map(|f| f.face_id).collect()
    } else {
        for id in &request.face_ids {
            if !result.faces.iter().any(|f| f.face_id == *id) {
                return Err(Status::invalid_argument(format!(
                    "face_ids: the image has no face {id} (it has {:?})",
                    result.faces.iter().map(|f| f.face_id).collect::<Vec<_>>()
                )));
            }
        }
        request.face_ids.clone()
    };
    let with_image = request.include_image && backend.accepts_images();
    let built = prompt::build(
        &template,
        &PromptInput {
            targets: targets.clone(),
            faces: result.faces.iter().map(FaceCue::from_face).collect(),
            labels: labels.clone(),
            context: (!request.context.trim().is_empty()).then(|| request.context.clone()),
            physiology,
            with_image,
        },
    )
    .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut user = Vec::new();
    if with_image {
        let (layers, _) = convert::mark_options(request.frame_options.as_ref());
        let marked = marks::render(&image, &result.faces, &layers);
        user.push(Part::Image {
            mime: "image/png",
            bytes: marks::encode(&marked, marks::Encoding::Png),
        });
    }
    user.push(Part::Text(built.user));
    let messages = vec![
        Message::text("system", built.system),
        Message {
            role: "user",
            parts: user,
        },
    ];
    Ok(Prepared {
        frame: result,
        backend,
        template,
        labels: labels.clone(),
        targets,
        with_image,
        request: ChatRequest {
            messages: messages.clone(),
            max_tokens: if request.max_tokens == 0 {
                DEFAULT_MAX_TOKENS
            } else {
                request.max_tokens
            },
            temperature: request.temperature,
            top_p: if request.top_p == 0.0 {
                1.0
            } else {
                request.top_p
            },
            seed: (request.seed != 0).then_some(request.seed),
            stop: Vec::new(),
            constrain_labels: labels,
        },
        messages,
    })
}

/// Streams tokens and then the result into `tx`; stops generating when the client leaves.
pub fn run(prepared: Prepared, tx: mpsc::Sender<Result<proto::ExplainResponse, Status>>) {
    run_into(prepared, &|event| tx.blocking_send(event).is_ok(), &|| {
        tx.is_closed()
    });
}

/// Streams tokens, then the result (or an error status), into `send`, which answers
/// whether the receiver is still there; `gone` is polled between tokens so that
/// generation stops promptly when it leaves. Returns the result that was sent.
pub fn run_into(
    prepared: Prepared,
    send: &dyn Fn(Result<proto::ExplainResponse, Status>) -> bool,
    gone: &dyn Fn() -> bool,
) -> Option<proto::ExplainResult> {
    let started = Instant::now();
    let send_token = |piece: &str| -> ControlFlow<()> {
        if piece.is_empty() {
            // A backend's probe: is the client still there?
            return if gone() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            };
        }
        let event = proto::ExplainResponse {
            event: Some(proto::explain_response::Event::Token(piece.to_string())),
        };
        if send(Ok(event)) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let mut generations: Vec<Generation> = Vec::new();
    let first = match prepared
        .backend
        .generate(&prepared.request, &mut { send_token })
    {
        Ok(g) => g,
        Err(e) => {
            send(Err(llm_status(e)));
            return None;
        }
    };
    if first.cancelled {
        return None;
    }
    let mut parsed = judgement::parse(&first.text, &prepared.labels, &prepared.targets);
    let mut raw = first.text.clone();
    generations.push(first);
    let mut repair_attempts = 0;
    if let Err(problems) = &parsed {
        repair_attempts = 1;
        let mut messages = prepared.messages.clone();
        messages.push(Message::text("assistant", raw.clone()));
        messages.push(Message::text(
            "user",
            judgement::repair_prompt(problems, &prepared.labels, &prepared.targets),
        ));
        let repair = ChatRequest {
            messages,
            ..prepared.request.clone()
        };
        match prepared.backend.generate(&repair, &mut { send_token }) {
            Ok(g) if g.cancelled => return None,
            Ok(g) => {
                parsed = judgement::parse(&g.text, &prepared.labels, &prepared.targets);
                raw = format!("{raw}\n\n--- repair attempt ---\n\n{}", g.text);
                generations.push(g);
            }
            // A small-context model (moondream: 2048 positions, 729 of them the image)
            // may have no room to repeat its answer: the first answer is still returned,
            // unparsed, with the reason, rather than lost.
            Err(e @ LlmError::TooLong { .. }) => {
                if let Err(problems) = &mut parsed {
                    problems.push(format!("the repair attempt could not run: {e}"));
                }
            }
            Err(e) => {
                send(Err(llm_status(e)));
                return None;
            }
        }
    }
    let generated: u32 = generations.iter().map(|g| g.generated_tokens).sum();
    let prompt_tokens: u32 = generations.iter().map(|g| g.prompt_tokens).sum();
    let generating_s: f64 = generations
        .iter()
        .map(|g| (g.total - g.time_to_first_token).as_secs_f64())
        .sum();
    let first_token_s = generations[0].time_to_first_token.as_secs_f64();
    let timings = proto::ExplainTimings {
        time_to_first_token_ms: first_token_s * 1e3,
        prompt_tokens,
        generated_tokens: generated,
        prompt_tokens_per_s: if prompt_tokens > 0 && first_token_s > 0.0 {
            prompt_tokens as f64 / first_token_s
        } else {
            0.0
        },
        generation_tokens_per_s: if generating_s > 0.0 {
            generated.saturating_sub(generations.len() as u32) as f64 / generating_s
        } else {
            0.0
        },
        total_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    let (judgements, parse_error, ok) = match parsed {
        Ok(list) => (list, String::new(), true),
        Err(problems) => (Vec::new(), problems.join("; "), false),
    };
    let result = proto::ExplainResult {
        parsed: ok,
        judgements: judgements
            .into_iter()
            .map(|j| proto::Judgement {
                face_id: j.face_id,
                label: j.label,
                confidence: j.confidence,
                valence: j.valence,
                arousal: j.arousal,
                rationale: j.rationale,
            })
            .collect(),
        raw_text: raw,
        parse_error,
        repair_attempts,
        template_id: prepared.template.id.clone(),
        backend: prepared.backend.name().to_string(),
        model: prepared.backend.model().to_string(),
        timings: Some(timings),
        image_included: prepared.with_image,
    };
    send(Ok(proto::ExplainResponse {
        event: Some(proto::explain_response::Event::Result(result.clone())),
    }));
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{LatestFrame, Snapshot};
    use crate::signals::eeg::{Asymmetry, EegFeatures};
    use crate::signals::stream::{CardiacWindow, FeatureWindow, Features, SignalKind};

    fn window(stream: &str, end_time: f64, features: Features) -> FeatureWindow {
        FeatureWindow {
            stream_id: stream.into(),
            kind: SignalKind::Eeg,
            start_time: end_time - 4.0,
            end_time,
            quality: Vec::new(),
            features,
            estimate: None,
        }
    }

    #[test]
    fn a_session_moment_carries_its_current_windows_as_cues() {
        let frame = LatestFrame {
            timestamp: 100.0,
            image: Arc::new(image::RgbImage::new(4, 4)),
            faces: Arc::new(crate::vision::FrameResult {
                faces: Vec::new(),
                width: 4,
                height: 4,
                timings: Vec::new(),
            }),
        };
        let eeg = Features::Eeg(EegFeatures {
            band_powers: Vec::new(),
            asymmetry: vec![Asymmetry {
                pair: "F4-F3".into(),
                value: 0.25,
            }],
            arousal_index: Some(1.8),
            engagement_index: None,
        });
        let cardiac = Features::Cardiac(CardiacWindow {
            beat_times: Vec::new(),
            heart_rate_bpm: Some(72.0),
            heart_rate_change_bpm: Some(5.0),
            hrv: None,
        });
        let mut snapshot = Snapshot {
            frame: Some(frame),
            ..Default::default()
        };
        snapshot
            .windows
            .insert("eeg".into(), window("eeg", 99.0, eeg));
        // The ECG stream stopped a minute before the frame: stale, left out.
        snapshot
            .windows
            .insert("ecg".into(), window("ecg", 40.0, cardiac.clone()));
        let cues = moment_of(&snapshot, "s").unwrap().physiology.unwrap();
        assert_eq!(cues.eeg_asymmetry, Some(0.25));
        assert_eq!(cues.eeg_arousal_index, Some(1.8));
        assert_eq!(cues.heart_rate_bpm, None);

        snapshot
            .windows
            .insert("ecg".into(), window("ecg", 98.5, cardiac));
        let moment = moment_of(&snapshot, "s").unwrap();
        let cues = moment.physiology.clone().unwrap();
        assert_eq!(cues.heart_rate_bpm, Some(72.0));
        assert_eq!(cues.heart_rate_change_bpm, Some(5.0));

        // And the prompt states them in words with their values.
        let face = crate::prompt::FaceCue {
            face_id: 1,
            action_units: Vec::new(),
            expression: None,
            face_valence_arousal: None,
            head_pose: None,
        };
        let built = prompt::build(
            &Template::builtin(),
            &PromptInput {
                targets: vec![1],
                faces: vec![face],
                labels: prompt::label_set(&[]).unwrap(),
                context: None,
                physiology: moment.physiology,
                with_image: false,
            },
        )
        .unwrap();
        assert!(
            built
                .user
                .contains("Heart rate 72.0 bpm, +5.0 bpm from baseline")
        );
        assert!(built.user.contains("EEG frontal alpha asymmetry +0.250"));

        // Without a frame there is nothing to explain.
        let status = moment_of(&Snapshot::default(), "s").err().unwrap();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
}
