//! Live sessions: what the rest of the server may see of a session while it runs. The
//! session's own loop (`server::stream`) owns its tracker, analyzers and recorder; it
//! publishes its latest analysed frame and each stream's latest feature window here, so
//! that an explanation (from the session itself or from the Explain RPC naming it) reads
//! the same moment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use image::RgbImage;

use crate::signals::stream::FeatureWindow;
use crate::vision::FrameResult;

/// The latest analysed frame of a session.
#[derive(Clone)]
pub struct LatestFrame {
    /// Client clock, s.
    pub timestamp: f64,
    pub image: Arc<RgbImage>,
    pub faces: Arc<FrameResult>,
}

/// One moment of a session: its latest frame and every stream's latest window.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub frame: Option<LatestFrame>,
    /// By stream id.
    pub windows: BTreeMap<String, FeatureWindow>,
}

/// A running session's shared view.
#[derive(Default)]
pub struct LiveSession {
    pub session_id: String,
    latest: Mutex<Snapshot>,
    clock_reports: Mutex<Vec<ClockReport>>,
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
    pub fn new(session_id: String) -> Self {
        Self {
            session_id,
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

    pub fn snapshot(&self) -> Snapshot {
        self.latest.lock().expect("session view lock").clone()
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

    /// Registers a session; None when one with that id is already live.
    pub fn insert(&self, session: LiveSession) -> Option<Arc<LiveSession>> {
        let mut sessions = self.sessions.lock().expect("registry lock");
        if sessions.contains_key(&session.session_id) {
            return None;
        }
        let session = Arc::new(session);
        sessions.insert(session.session_id.clone(), session.clone());
        Some(session)
    }

    pub fn get(&self, session_id: &str) -> Option<Arc<LiveSession>> {
        self.sessions
            .lock()
            .expect("registry lock")
            .get(session_id)
            .cloned()
    }

    pub fn remove(&self, session_id: &str) {
        self.sessions
            .lock()
            .expect("registry lock")
            .remove(session_id);
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
        assert!(registry.insert(LiveSession::new("a".into())).is_some());
        assert!(registry.insert(LiveSession::new("a".into())).is_none());
        assert_eq!(registry.len(), 1);
        registry.remove("a");
        assert!(registry.get("a").is_none());
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(check_session_id("p01_run-2.v1").is_ok());
        assert!(check_session_id("").is_err());
        assert!(check_session_id("../etc").unwrap_err().contains("'/'"));
        assert!(check_session_id(&"x".repeat(65)).is_err());
    }
}
