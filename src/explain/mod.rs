//! Explanations: a moment (an image, or a live session's latest frame and windows) -> its
//! faces -> a SoVTP prompt -> a chat backend's streamed tokens -> a validated judgement (one
//! repair attempt), or the raw text marked unparsed. No label ever comes from anywhere but
//! the model.
//!
//! Transport-free: the gRPC service and the CLI call [`Explainer::prepare`] and [`run`], and
//! turn [`ExplainEvent`]s and [`Error`]s into their own terms.

mod backends;
pub mod combine;
pub mod grounding;
pub mod schema;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

pub use backends::{candle_backend, openai_backend};

use crate::config::{Config, VisionConfig};
use crate::error::Error;
use crate::llm::{ChatBackend, ChatRequest, Generation, LlmError, Message, Part, ResponseFormat};
use crate::models::Manifest;
use crate::models::loaded::ModelSet;
use crate::prompt::judgement::{self, Judgement, Stages};
use crate::prompt::{self, FaceCue, PhysioCues, PromptInput, Template};
use crate::vision::image::ImageInput;
use crate::vision::{FaceModels, FrameResult, FrameSettings, marks};

/// Tokens generated per attempt when a request says 0 and the answer is not structured
/// (an HTTP backend with a user template); a structured answer's default is its schema's
/// budget ([`schema::token_budget`]).
pub const DEFAULT_MAX_TOKENS: u32 = 512;

/// What the prompt describes: a decoded frame, its faces and, from a live session, the
/// physiological cues of its current windows.
#[derive(Clone)]
pub struct Moment {
    pub image: Arc<RgbImage>,
    pub frame: FrameResult,
    /// The physiological cues and the session's fused estimate at the frame.
    pub physiology: Option<PhysioCues>,
    /// Recent expression episodes of the frame's faces (sessions and videos), and the
    /// frame's time in their clock (s).
    pub episodes: Vec<crate::vision::dynamics::Episode>,
    pub at: f64,
    /// The episodes' onset and apex frames, for models that take images.
    pub keyframes: Option<Arc<crate::vision::dynamics::keyframes::Keyframes>>,
}

/// The moment of a recorded session at `time` (client clock, s): its last analysed frame at
/// or before it, with the windows, fused estimate and expression episodes recorded by then.
/// Each face's latest episode's onset and apex frames are read back as its keyframes.
pub fn recorded_moment(
    store: &crate::store::Store,
    session_id: &str,
    time: f64,
    max_pixels: u64,
) -> Result<Moment, Error> {
    use crate::formats::from_wire;
    if !time.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "recorded.time must be a finite time in the session's client clock, got {time}"
        )));
    }
    let moment = crate::store::export::moment_at(store, session_id, time).map_err(|e| match e {
        crate::store::export::ExportError::Store(crate::store::StoreError::NotFound(_)) => {
            Error::NotFound(e.to_string())
        }
        e => Error::Internal(e.to_string()),
    })?;
    let moment = moment.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "recorded session `{session_id}` has no analysed frame at or before {time} s (client clock)"
        ))
    })?;
    let image = recorded_image(&moment.frame, max_pixels)?;
    let episodes: Vec<crate::vision::dynamics::Episode> =
        moment.episodes.iter().map(from_wire::episode).collect();
    // Each face's latest episode: its onset and apex frames, read back.
    let mut keyframes = crate::vision::dynamics::keyframes::Keyframes::default();
    let mut latest: Vec<&crate::vision::dynamics::Episode> = Vec::new();
    for e in &episodes {
        match latest.iter_mut().find(|l| l.face_id == e.face_id) {
            Some(l) if l.onset < e.onset => *l = e,
            Some(_) => {}
            None => latest.push(e),
        }
    }
    let conn = store
        .connect()
        .map_err(|e| Error::Internal(e.to_string()))?;
    for e in latest {
        let frame_at =
            |t: f64| -> Result<Option<crate::vision::dynamics::keyframes::Keyframe>, Error> {
                let Some(frame) = crate::store::export::analysed_frame_at(&conn, session_id, t)
                    .map_err(|e| Error::Internal(e.to_string()))?
                else {
                    return Ok(None);
                };
                let Some(face) = frame.faces.faces.iter().find(|f| f.face_id == e.face_id) else {
                    return Ok(None);
                };
                Ok(Some(crate::vision::dynamics::keyframes::Keyframe {
                    t: frame.timestamp,
                    image: Arc::new(recorded_image(&frame, max_pixels)?),
                    face: from_wire::face(face),
                }))
            };
        if let (Some(onset), Some(apex)) = (frame_at(e.onset)?, frame_at(e.apex)?) {
            keyframes.insert(e, onset, apex);
        }
    }
    let mut physiology = from_wire::physio_cues(&moment.windows);
    physiology.fused = moment
        .fused
        .as_ref()
        .map(|f| prompt::FusedCue::new(&from_wire::fused_estimate(f)));
    Ok(Moment {
        image: Arc::new(image),
        frame: FrameResult {
            faces: moment
                .frame
                .faces
                .faces
                .iter()
                .map(from_wire::face)
                .collect(),
            width: moment.frame.width,
            height: moment.frame.height,
            timings: Vec::new(),
        },
        physiology: (physiology != PhysioCues::default()).then_some(physiology),
        episodes,
        at: moment.frame.timestamp,
        keyframes: Some(Arc::new(keyframes)),
    })
}

