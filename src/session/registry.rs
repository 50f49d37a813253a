//! What the rest of the server may see of a live session while it runs. The session's own
//! workers own its tracker, analyzers and recorder; they publish its latest analysed frame
//! and each stream's latest feature window here, so that an explanation (from the session
//! itself or from an Explain request naming it) reads the same moment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::error::Error;
use crate::explain::Moment;
use crate::fusion::FusedEstimate;
use crate::prompt::{FusedCue, PhysioCues};
use crate::signals::features::FeatureWindow;
use crate::vision::FrameResult;

/// Windows that ended this long before the explained frame are stale: their stream has
/// stopped, and they do not describe the moment being explained.
const STALE_WINDOW_S: f64 = 30.0;

/// A fused estimate whose hop ended this long before the explained frame is stale (fusion
/// waits up to `fusion.stale_s`, 10 s by default, for a lagging modality).
const STALE_FUSED_S: f64 = 15.0;

/// The latest analysed frame of a session.
#[derive(Clone)]
pub struct LatestFrame {
    /// Client clock, s.
    pub timestamp: f64,
    pub image: Arc<RgbImage>,
    pub faces: Arc<FrameResult>,
    /// The session's recent and open expression episodes as of this frame.
    pub episodes: Arc<Vec<crate::vision::dynamics::Episode>>,
    /// Their onset and apex frames.
    pub keyframes: Option<Arc<crate::vision::dynamics::keyframes::Keyframes>>,
}

/// One moment of a session: its latest frame and every stream's latest window.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub frame: Option<LatestFrame>,
    /// By stream id.
    pub windows: BTreeMap<String, FeatureWindow>,
    /// The latest fused estimate.
    pub fused: Option<FusedEstimate>,
}

impl Snapshot {
    /// The moment an explanation describes: the latest frame, its faces, and the cues of
    /// the windows current at it (those that ended within 30 s of the frame).
    pub fn moment(&self, session_id: &str) -> Result<Moment, Error> {
        let frame = self.frame.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "session `{session_id}` has no analysed frame yet, so there are no faces to explain; send frames first"
            ))
        })?;
        let windows: Vec<_> = self
            .windows
            .values()
            .filter(|w| w.end_time >= frame.timestamp - STALE_WINDOW_S)
            .cloned()
            .collect();
        // The fused estimate current at the frame: its hop ended within a few seconds of it
        // (estimates trail the frames by the modalities' latencies).
        let fused = self
            .fused
            .clone()
            .filter(|f| f.end_time >= frame.timestamp - STALE_FUSED_S);
        let mut cues = PhysioCues::from_windows(&windows);
        cues.fused = fused.as_ref().map(FusedCue::new);
        let physiology = (cues != PhysioCues::default()).then_some(cues);
        Ok(Moment {
            image: frame.image.clone(),
            frame: (*frame.faces).clone(),
            physiology,
            episodes: (*frame.episodes).clone(),
            at: frame.timestamp,
            keyframes: frame.keyframes.clone(),
        })
    }
}

/// A running session's shared view.
#[derive(Default)]
pub struct LiveSession {
    pub session_id: String,
    /// The name of the token that opened it; None when authentication is off.
    pub owner: Option<String>,
    /// What the dashboard shows of it (`session::board`).
    pub board: super::board::Board,
    latest: Mutex<Snapshot>,
    clock_reports: Mutex<Vec<ClockReport>>,
    /// The session worker's input, for requests from outside the stream (Calibrate).
    control: Mutex<Option<tokio::sync::mpsc::Sender<super::worker::Input>>>,
}

/// A client-measured clock offset (server minus client clock), reported by ClockSync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockReport {
    /// Server clock, s, when it was reported.
    pub server_time: f64,
    pub offset_s: f64,
    pub rtt_s: f64,
}

impl LiveSession {
    pub fn new(session_id: String, owner: Option<String>) -> Self {
        Self {
            session_id,
            owner,
            ..Default::default()
        }
    }

    pub fn set_frame(&self, frame: LatestFrame) {
        self.latest.lock().expect("session view lock").frame = Some(frame);
    }

    pub fn set_window(&self, window: FeatureWindow) {
        self.latest
            .lock()
            .expect("session view lock")
            .windows
            .insert(window.stream_id.clone(), window);
    }

    pub fn set_fused(&self, fused: FusedEstimate) {
        self.latest.lock().expect("session view lock").fused = Some(fused);
    }

    pub(super) fn clear_control(&self) {
        *self.control.lock().expect("session control lock") = None;
    }

    pub(super) fn set_control(&self, input: tokio::sync::mpsc::Sender<super::worker::Input>) {
        *self.control.lock().expect("session control lock") = Some(input);
    }

