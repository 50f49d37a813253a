//! The core's state and its requests: the loaded models, the explainer, the live sessions,
//! the recording database and the limits, with one method per thing a client can ask.
//! Transport-free: `server/` (gRPC) converts and calls these; the CLI builds only what it
//! needs (`affectd explain` builds an [`Explainer`] and never opens the session database).

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::admission::Limits;
use crate::config::Config;
use crate::error::Error;
use crate::explain::{self, Explainer, Prepared};
use crate::models::Manifest;
use crate::models::loaded::ModelSet;
use crate::models::manifest::ManifestError;
use crate::session::{ClockReport, Registry};
use crate::signals::analyzers::{self, Analysed, SignalChunk};
use crate::signals::stream::{AnalysisConfig, StreamSpec};
use crate::store::{DatabaseLock, SessionRow, Store, StoreError, export};
use crate::vision::image::ImageInput;
use crate::vision::marks::{self, Encoding};
use crate::vision::{FaceModels, FrameResult, FrameSettings};

/// Server clock: seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Another server records into the database.
    #[error(transparent)]
    DatabaseInUse(StoreError),
    /// A configured model is unavailable.
    #[error("{0}")]
    Model(String),
    /// The tokens in `[auth]` cannot be used.
    #[error("{0}")]
    Auth(String),
}

/// The cardiac stress model when the configuration asks for it (fusion.cardiac_encoder);
/// an error saying how to get it when it is asked for and not loaded.
pub fn stress_model(
    config: &Config,
    models: &ModelSet,
) -> Result<Option<Arc<dyn crate::vision::backend::Inference>>, String> {
    if config.fusion.cardiac_encoder != crate::config::CardiacEncoder::SynheartStress {
        return Ok(None);
    }
    let id = crate::fusion::stress::MODEL_ID;
    match models.get(id) {
        Some(state) => match &state.model {
            Some(model) => Ok(Some(
                model.clone() as Arc<dyn crate::vision::backend::Inference>
            )),
            None => Err(format!(
                "fusion.cardiac_encoder is \"synheart-stress\" but model {id} is unavailable: {}; run `affectd models fetch {id}`, or set fusion.cardiac_encoder = \"rules\"",
                state.reason
            )),
        },
        None => Err(format!("model {id} is not in the manifest")),
    }
}

/// Verifies and loads the manifest's models (the ONNX face models run once on zeros).
pub fn load_models(config: &Config) -> Result<(Manifest, ModelSet), ManifestError> {
    let manifest = Manifest::load(&config.models.dir, &config.models.cache_dir)?;
    let runtime = crate::onnx::init(&config.onnx.library);
    if let Err(e) = &runtime {
        tracing::error!("{e}");
    }
    let models = ModelSet::load(&manifest, runtime, &config.onnx);
    Ok((manifest, models))
}

/// What to explain.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainSource {
    /// None: the request named an image but sent no pixels.
    Image(Option<ImageInput>),
    /// A live session's latest moment.
    Session(String),
    /// A recorded session's moment at `time` (client clock, s).
    Recorded { session_id: String, time: f64 },
}

/// One analysed image.
pub struct FrameAnalysis {
    pub result: FrameResult,
    pub decode_ms: f64,
    /// The SoVTP-marked image and its encoding, when asked for.
    pub marked: Option<(Vec<u8>, Encoding)>,
}

/// A recorded frame drawn with its marks.
pub struct MarkedFrame {
    /// Client clock, s.
    pub timestamp: f64,
    pub jpeg: Vec<u8>,
    pub faces: Vec<crate::vision::FaceResult>,
}

/// The export file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Xdf,
    CsvZip,
}