/// A recorded frame's pixels.
pub(crate) fn recorded_image(
    frame: &crate::store::export::RecordedFrame,
    max_pixels: u64,
) -> Result<RgbImage, Error> {
    match &frame.data {
        crate::store::FrameData::Encoded(bytes) => crate::vision::image::decode(bytes, max_pixels)
            .map_err(|e| {
                Error::Internal(format!("the recorded frame at {} s: {e}", frame.timestamp))
            }),
        crate::store::FrameData::Rgb8(bytes) => {
            RgbImage::from_raw(frame.width, frame.height, bytes.clone()).ok_or_else(|| {
                Error::Internal(format!(
                    "the recorded frame at {} s is not {}x{} RGB",
                    frame.timestamp, frame.width, frame.height
                ))
            })
        }
    }
}

/// An explanation request, as a client states it. Zero values mean the defaults, as on the
/// wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// Allowed labels; empty = the 7 basic emotions.
    pub labels: Vec<String>,
    /// "candle" or "openai"; empty = the configured default.
    pub backend: String,
    /// Must be empty or the backend's model.
    pub model: String,
    /// 0 = [`DEFAULT_MAX_TOKENS`].
    pub max_tokens: u32,
    /// >= 0; 0 = greedy.
    pub temperature: f32,
    /// `(0,1]`; 0 = 1.
    pub top_p: f32,
    pub seed: Option<u64>,
    /// Send the marked image to a model that reads images.
    pub include_image: bool,
    /// The experimenter's words, quoted to the model as data.
    pub context: String,
    /// Faces to judge; empty = all.
    pub face_ids: Vec<u32>,
    /// Face analysis (for an image) and mark options.
    pub frame: FrameSettings,
}

/// One judged face: the model's judgement, its label probabilities, its citations checked,
/// and the label the model and the measured expression agree on.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgedFace {
    pub judgement: Judgement,
    /// In the request's label order; empty when the backend gave none.
    pub label_probabilities: Vec<f32>,
    /// "sequence" or "first-token"; empty without probabilities.
    pub label_probability_method: String,
    pub citations: Vec<grounding::Checked>,
    /// Supported share of the citations; None without citations.
    pub grounding: Option<f32>,
    /// The combined label and its distribution (request label order).
    pub combined: Option<(String, Vec<f32>)>,
}

/// How long an explanation took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub time_to_first_token_ms: f64,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub prompt_tokens_per_s: Option<f64>,
    pub generation_tokens_per_s: Option<f64>,
    pub total_ms: f64,
}

/// The outcome of an explanation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// The answer validated; otherwise `judgements` is empty and `raw_text` says why not.
    pub parsed: bool,
    pub judgements: Vec<JudgedFace>,
    /// The request's label set, the order of every probability list.
    pub labels: Vec<String>,
    /// The answer's SoVTP stages, when it has them.
    pub stages: Option<Stages>,
    /// The answer's shape was enforced while decoding.
    pub constrained: bool,
    /// How combined labels were computed; empty when none was.
    pub combination_method: String,
    pub raw_text: String,
    pub parse_error: String,
    pub repair_attempts: u32,
    pub template_id: String,
    pub backend: String,
    pub model: String,
    pub timings: Timings,
    pub image_included: bool,
}