    /// Trains the session's subject calibration on its labelled blocks so far and switches
    /// its fusion to it (see `fusion::calibrate`).
    pub async fn calibrate(&self) -> Result<crate::fusion::calibrate::FusionModel, Error> {
        let input = self
            .control
            .lock()
            .expect("session control lock")
            .clone()
            .ok_or_else(|| Error::NotFound(format!("session `{}` is ending", self.session_id)))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        input
            .send(super::worker::Input::Calibrate { reply })
            .await
            .map_err(|_| Error::NotFound(format!("session `{}` has ended", self.session_id)))?;
        answer
            .await
            .map_err(|_| Error::NotFound(format!("session `{}` has ended", self.session_id)))?
    }

    /// The latest analysed frame alone (its image and faces are shared, not copied).
    pub fn latest_frame(&self) -> Option<LatestFrame> {
        self.latest.lock().expect("session view lock").frame.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        self.latest.lock().expect("session view lock").clone()
    }

    /// The session's latest moment, for an explanation.
    pub fn moment(&self) -> Result<Moment, Error> {
        self.snapshot().moment(&self.session_id)
    }

    /// Keeps a clock report until the session's loop records it.
    pub fn report_clock(&self, report: ClockReport) {
        self.clock_reports
            .lock()
            .expect("session clock lock")
            .push(report);
    }

    pub fn take_clock_reports(&self) -> Vec<ClockReport> {
        std::mem::take(&mut *self.clock_reports.lock().expect("session clock lock"))
    }
}