pub struct Engine {
    pub config: Config,
    pub limits: Limits,
    /// Explain calls' turns (see `admission::Gate`), and the threads they run on.
    pub explain_gate: crate::admission::Gate,
    pub explain_pool: crate::admission::ExplainPool,
    /// AnalyzeFrame and AnalyzeSignals calls' turns (see `admission::Gate`).
    pub analysis_gate: crate::admission::Gate,
    /// Exports being written (`limits.max_concurrent_exports`).
    pub exports: Arc<tokio::sync::Semaphore>,
    pub models: ModelSet,
    /// The face networks that loaded (None without a detector).
    pub face_models: Option<FaceModels>,
    /// Why there are no face models, when there are none.
    pub face_unavailable: String,
    /// The cardiac stress model, when fusion is configured to use it.
    pub stress_model: Option<Arc<dyn crate::vision::backend::Inference>>,
    pub explainer: Explainer,
    /// Live sessions.
    pub sessions: Registry,
    /// The session recording database, or why it could not be opened.
    pub store: Result<Store, String>,
    /// The bearer tokens callers authenticate with (none: authentication off).
    pub tokens: crate::auth::Tokens,
    /// Held while this engine records into the database.
    _database_lock: Option<DatabaseLock>,
}

impl Engine {
    /// For `affectd serve`: loads the models, takes the database's server lock (an error
    /// when another server holds it), and closes recordings an earlier run left open. A
    /// database that cannot be opened for another reason leaves the server up, with
    /// recordings reported unavailable.
    pub fn start(config: Config) -> Result<Engine, StartError> {
        // Tokens first: a typo in them should not wait for the models to load.
        let tokens = crate::auth::Tokens::load(&config.auth).map_err(StartError::Auth)?;
        let (manifest, models) = load_models(&config)?;
        stress_model(&config, &models).map_err(StartError::Model)?;
        let explainer = Explainer::new(&config, &manifest, &models);
        let path = &config.store.database;
        let (store, lock) = match Store::lock_for_server(path) {
            Err(e @ StoreError::Locked { .. }) => return Err(StartError::DatabaseInUse(e)),
            Err(e) => (Err(e.to_string()), None),
            Ok(lock) => {
                let store = Store::open(path).and_then(|store| {
                    // Under the lock, no other server's session is live: any recording
                    // still open is an orphan of an earlier run.
                    let orphans = store.close_orphans(unix_now())?;
                    if orphans > 0 {
                        tracing::warn!("closed {orphans} recording(s) an earlier run left open");
                    }
                    Ok(store)
                });
                (store.map_err(|e| e.to_string()), Some(lock))
            }
        };
        if let Err(reason) = &store {
            tracing::warn!("sessions cannot be recorded: {reason}");
        }
        let mut engine = Self::from_parts(config, models, explainer, store, lock);
        engine.tokens = tokens;
        Ok(engine)
    }