/// What an explanation streams: tokens, then one result.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainEvent {
    Token(String),
    Result(Box<Explanation>),
}

/// The models and settings explanations need: the face models (to analyse an image) and
/// the chat backends. Built once by the server, or by the CLI without a server.
pub struct Explainer {
    vision: VisionConfig,
    face_models: Option<FaceModels>,
    /// Why there are no face models, when there are none.
    no_faces: String,
    default_backend: String,
    candle: Result<Arc<dyn ChatBackend>, String>,
    openai: Option<Arc<dyn ChatBackend>>,
    /// A built-in template id or a user template file.
    template: String,
    /// The repetition guard's n-gram length (0: off).
    no_repeat_ngram: usize,
    /// The weight of the model's label probabilities in the combined label.
    evidence_weight: f32,
}

impl Explainer {
    /// From the configuration and the loaded models; the candle backend's model loads on
    /// its first request.
    pub fn new(config: &Config, manifest: &Manifest, models: &ModelSet) -> Self {
        let candle = candle_backend(&config.llm, manifest, models);
        if let Err(reason) = &candle {
            tracing::warn!("backend candle is unavailable: {reason}");
        }
        let no_faces = match models.capabilities().remove("face_detection") {
            Some(Err(reason)) => reason,
            _ => "the face models are not loaded".to_string(),
        };
        Self {
            vision: config.vision.clone(),
            face_models: models.face_models(),
            no_faces,
            default_backend: config.llm.default_backend.clone(),
            candle,
            openai: openai_backend(&config.llm),
            template: config.llm.template.clone(),
            no_repeat_ngram: config.llm.no_repeat_ngram,
            evidence_weight: config.llm.model_weight,
        }
    }

    /// The candle backend, or why there is none.
    pub fn candle(&self) -> &Result<Arc<dyn ChatBackend>, String> {
        &self.candle
    }

    /// The openai backend, when configured.
    pub fn openai(&self) -> Option<&Arc<dyn ChatBackend>> {
        self.openai.as_ref()
    }

    /// The backend a request names (empty: the configured default).
    pub fn backend(&self, requested: &str) -> Result<Arc<dyn ChatBackend>, Error> {
        let name = if requested.is_empty() {
            self.default_backend.as_str()
        } else {
            requested
        };
        match name {
            "openai" => self.openai.clone().ok_or_else(|| {
                Error::FailedPrecondition(
                    "backend openai is not configured: set [llm] openai_url (or AFFECTD_OPENAI_URL) to an OpenAI-compatible server".into(),
                )
            }),
            "candle" => self.candle.clone().map_err(|reason| {
                Error::Unavailable(format!("backend candle is unavailable: {reason}"))
            }),
            other => Err(Error::InvalidArgument(format!(
                "backend {other:?} is unknown; use \"candle\" or \"openai\""
            ))),
        }
    }