/// The live sessions of this server, by id.
pub struct Registry {
    sessions: Mutex<HashMap<String, Arc<LiveSession>>>,
    /// Becomes true when the server is shutting down: every session then ends as if the
    /// client had ended it, so that its recording is complete and closed.
    closing: tokio::sync::watch::Sender<bool>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            sessions: Mutex::default(),
            closing: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Registry {
    /// Asks every live session (and every one that starts later) to end.
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves when the server starts shutting down.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Registers a session, unless one with that id is live already (ALREADY_EXISTS) or
    /// `max_live` are (RESOURCE_EXHAUSTED): checked and inserted under one lock.
    pub fn insert(&self, session: LiveSession, max_live: usize) -> Result<Arc<LiveSession>, Error> {
        let mut sessions = self.sessions.lock().expect("registry lock");
        if sessions.contains_key(&session.session_id) {
            return Err(Error::AlreadyExists(format!(
                "session `{}` is already live on this server; choose another session_id (or leave it empty)",
                session.session_id
            )));
        }
        if sessions.len() >= max_live {
            return Err(Error::ResourceExhausted(format!(
                "{} sessions are live, the most this server takes (config key limits.max_live_sessions); end one or try later",
                sessions.len()
            )));
        }
        let session = Arc::new(session);
        sessions.insert(session.session_id.clone(), session.clone());
        metrics::gauge!(crate::metrics::LIVE_SESSIONS).set(sessions.len() as f64);
        Ok(session)
    }

    pub fn get(&self, session_id: &str) -> Option<Arc<LiveSession>> {
        self.sessions
            .lock()
            .expect("registry lock")
            .get(session_id)
            .cloned()
    }

    /// A live session, or NOT_FOUND saying that only live sessions qualify.
    pub fn live(&self, session_id: &str) -> Result<Arc<LiveSession>, Error> {
        self.get(session_id).ok_or_else(|| {
            Error::NotFound(format!(
                "no live session `{session_id}` on this server (a recorded session that has ended can be exported, not explained or synchronised)"
            ))
        })
    }

    /// Stores a clock offset the client measured for a live session; it is recorded with
    /// the session's next commit.
    pub fn report_clock(&self, session_id: &str, report: ClockReport) -> Result<(), Error> {
        let live = self.live(session_id)?;
        if !(report.offset_s.is_finite() && report.rtt_s.is_finite() && report.rtt_s >= 0.0) {
            return Err(Error::InvalidArgument(format!(
                "measured_offset_s and measured_rtt_s must be finite and the rtt >= 0, got {} and {}",
                report.offset_s, report.rtt_s
            )));
        }
        live.report_clock(report);
        Ok(())
    }

    pub fn remove(&self, session_id: &str) {
        let mut sessions = self.sessions.lock().expect("registry lock");
        sessions.remove(session_id);
        metrics::gauge!(crate::metrics::LIVE_SESSIONS).set(sessions.len() as f64);
    }

    /// Every live session, by id.
    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        let mut all: Vec<_> = self
            .sessions
            .lock()
            .expect("registry lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        all
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a client-chosen session id: 1 to 64 characters of letters, digits, '.', '_'
/// and '-', so that it is safe in file names and URLs.
pub fn check_session_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!(
            "session_id must be 1 to 64 characters, got {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "session_id {id:?} has the character {c:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_live_session_per_id() {
        let registry = Registry::default();
        assert!(
            registry
                .insert(LiveSession::new("a".into(), None), 2)
                .is_ok()
        );
        assert!(matches!(
            registry.insert(LiveSession::new("a".into(), None), 2),
            Err(Error::AlreadyExists(_))
        ));
        assert!(
            registry
                .insert(LiveSession::new("b".into(), None), 2)
                .is_ok()
        );
        assert!(matches!(
            registry.insert(LiveSession::new("c".into(), None), 2),
            Err(Error::ResourceExhausted(m)) if m.contains("limits.max_live_sessions")
        ));
        assert_eq!(registry.len(), 2);
        registry.remove("a");
        assert!(registry.get("a").is_none());
        assert!(
            registry
                .insert(LiveSession::new("c".into(), None), 2)
                .is_ok()
        );
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(check_session_id("p01_run-2.v1").is_ok());
        assert!(check_session_id("").is_err());
        assert!(check_session_id("../etc").unwrap_err().contains("'/'"));
        assert!(check_session_id(&"x".repeat(65)).is_err());
    }

    use crate::signals::eeg::{Asymmetry, EegFeatures};
    use crate::signals::features::{CardiacWindow, Features, SignalKind};

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
            episodes: Arc::new(Vec::new()),
            keyframes: None,
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
        let cues = snapshot.moment("s").unwrap().physiology.unwrap();
        assert_eq!(cues.eeg_asymmetry, Some(0.25));
        assert_eq!(cues.eeg_arousal_index, Some(1.8));
        assert_eq!(cues.heart_rate_bpm, None);

        snapshot
            .windows
            .insert("ecg".into(), window("ecg", 98.5, cardiac));
        let moment = snapshot.moment("s").unwrap();
        let cues = moment.physiology.clone().unwrap();
        assert_eq!(cues.heart_rate_bpm, Some(72.0));
        assert_eq!(cues.heart_rate_change_bpm, Some(5.0));
        // A recorded moment reads windows back from their wire form (with an EDA window
        // here too): the same cues as from the live ones.
        let eda = Features::Eda(crate::signals::features::EdaWindow {
            tonic_mean: 2.0,
            responses: vec![crate::signals::features::Scr {
                onset_time: 97.0,
                peak_time: 98.0,
                amplitude: 0.3,
                rise_time_s: 1.0,
            }],
            scr_rate_per_min: 15.0,
        });
        let live: Vec<FeatureWindow> = snapshot
            .windows
            .values()
            .cloned()
            .chain([window("eda", 99.5, eda)])
            .collect();
        let recorded: Vec<_> = live
            .iter()
            .map(crate::formats::wire::feature_window)
            .collect();
        let from_recording = crate::formats::from_wire::physio_cues(&recorded);
        assert_eq!(from_recording, PhysioCues::from_windows(&live));
        assert_eq!(from_recording.scr_mean_amplitude_us, Some(0.3));

        // And the prompt states them in words with their values.
        let face = crate::prompt::FaceCue {
            face_id: 1,
            action_units: Vec::new(),
            expression: None,
            face_valence_arousal: None,
            head_pose: None,
            episodes: Vec::new(),
        };
        let input = crate::prompt::PromptInput {
            targets: vec![1],
            faces: vec![face],
            labels: crate::prompt::label_set(&[]).unwrap(),
            context: None,
            physiology: moment.physiology,
            with_image: false,
            image_notes: Vec::new(),
        };
        let sovtp1 = crate::prompt::Template::named("sovtp@1").unwrap();
        let built = crate::prompt::build(&sovtp1, &input).unwrap();
        assert!(
            built
                .user
                .contains("Heart rate 72.0 bpm, +5.0 bpm from baseline")
        );
        assert!(built.user.contains("EEG frontal alpha asymmetry +0.250"));
        // The default template states them under the keys a judgement may cite.
        let built = crate::prompt::build(&crate::prompt::Template::builtin(), &input).unwrap();
        assert!(
            built
                .user
                .contains("hr 72 bpm; hr.change +5.0 bpm from baseline"),
            "{}",
            built.user
        );
        assert!(
            built
                .user
                .contains("eeg.faa +0.250 (left-frontal, approach)"),
            "{}",
            built.user
        );

        // Without a frame there is nothing to explain.
        let error = Snapshot::default().moment("s").err().unwrap();
        assert!(matches!(error, Error::FailedPrecondition(_)), "{error}");
    }
}