    /// An engine from its parts (tests give their own models and store).
    pub fn from_parts(
        config: Config,
        models: ModelSet,
        explainer: Explainer,
        store: Result<Store, String>,
        database_lock: Option<DatabaseLock>,
    ) -> Engine {
        crate::vision::image::set_decoding_budget(config.vision.max_decoding_bytes);
        let face_unavailable = match models.capabilities().remove("face_detection") {
            Some(Err(reason)) => reason,
            _ => "the face models are not loaded".to_string(),
        };
        Engine {
            stress_model: stress_model(&config, &models).ok().flatten(),
            face_models: models.face_models(),
            face_unavailable,
            limits: config.limits.clone(),
            explain_gate: crate::admission::Gate::explanations(&config.limits),
            explain_pool: crate::admission::ExplainPool::new(&config.limits),
            analysis_gate: crate::admission::Gate::analyses(&config.limits),
            exports: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_concurrent_exports,
            )),
            config,
            models,
            explainer,
            sessions: Registry::default(),
            store,
            tokens: crate::auth::Tokens::default(),
            _database_lock: database_lock,
        }
    }

    /// The models a capability needs are available, or FAILED_PRECONDITION with why not.
    pub fn require(&self, capability: &str) -> Result<(), Error> {
        match self.models.capabilities().remove(capability) {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(Error::FailedPrecondition(format!(
                "{capability} is unavailable: {reason}"
            ))),
            None => Err(Error::Internal(format!("unknown capability {capability}"))),
        }
    }

    /// Faces in one image (AnalyzeFrame).
    pub fn analyze_frame(
        &self,
        image: Option<&ImageInput>,
        settings: &FrameSettings,
    ) -> Result<FrameAnalysis, Error> {
        self.require("face_detection")?;
        let image = image.ok_or_else(image_required)?;
        let models = self
            .face_models
            .as_ref()
            .ok_or_else(|| Error::FailedPrecondition("face_detection is unavailable".into()))?;
        let started = Instant::now();
        let decoded = image
            .decode(self.config.vision.max_image_pixels)
            .map_err(|e| Error::InvalidArgument(format!("image: {e}")))?;
        let decode_ms = started.elapsed().as_secs_f64() * 1e3;
        let options = settings
            .options(&self.config.vision)
            .map_err(Error::InvalidArgument)?;
        let result = models
            .analyze(&decoded, &options)
            .map_err(|e| Error::Internal(format!("face analysis failed: {e}")))?;
        let marked = if settings.return_marked_image {
            let drawn = marks::render(&decoded, &result.faces, &settings.layers());
            let encoding = settings.marked_image_encoding;
            let bytes = marks::encode(&drawn, encoding).map_err(Error::InvalidArgument)?;
            Some((bytes, encoding))
        } else {
            None
        };
        Ok(FrameAnalysis {
            result,
            decode_ms,
            marked,
        })
    }

    /// Features of a complete recording (AnalyzeSignals).
    pub fn analyze_signals(
        &self,
        streams: &[StreamSpec],
        chunks: &[SignalChunk],
        config: &AnalysisConfig,
    ) -> Result<Analysed, Error> {
        let total: usize = chunks.iter().map(|c| c.samples.len()).sum();
        let limit = self.limits.max_samples_per_request;
        if total > limit {
            return Err(Error::InvalidArgument(format!(
                "{total} samples in one request; the limit is {limit}: split the recording or stream it through a session"
            )));
        }
        let config = AnalysisConfig {
            budget: self.limits.signal_budget(),
            ..config.clone()
        };
        analyzers::analyze(streams, chunks, &config).map_err(Error::InvalidArgument)
    }

    /// Checks an explanation request and builds its prompt.
    pub fn prepare_explanation(
        &self,
        request: &explain::Request,
        source: Option<&ExplainSource>,
    ) -> Result<Prepared, Error> {
        let source = source.ok_or_else(|| {
            Error::InvalidArgument("source: send an image (or a session_id)".into())
        })?;
        match source {
            ExplainSource::Image(image) => {
                let image = image.as_ref().ok_or_else(image_required)?;
                self.explainer.prepare_image(request, image)
            }
            ExplainSource::Session(id) => self
                .explainer
                .prepare(request, || self.sessions.live(id)?.moment()),
            ExplainSource::Recorded { session_id, time } => self.explainer.prepare(request, || {
                crate::explain::recorded_moment(
                    self.store()?,
                    session_id,
                    *time,
                    self.config.vision.max_image_pixels,
                )
            }),
        }
    }

    /// Admits, prepares and streams an explanation: its tokens, then one result, or one
    /// error. Waits for a turn (`limits.max_concurrent_explanations`); a caller that drops
    /// the receiver cancels the generation. Errors in preparing (a bad request, no such
    /// session) come back here rather than on the stream.
    pub async fn explain(
        self: &Arc<Self>,
        request: explain::Request,
        source: Option<ExplainSource>,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<explain::ExplainEvent, Error>>, Error> {
        // The turn first: preparing takes the model too. Waiting here is async, and a
        // caller that leaves drops this future, and its place in the queue, at once.
        let turn = self.explain_gate.admit().await?;
        let engine = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (prepared_tx, prepared_rx) = tokio::sync::oneshot::channel();
        // Preparing and generating run on the explanation pool's thread, holding the turn.
        self.explain_pool.run(turn, move || {
            let prepared = match engine.prepare_explanation(&request, source.as_ref()) {
                Ok(prepared) => prepared,
                Err(e) => {
                    let _ = prepared_tx.send(Err(e));
                    return;
                }
            };
            if prepared_tx.send(Ok(())).is_err() {
                return; // the caller left while it was prepared
            }
            explain::stream_into(prepared, &|event| tx.blocking_send(event).is_ok(), &|| {
                tx.is_closed()
            });
        });
        match prepared_rx.await {
            Ok(Ok(())) => Ok(rx),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Internal(
                "the explanation failed while it was prepared (see the server log)".into(),
            )),
        }
    }

    /// Stores a client-measured clock offset with a live session's recording.
    pub fn report_clock(&self, session_id: &str, offset_s: f64, rtt_s: f64) -> Result<(), Error> {
        self.sessions.report_clock(
            session_id,
            ClockReport {
                server_time: unix_now(),
                offset_s,
                rtt_s,
            },
        )
    }

    /// Who opened a live session (None: nobody, authentication was off); NOT_FOUND when it
    /// is not live.
    pub fn live_session_owner(&self, session_id: &str) -> Result<Option<String>, Error> {
        Ok(self.sessions.live(session_id)?.owner.clone())
    }

    /// Calibrates a live session's fusion (see `fusion::calibrate`).
    pub async fn calibrate(
        &self,
        session_id: &str,
    ) -> Result<crate::fusion::calibrate::FusionModel, Error> {
        let live = self.sessions.live(session_id)?;
        live.calibrate().await
    }

    /// The recording database, or FAILED_PRECONDITION with why it is unavailable.
    pub fn store(&self) -> Result<&Store, Error> {
        self.store.as_ref().map_err(|reason| {
            Error::FailedPrecondition(format!("the session database is unavailable: {reason}"))
        })
    }

    /// A page of recorded sessions after `page_token` (empty: the first page), and the
    /// next page's token (empty: the last page); with `owner`, only that owner's sessions.
    pub fn list_recordings(
        &self,
        page_token: &str,
        page_size: usize,
        owner: Option<&str>,
    ) -> Result<(Vec<SessionRow>, String), Error> {
        let after = (!page_token.is_empty()).then_some(page_token);
        // One more than asked tells whether there is a next page.
        let mut rows = self
            .store()?
            .list(after, page_size + 1, owner)
            .map_err(|e| match e {
                StoreError::NotFound(id) => Error::InvalidArgument(format!(
                    "page_token {id:?} is not a session of this database (was it deleted?)"
                )),
                e => store_error(e),
            })?;
        let next = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last()
                .map(|r| r.session_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((rows, next))
    }

    pub fn recording(&self, session_id: &str) -> Result<SessionRow, Error> {
        self.store()?.get(session_id).map_err(store_error)
    }

    /// A recording's header, without the counts that read every frame's row.
    pub fn recording_header(&self, session_id: &str) -> Result<crate::store::SessionHeader, Error> {
        self.store()?.header(session_id).map_err(store_error)
    }

    /// The newest `limit` recordings' headers (with `owner`, only its own), newest first.
    pub fn recording_headers(
        &self,
        limit: usize,
        owner: Option<&str>,
    ) -> Result<Vec<crate::store::SessionHeader>, Error> {
        self.store()?.headers(limit, owner).map_err(store_error)
    }

    /// Deletes an ended recording; false when there was none.
    pub fn delete_recording(&self, session_id: &str) -> Result<bool, Error> {
        if self.sessions.get(session_id).is_some() {
            return Err(Error::FailedPrecondition(format!(
                "session `{session_id}` is live; end it before deleting its recording"
            )));
        }
        self.store()?.delete(session_id).map_err(store_error)
    }

    /// A turn to write an export, or RESOURCE_EXHAUSTED naming the limit.
    pub fn export_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        self.exports.clone().try_acquire_owned().map_err(|_| {
            Error::ResourceExhausted(format!(
                "{} exports are being written, the most at once (config key limits.max_concurrent_exports); try again when one has finished",
                self.limits.max_concurrent_exports
            ))
        })
    }

    /// Deletes ended recordings older than `store.retention_days` and checkpoints the
    /// database's log; returns how many were deleted.
    pub fn expire_recordings(&self) -> Result<usize, Error> {
        let days = self.config.store.retention_days;
        let store = self.store()?;
        let before = if days > 0.0 {
            unix_now() - days * 86_400.0
        } else {
            f64::NEG_INFINITY
        };
        store.expire(before).map_err(store_error)
    }

    /// A recording's export in a temporary file, read from its start (a session's frames
    /// can be larger than memory).
    pub fn export_file(
        &self,
        session_id: &str,
        format: ExportFormat,
    ) -> Result<std::fs::File, Error> {
        use std::io::Seek;
        let mut file = tempfile::tempfile()
            .map_err(|e| Error::Internal(format!("export: temporary file: {e}")))?;
        self.export_recording(session_id, format, &mut file)?;
        file.rewind()
            .map_err(|e| Error::Internal(format!("export: {e}")))?;
        Ok(file)
    }

    /// Reads an export file (`export_file`) a piece of `piece` bytes at a time and hands each
    /// to `send` with whether it is the first; the first is sent even when the file is
    /// empty. Stops at the end, after a read error (sent), or when `send` returns false (the
    /// client left). Blocking.
    pub fn send_export(
        mut file: std::fs::File,
        piece: usize,
        mut send: impl FnMut(Result<Vec<u8>, Error>, bool) -> bool,
    ) {
        use std::io::Read;
        let mut first = true;
        loop {
            let mut data = vec![0u8; piece];
            let n = match file.read(&mut data) {
                Ok(n) => n,
                Err(e) => {
                    send(Err(Error::Internal(format!("export: {e}"))), first);
                    return;
                }
            };
            if n == 0 && !first {
                return;
            }
            data.truncate(n);
            if !send(Ok(data), std::mem::take(&mut first)) || n == 0 {
                return;
            }
        }
    }

    /// The last analysed frame of a recording at or before `time` (client clock, s): its
    /// time, its image drawn with the SoVTP marks as JPEG, and its faces. None when no frame
    /// was analysed by then.
    pub fn recorded_frame(
        &self,
        session_id: &str,
        time: f64,
    ) -> Result<Option<MarkedFrame>, Error> {
        let conn = self.store()?.connect().map_err(store_error)?;
        let frame = export::analysed_frame_at(&conn, session_id, time).map_err(|e| match e {
            export::ExportError::Store(e) => store_error(e),
            e => Error::Internal(e.to_string()),
        })?;
        let Some(frame) = frame else {
            return Ok(None);
        };
        let image = crate::explain::recorded_image(&frame, self.config.vision.max_image_pixels)?;
        let faces: Vec<_> = frame
            .faces
            .faces
            .iter()
            .map(crate::formats::from_wire::face)
            .collect();
        let marked = marks::render(&image, &faces, &marks::Layers::default());
        let jpeg = marks::encode(&marked, Encoding::Jpeg).map_err(Error::Internal)?;
        Ok(Some(MarkedFrame {
            timestamp: frame.timestamp,
            jpeg,
            faces,
        }))
    }

    /// Writes a recording's export into `out`.
    pub fn export_recording<W: std::io::Write + std::io::Seek>(
        &self,
        session_id: &str,
        format: ExportFormat,
        out: W,
    ) -> Result<(), Error> {
        let store = self.store()?;
        let written = match format {
            ExportFormat::CsvZip => export::csv_zip(store, session_id, out),
            ExportFormat::Xdf => export::xdf(store, session_id, std::io::BufWriter::new(out)),
        };
        written.map_err(|e| match e {
            export::ExportError::Store(e) => store_error(e),
            e => Error::Internal(e.to_string()),
        })
    }
}

fn image_required() -> Error {
    Error::InvalidArgument("image is required (encoded bytes or raw pixels)".into())
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::NotFound(_) => Error::NotFound(e.to_string()),
        e => Error::Internal(e.to_string()),
    }
}