    /// Decodes an image and finds its faces, as the prompt will describe them.
    pub fn analyze_image(
        &self,
        input: &ImageInput,
        settings: &FrameSettings,
    ) -> Result<(RgbImage, FrameResult), Error> {
        let models = self.face_models.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "face_detection is unavailable ({}), so there are no faces to explain",
                self.no_faces
            ))
        })?;
        let image = input
            .decode(self.vision.max_image_pixels)
            .map_err(|e| Error::InvalidArgument(format!("image: {e}")))?;
        let options = settings
            .options(&self.vision)
            .map_err(Error::InvalidArgument)?;
        let frame = models
            .analyze(&image, &options)
            .map_err(|e| Error::Internal(format!("face analysis failed: {e}")))?;
        Ok((image, frame))
    }

    /// Checks the request, then reads `frames` (time in s and image, in order: a video)
    /// through the face tracker and the expression dynamics up to `at`, and builds the
    /// prompt for the last frame at or before `at`, with its faces' recent expression
    /// episodes as they stood then (nothing after `at` is read).
    pub fn prepare_video(
        &self,
        request: &Request,
        frames: impl Iterator<Item = Result<(f64, RgbImage), String>>,
        at: f64,
        detect_every: u32,
        dynamics: &crate::vision::dynamics::DynamicsConfig,
    ) -> Result<Prepared, Error> {
        self.prepare(request, || {
            let models = self.face_models.as_ref().ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "face_detection is unavailable ({}), so there are no faces to explain",
                    self.no_faces
                ))
            })?;
            let options = request
                .frame
                .options(&self.vision)
                .map_err(Error::InvalidArgument)?;
            let mut tracker = crate::vision::Tracker::new(detect_every);
            let mut spotter = crate::vision::dynamics::FaceDynamics::new(dynamics);
            let mut kept = crate::vision::dynamics::keyframes::Keyframes::default();
            let mut last = None;
            for frame in frames {
                let (t, image) = frame.map_err(Error::InvalidArgument)?;
                if t > at + 1e-9 {
                    break;
                }
                let image = Arc::new(image);
                let mut result = tracker
                    .process(models, &image, &options)
                    .map_err(|e| Error::Internal(format!("face analysis failed: {e}")))?;
                spotter.observe(t, &mut result);
                let result = Arc::new(result);
                kept.observe(t, &image, &result, &spotter.recent_episodes());
                last = Some((t, image, result));
            }
            let (t, image, frame) = last.ok_or_else(|| {
                Error::InvalidArgument(format!("the video has no frame at or before {at} s"))
            })?;
            let frame = Arc::unwrap_or_clone(frame);
            Ok(Moment {
                image,
                frame,
                physiology: None,
                episodes: spotter.recent_episodes(),
                at: t,
                keyframes: Some(Arc::new(kept)),
            })
        })
    }

    /// Checks the request and builds the prompt for an image.
    pub fn prepare_image(&self, request: &Request, image: &ImageInput) -> Result<Prepared, Error> {
        self.prepare(request, || {
            let (image, frame) = self.analyze_image(image, &request.frame)?;
            Ok(Moment {
                image: Arc::new(image),
                frame,
                physiology: None,
                episodes: Vec::new(),
                at: 0.0,
                keyframes: None,
            })
        })
    }

    /// Checks the request, then builds the prompt for the moment `moment` resolves (called
    /// only once the request's own fields are valid, so that a bad request costs no face
    /// analysis).
    pub fn prepare(
        &self,
        request: &Request,
        moment: impl FnOnce() -> Result<Moment, Error>,
    ) -> Result<Prepared, Error> {
        let labels = prompt::label_set(&request.labels)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !(request.temperature >= 0.0 && request.temperature.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "temperature must be >= 0, got {}",
                request.temperature
            )));
        }
        if !(0.0..=1.0).contains(&request.top_p) {
            return Err(Error::InvalidArgument(format!(
                "top_p must be in (0,1] (0 = 1), got {}",
                request.top_p
            )));
        }
        let layers = request.frame.layers();
        let backend = self.backend(&request.backend)?;
        if !request.model.is_empty() && request.model != backend.model() {
            return Err(Error::Unimplemented(format!(
                "model {:?}: choosing the model per request is not built; backend {} runs {:?} (leave model empty, or configure the model: [llm] candle_model, or the openai server's)",
                request.model,
                backend.name(),
                backend.model()
            )));
        }
        let template = match Template::named(&self.template) {
            Some(builtin) => builtin,
            None if self.template.is_empty() => Template::builtin(),
            None => Template::load(&PathBuf::from(&self.template))
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?,
        };
        let Moment {
            image,
            frame,
            physiology,
            episodes,
            at,
            keyframes,
        } = moment()?;
        if frame.faces.is_empty() {
            return Err(Error::InvalidArgument(
                "no face was found in the image, so there is nothing to explain".into(),
            ));
        }
        let targets: Vec<u32> = if request.face_ids.is_empty() {
            frame.faces.iter().map(|f| f.face_id).collect()
        } else {
            for id in &request.face_ids {
                if !frame.faces.iter().any(|f| f.face_id == *id) {
                    return Err(Error::InvalidArgument(format!(
                        "face_ids: the image has no face {id} (it has {:?})",
                        frame.faces.iter().map(|f| f.face_id).collect::<Vec<_>>()
                    )));
                }
            }
            request.face_ids.clone()
        };
        let with_image = request.include_image && backend.accepts_images();
        let faces: Vec<FaceCue> = frame
            .faces
            .iter()
            .map(|f| FaceCue::from_face(f).with_episodes(&episodes, at))
            .collect();
        // For a model that takes images: each judged face's latest episode (ep1) as a strip
        // of its onset and apex frames, when they were kept.
        let strips: Vec<(String, RgbImage)> = match (&keyframes, with_image) {
            (Some(kept), true) => faces
                .iter()
                .filter(|f| targets.contains(&f.face_id))
                .filter_map(|f| {
                    let cue = f.episodes.first()?;
                    let episode = episodes.iter().find(|e| {
                        e.face_id == f.face_id && (at - e.onset - cue.onset_ago_s).abs() < 1e-9
                    })?;
                    let (onset, apex) = kept.of(episode)?;
                    let note = format!(
                        "Below the frame, the image shows face {}'s {} as two crops: left, its onset frame ({:.2} s before this frame); right, its apex frame ({:.2} s before), with arrows from the face's neutral position of brows, eyes, nose and lips to where they were at the apex.",
                        f.face_id,
                        cue.key,
                        at - onset.t,
                        at - apex.t
                    );
                    Some((note, crate::vision::dynamics::keyframes::strip(onset, apex)))
                })
                .collect(),
            _ => Vec::new(),
        };
        // What each judged face's evidence may cite: its measurements and the moment's
        // physiology, under the keys the prompt shows them by.
        let catalogues: Vec<grounding::Catalogue> = targets
            .iter()
            .map(|id| {
                let face = faces
                    .iter()
                    .find(|f| f.face_id == *id)
                    .expect("checked above");
                grounding::Catalogue::new(face, physiology.as_ref())
            })
            .collect();
        let evidence: Vec<Option<[f32; 7]>> = targets
            .iter()
            .map(|id| {
                faces
                    .iter()
                    .find(|f| f.face_id == *id)
                    .and_then(|f| f.expression)
            })
            .collect();
        let built = prompt::build(
            &template,
            &PromptInput {
                targets: targets.clone(),
                faces,
                labels: labels.clone(),
                context: (!request.context.trim().is_empty()).then(|| request.context.clone()),
                physiology,
                with_image,
                image_notes: strips.iter().map(|(note, _)| note.clone()).collect(),
            },
        )
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let answer_schema = schema::answer_schema(&schema::AnswerShape {
            face_ids: &targets,
            labels: &labels,
            evidence_keys: &catalogues
                .iter()
                .map(|c| c.keys_by_directions())
                .collect::<Vec<_>>(),
        });
        let response = ResponseFormat {
            schema: answer_schema,
            labels: labels.clone(),
        };
        // A schema that cannot be built for this model (a label it cannot spell) is the
        // request's fault: refused before anything is generated.
        backend.check_response(&response).map_err(llm_error)?;
        let mut user = Vec::new();
        if with_image {
            let mut marked = marks::render(&image, &frame.faces, &layers);
            if !strips.is_empty() {
                // One image, keyframes under the frame: some models read one per prompt.
                let strips: Vec<RgbImage> = strips.into_iter().map(|(_, s)| s).collect();
                marked = crate::vision::dynamics::keyframes::below(&marked, &strips);
            }
            user.push(Part::Image {
                mime: "image/png",
                bytes: marks::encode(&marked, marks::Encoding::Png).map_err(Error::Internal)?,
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
            frame,
            backend,
            template,
            labels: labels.clone(),
            catalogues,
            evidence,
            evidence_weight: self.evidence_weight,
            with_image,
            request: ChatRequest {
                messages: messages.clone(),
                max_tokens: if request.max_tokens == 0 {
                    schema::token_budget(targets.len())
                } else {
                    request.max_tokens
                },
                temperature: request.temperature,
                top_p: if request.top_p == 0.0 {
                    1.0
                } else {
                    request.top_p
                },
                seed: request.seed,
                stop: Vec::new(),
                response: Some(response),
                no_repeat_ngram: self.no_repeat_ngram,
            },
            targets,
            messages,
        })
    }
}

/// Everything checked and computed before streaming starts, so that a bad request gets an
/// error instead of a broken stream.
pub struct Prepared {
    /// The faces the prompt describes.
    pub frame: FrameResult,
    backend: Arc<dyn ChatBackend>,
    template: Template,
    labels: Vec<String>,
    targets: Vec<u32>,
    /// Per target face: what its evidence may cite, and its measured expression.
    catalogues: Vec<grounding::Catalogue>,
    evidence: Vec<Option<[f32; 7]>>,
    evidence_weight: f32,
    /// Whether the marked image is in the prompt.
    with_image: bool,
    messages: Vec<Message>,
    request: ChatRequest,
}

fn llm_error(e: LlmError) -> Error {
    match e {
        LlmError::Unavailable { .. } | LlmError::Protocol { .. } => {
            Error::Unavailable(e.to_string())
        }
        LlmError::Timeout { .. } => Error::DeadlineExceeded(e.to_string()),
        LlmError::Unsupported { .. } | LlmError::TooLong { .. } => {
            Error::InvalidArgument(e.to_string())
        }
        LlmError::Model { .. } => Error::Internal(e.to_string()),
    }
}

/// Generates and validates: each token goes to `on_token`, which answers whether the
/// receiver is still there; `gone` is polled between long steps so that generation stops
/// promptly when it leaves. Returns the result (also sent to nobody: the caller sends it),
/// `Ok(None)` when the receiver left, or the error. A panic in the backend is an
/// [`Error::Internal`], never a silent end.
impl Prepared {
    /// The prompt's text parts as (role, text), in order (images left out).
    pub fn prompt_text(&self) -> Vec<(&'static str, String)> {
        self.messages
            .iter()
            .flat_map(|m| {
                m.parts.iter().filter_map(move |p| match p {
                    Part::Text(text) => Some((m.role, text.clone())),
                    Part::Image { .. } => None,
                })
            })
            .collect()
    }
}

pub fn run(
    prepared: Prepared,
    on_token: &mut dyn FnMut(&str) -> bool,
    gone: &dyn Fn() -> bool,
) -> Result<Option<Explanation>, Error> {
    crate::error::catch_panic("explanation", || generate(prepared, on_token, gone))
}

fn generate(
    prepared: Prepared,
    on_token: &mut dyn FnMut(&str) -> bool,
    gone: &dyn Fn() -> bool,
) -> Result<Option<Explanation>, Error> {
    let started = Instant::now();
    let mut send_token = |piece: &str| -> ControlFlow<()> {
        let still_there = if piece.is_empty() {
            // A backend's probe: is the client still there?
            !gone()
        } else {
            on_token(piece)
        };
        if still_there {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let mut generations: Vec<Generation> = Vec::new();
    let first = prepared
        .backend
        .generate(&prepared.request, &mut send_token)
        .map_err(llm_error)?;
    if first.cancelled {
        return Ok(None);
    }
    let mut parsed = parse(&first, &prepared);
    let mut raw = first.text.clone();
    generations.push(first);
    let mut repair_attempts = 0;
    // An answer decoded under its schema can only fail by running out of tokens, which a
    // repair with the same budget would too: only backends that merely pass the schema on
    // get a repair prompt.
    if let Err(problems) = &parsed
        && !prepared.backend.constrains_output()
    {
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
        match prepared.backend.generate(&repair, &mut send_token) {
            Ok(g) if g.cancelled => return Ok(None),
            Ok(g) => {
                parsed = parse(&g, &prepared);
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
            Err(e) => return Err(llm_error(e)),
        }
    }
    let generated: u32 = generations.iter().map(|g| g.generated_tokens).sum();
    let prompt_tokens: u32 = generations.iter().map(|g| g.prompt_tokens).sum();
    let generating_s: f64 = generations
        .iter()
        .map(|g| (g.total - g.time_to_first_token).as_secs_f64())
        .sum();
    let first_token_s = generations[0].time_to_first_token.as_secs_f64();
    // The first token of each attempt is timed with its prompt, not with generation.
    let timed_tokens = generated.saturating_sub(generations.len() as u32);
    let timings = Timings {
        time_to_first_token_ms: first_token_s * 1e3,
        prompt_tokens,
        generated_tokens: generated,
        prompt_tokens_per_s: (prompt_tokens > 0 && first_token_s > 0.0)
            .then(|| prompt_tokens as f64 / first_token_s),
        generation_tokens_per_s: (timed_tokens > 0 && generating_s > 0.0)
            .then(|| timed_tokens as f64 / generating_s),
        total_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    if let Some(speed) = timings.generation_tokens_per_s {
        metrics::histogram!(crate::metrics::EXPLAIN_TOKENS_PER_S).record(speed);
    }
    // The label fields of the answer that validated, in the order of its judgements.
    let scores = &generations
        .last()
        .expect("one generation at least")
        .label_probabilities;
    let (answer, parse_error, ok) = match parsed {
        Ok(answer) => (Some(answer), String::new(), true),
        Err(problems) => (None, problems.join("; "), false),
    };
    let stages = answer.as_ref().and_then(|a| a.stages.clone());
    let judgements: Vec<JudgedFace> = answer
        .map(|a| a.judgements)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, judgement)| judged(&prepared, judgement, scores.get(i)))
        .collect();
    let combination_method = if judgements.iter().any(|j| j.combined.is_some()) {
        combine::method(prepared.evidence_weight)
    } else {
        String::new()
    };
    Ok(Some(Explanation {
        parsed: ok,
        judgements,
        labels: prepared.labels.clone(),
        stages,
        constrained: prepared.backend.constrains_output(),
        combination_method,
        raw_text: raw,
        parse_error,
        repair_attempts,
        template_id: prepared.template.id.clone(),
        backend: prepared.backend.name().to_string(),
        model: prepared.backend.model().to_string(),
        timings,
        image_included: prepared.with_image,
    }))
}

/// Validates one generation's text; an answer cut at `max_tokens` says so.
fn parse(g: &Generation, prepared: &Prepared) -> Result<judgement::Answer, Vec<String>> {
    judgement::parse_answer(&g.text, &prepared.labels, &prepared.targets).map_err(|mut problems| {
        if g.hit_max_tokens {
            problems.insert(
                0,
                format!(
                    "the answer was cut at max_tokens ({}) before it was complete",
                    prepared.request.max_tokens
                ),
            );
        }
        problems
    })
}

/// A validated judgement with its label probabilities, its citations checked against the
/// prompt's measurements, and the combined label.
fn judged(
    prepared: &Prepared,
    judgement: Judgement,
    scores: Option<&crate::llm::LabelScores>,
) -> JudgedFace {
    let face = prepared
        .targets
        .iter()
        .position(|id| *id == judgement.face_id)
        .expect("validated judgements name requested faces");
    let citations: Vec<grounding::Checked> = judgement
        .evidence
        .iter()
        .map(|c| prepared.catalogues[face].check(&c.key, &c.direction))
        .collect();
    let probabilities = scores.map_or(Vec::new(), |s| s.probabilities.clone());
    let combined = match (&prepared.evidence[face], probabilities.is_empty()) {
        (Some(expression), false) => combine::combine(
            &probabilities,
            expression,
            &prepared.labels,
            prepared.evidence_weight,
        ),
        _ => None,
    };
    JudgedFace {
        grounding: grounding::score(&citations),
        citations,
        label_probability_method: scores.map_or(String::new(), |s| s.method.to_string()),
        label_probabilities: probabilities,
        combined,
        judgement,
    }
}

/// Runs a prepared explanation and streams it into `send`, which answers whether the
/// receiver is still there: tokens, then the result, or the error. Returns the result that
/// was sent.
pub fn stream_into(
    prepared: Prepared,
    send: &dyn Fn(Result<ExplainEvent, Error>) -> bool,
    gone: &dyn Fn() -> bool,
) -> Option<Explanation> {
    let outcome = run(
        prepared,
        &mut |piece| send(Ok(ExplainEvent::Token(piece.to_string()))),
        gone,
    );
    match outcome {
        Ok(Some(explanation)) => {
            send(Ok(ExplainEvent::Result(Box::new(explanation.clone()))));
            Some(explanation)
        }
        Ok(None) => None,
        Err(e) => {
            send(Err(e));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Generation;
    use std::time::Duration;

    /// A backend that panics while generating (a bug in a model's code).
    struct Panicking;

    impl ChatBackend for Panicking {
        fn name(&self) -> &str {
            "test"
        }
        fn model(&self) -> &str {
            "panicking"
        }
        fn accepts_images(&self) -> bool {
            false
        }
        fn generate(
            &self,
            _request: &ChatRequest,
            on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<Generation, LlmError> {
            let _ = on_token("{\"judge");
            panic!("tensor shape mismatch");
        }
    }

    fn prepared(backend: Arc<dyn ChatBackend>) -> Prepared {
        let request = ChatRequest {
            messages: vec![Message::text("user", "hi")],
            max_tokens: 8,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: Vec::new(),
            response: None,
            no_repeat_ngram: 0,
        };
        let smiling = FaceCue {
            face_id: 1,
            action_units: vec![
                (12, "lip corner puller", 3.2, true),
                (4, "brow lowerer", 0.2, false),
            ],
            // angry, disgust, fear, happy, sad, surprise, neutral
            expression: Some([0.02, 0.02, 0.02, 0.80, 0.02, 0.02, 0.10]),
            face_valence_arousal: Some((0.7, 0.5)),
            head_pose: None,
            episodes: Vec::new(),
        };
        Prepared {
            frame: FrameResult::default(),
            backend,
            template: Template::builtin(),
            labels: crate::prompt::DEFAULT_LABELS
                .iter()
                .map(|l| l.to_string())
                .collect(),
            targets: vec![1],
            catalogues: vec![grounding::Catalogue::new(&smiling, None)],
            evidence: vec![smiling.expression],
            evidence_weight: 0.5,
            with_image: false,
            messages: request.messages.clone(),
            request,
        }
    }

    #[test]
    fn a_backend_that_panics_ends_the_explanation_with_an_internal_error() {
        let events = std::sync::Mutex::new(Vec::new());
        let result = stream_into(
            prepared(Arc::new(Panicking)),
            &|event| {
                events.lock().unwrap().push(event);
                true
            },
            &|| false,
        );
        assert!(result.is_none());
        let events = events.into_inner().unwrap();
        // The token before the panic, then the error: never a stream that just stops.
        assert_eq!(events[0], Ok(ExplainEvent::Token("{\"judge".into())));
        match &events[1] {
            Err(Error::Internal(m)) => assert!(m.contains("tensor shape mismatch"), "{m}"),
            other => panic!("expected an internal error, got {other:?}"),
        }
        assert_eq!(events.len(), 2);
    }

    /// A backend that answers a fixed text.
    struct Fixed(&'static str);

    impl ChatBackend for Fixed {
        fn name(&self) -> &str {
            "test"
        }
        fn model(&self) -> &str {
            "fixed"
        }
        fn accepts_images(&self) -> bool {
            false
        }
        fn generate(
            &self,
            _request: &ChatRequest,
            on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<Generation, LlmError> {
            let _ = on_token(self.0);
            Ok(Generation {
                text: self.0.into(),
                prompt_tokens: 10,
                generated_tokens: 1,
                time_to_first_token: Duration::from_millis(5),
                total: Duration::from_millis(5),
                cancelled: false,
                hit_max_tokens: false,
                // The model leans angry at the label's position.
                label_probabilities: vec![crate::llm::LabelScores {
                    probabilities: vec![0.55, 0.05, 0.05, 0.25, 0.05, 0.03, 0.02],
                    method: "sequence",
                }],
            })
        }
    }

    #[test]
    fn a_valid_answer_is_parsed_and_timings_that_cannot_be_measured_are_absent() {
        let answer = r#"{"stages":{"scene":"a lab","body":"upright","others":"none","cues":"AU12 strong","check":"fits"},"judgements": [{"face_id": 1, "label": "angry", "confidence": 0.9, "valence": 0.8, "arousal": 0.5, "evidence": [{"key": "AU12", "direction": "present"}, {"key": "AU04", "direction": "present"}, {"key": "hr", "direction": "high"}], "rationale": "smile"}]}"#;
        let result = run(prepared(Arc::new(Fixed(answer))), &mut |_| true, &|| false)
            .unwrap()
            .unwrap();
        assert!(result.parsed);
        let face = &result.judgements[0];
        // The model's own label is kept as it said it.
        assert_eq!(face.judgement.label, "angry");
        assert_eq!(result.stages.as_ref().unwrap().cues, "AU12 strong");
        // Citations checked against the prompt's values: AU12 is present (supported), AU04
        // is not (contradicted), and the prompt had no heart rate (unsupported).
        let verdicts: Vec<&str> = face.citations.iter().map(|c| c.verdict.name()).collect();
        assert_eq!(verdicts, ["supported", "contradicted", "unsupported"]);
        assert_eq!(face.grounding, Some(1.0 / 3.0));
        // The model's angry 0.55 against the measured happy 0.80: the combination says happy,
        // beside the model's label, with the method named.
        assert_eq!(face.label_probabilities.len(), 7);
        assert_eq!(face.combined.as_ref().unwrap().0, "happy");
        assert_eq!(result.combination_method, "poe-v1 w=0.5");
        // One token: no generation rate can be measured, so none is reported.
        assert_eq!(result.timings.generation_tokens_per_s, None);
        assert!(result.timings.prompt_tokens_per_s.is_some());
    }
}
