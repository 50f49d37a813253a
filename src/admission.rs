//! Admission and limits: what one request or session may ask of the server, in one place,
//! so that every limit is found, documented and configured here (the `[limits]` table).

use serde::{Deserialize, Serialize};

use crate::signals::SignalBudget;

/// The limits the core enforces on client input. Each is checked before anything sized by
/// the client is allocated; the error names the limit's config key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Signal streams one session may describe.
    pub max_streams_per_session: usize,
    /// Longest marker label, bytes.
    pub max_marker_label_bytes: usize,
    /// Samples (all streams, all channels) accepted in one AnalyzeSignals request.
    pub max_samples_per_request: usize,
    /// Feature windows one AnalyzeSignals request, or one chunk of a session, may produce.
    pub max_windows_per_request: u64,
    /// Frames of a session that may wait for its face tracker; one more is recorded but
    /// not analysed (a FRAME_SKIPPED warning).
    pub vision_queue_frames: usize,
    /// Highest nominal sample rate of a signal stream, Hz.
    pub max_sample_rate_hz: f64,
    /// Most channels in one signal stream.
    pub max_channels_per_stream: usize,
    /// Most values (samples x channels) one stream holds for its window and look-back (EDA
    /// keeps 60 s, ECG/PPG 10 s, respiration 30 s, EEG one window): 8 bytes each.
    pub max_values_held_per_stream: u64,
    /// Most values (missing samples x channels) filled with NaN for one gap in a stream.
    pub max_gap_fill_values: u64,
    /// Longest text a client names things with, bytes: participant, stream ids, channel
    /// labels and units, metadata keys.
    pub max_name_bytes: usize,
    /// Most metadata entries of one session.
    pub max_metadata_entries: usize,
    /// Longest metadata value, bytes.
    pub max_metadata_value_bytes: usize,
    /// Live sessions at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_live_sessions: usize,
    /// Seconds a new Stream may take to send its config; then it is refused.
    pub first_message_timeout_s: f64,
    /// Seconds a live session may go without any message from its client; then it ends
    /// with that reason (its recording is completed). 0 = never.
    pub session_idle_timeout_s: f64,
    /// Seconds a session waits for its client to read a response (when 256 are queued);
    /// then the client is taken to have stalled and the session ends (its recording is
    /// completed). Keep it below `server.shutdown_timeout_s`.
    pub client_read_timeout_s: f64,
    /// Explain calls generating at once (they share the model).
    pub max_concurrent_explanations: usize,
    /// Explain calls that may wait for their turn; one more is refused at once.
    pub max_queued_explanations: usize,
    /// Seconds an Explain call waits for its turn before it is refused (UNAVAILABLE).
    pub explain_queue_timeout_s: f64,
    /// Bytes of client messages one session holds between reading them off its stream and
    /// committing what they became (or, unrecorded, handling them): the session stops
    /// reading at this, and HTTP/2 flow control slows its client.
    pub max_session_queue_bytes: usize,
    /// Seconds of a live session (client clock) that its calibration trains on: older fused
    /// estimates and markers are dropped, so a session's memory does not grow with its
    /// length. 0 = the whole session.
    pub calibration_history_s: f64,
    /// Unary analyses (AnalyzeFrame, AnalyzeSignals) running at once.
    pub max_concurrent_analyses: usize,
    /// Unary analyses that may wait for their turn; one more is refused at once.
    pub max_queued_analyses: usize,
    /// Seconds a unary analysis waits for its turn before it is refused (UNAVAILABLE).
    pub analysis_queue_timeout_s: f64,
    /// Exports being written at once (each writes a temporary file as large as the
    /// recording's export); one more is refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_exports: usize,
    /// Dashboard live feeds open at once (one per browser tab on a live session); one more
    /// is refused with 503. Each sends at most 10 updates a second, and waits for nobody.
    pub max_dashboard_feeds: usize,
}

impl Limits {
    /// The part of the limits that the signal analyzers check.
    pub fn signal_budget(&self) -> SignalBudget {
        SignalBudget {
            max_rate_hz: self.max_sample_rate_hz,
            max_channels: self.max_channels_per_stream,
            max_values_held: self.max_values_held_per_stream,
            max_gap_fill_values: self.max_gap_fill_values,
            max_name_bytes: self.max_name_bytes,
            max_windows_per_request: self.max_windows_per_request,
        }
    }

    /// A session's participant and metadata, before anything is recorded: a recording's
    /// summary travels in every ListSessions page, so its text is bounded.
    pub fn check_session_text(
        &self,
        participant: &str,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), String> {
        let name = self.max_name_bytes;
        if participant.len() > name {
            return Err(format!(
                "config.participant: {} bytes; the limit is the config key limits.max_name_bytes = {name}",
                participant.len()
            ));
        }
        if metadata.len() > self.max_metadata_entries {
            return Err(format!(
                "config.metadata: {} entries; the limit is the config key limits.max_metadata_entries = {}",
                metadata.len(),
                self.max_metadata_entries
            ));
        }
        for (key, value) in metadata {
            if key.len() > name {
                return Err(format!(
                    "config.metadata: a key of {} bytes; the limit is the config key limits.max_name_bytes = {name}",
                    key.len()
                ));
            }
            if value.len() > self.max_metadata_value_bytes {
                return Err(format!(
                    "config.metadata[{key:?}]: {} bytes; the limit is the config key limits.max_metadata_value_bytes = {}",
                    value.len(),
                    self.max_metadata_value_bytes
                ));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams_per_session: 64,
            max_marker_label_bytes: 1024,
            // 64 channels x 1 kHz x 10 min.
            max_samples_per_request: 64 * 1000 * 600,
            max_windows_per_request: 10_000,
            vision_queue_frames: 2,
            max_sample_rate_hz: SignalBudget::default().max_rate_hz,
            max_channels_per_stream: SignalBudget::default().max_channels,
            max_values_held_per_stream: SignalBudget::default().max_values_held,
            max_gap_fill_values: SignalBudget::default().max_gap_fill_values,
            max_name_bytes: SignalBudget::default().max_name_bytes,
            max_metadata_entries: 64,
            max_metadata_value_bytes: 4096,
            max_live_sessions: 64,
            first_message_timeout_s: 10.0,
            session_idle_timeout_s: 900.0,
            client_read_timeout_s: 20.0,
            max_concurrent_explanations: 1,
            max_queued_explanations: 16,
            explain_queue_timeout_s: 300.0,
            max_concurrent_exports: 2,
            max_dashboard_feeds: 16,
            // Frames are analysed on every core already (sessions_per_model); more at once
            // only queue inside ONNX Runtime, holding their decoded images.
            max_concurrent_analyses: 8,
            max_queued_analyses: 256,
            analysis_queue_timeout_s: 60.0,
            // Two seconds of 30 fps 1080p JPEGs, or 64 ch x 1 kHz for over 4 minutes.
            max_session_queue_bytes: 64 << 20,
            // Four hours: any lab session; ~1,000 bytes per one-second hop = 15 MB a session.
            calibration_history_s: 4.0 * 3600.0,
        }
    }
}

/// What a gate admits, and the config keys and metrics that go with it.
pub struct GateKind {
    /// "explanations", "analyses": for messages.
    pub what: &'static str,
    pub concurrent_key: &'static str,
    pub queued_key: &'static str,
    pub timeout_key: &'static str,
    /// Gauge of the calls waiting, histogram of their waits.
    pub queue_metric: &'static str,
    pub wait_metric: &'static str,
}

pub const EXPLANATIONS: GateKind = GateKind {
    what: "explanations",
    concurrent_key: "limits.max_concurrent_explanations",
    queued_key: "limits.max_queued_explanations",
    timeout_key: "limits.explain_queue_timeout_s",
    queue_metric: crate::metrics::EXPLAIN_QUEUE,
    wait_metric: crate::metrics::EXPLAIN_WAIT,
};

pub const ANALYSES: GateKind = GateKind {
    what: "analyses",
    concurrent_key: "limits.max_concurrent_analyses",
    queued_key: "limits.max_queued_analyses",
    timeout_key: "limits.analysis_queue_timeout_s",
    queue_metric: crate::metrics::ANALYSIS_QUEUE,
    wait_metric: crate::metrics::ANALYSIS_WAIT,
};

/// Admission of calls that share a scarce resource: at most `concurrent` run, at most
/// `queued` wait, each at most `timeout_s`; one more is refused at once. The wait is async
/// (it holds no thread of the shared blocking pool), and a call whose client leaves while
/// waiting is dropped from the queue with its future: it never starts.
///
/// Two gates: Explain calls (they share the model: `max_concurrent_explanations`, ...), and
/// unary analyses, `AnalyzeFrame` and `AnalyzeSignals` (`max_concurrent_analyses`, ...).
pub struct Gate {
    kind: GateKind,
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    timeout_s: f64,
}

/// The threads that prepare and generate `Explain` calls' explanations, one per turn of the
/// explanation gate, started with the first call: explanations never take (or wait for) a
/// thread of the runtime's shared blocking pool, which frame and signal analyses use.
pub struct ExplainPool {
    jobs: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<ExplainJob>>>,
    threads: usize,
}

/// Work for the explanation pool: runs holding its turn.
type ExplainJob = Box<dyn FnOnce() + Send>;

/// Holds a call's turn until dropped (when its work ends).
pub type Turn = tokio::sync::OwnedSemaphorePermit;

impl Gate {
    /// The Explain calls' gate.
    pub fn explanations(limits: &Limits) -> Gate {
        Gate::with(
            EXPLANATIONS,
            limits.max_concurrent_explanations,
            limits.max_queued_explanations,
            limits.explain_queue_timeout_s,
        )
    }

    /// The unary analyses' gate.
    pub fn analyses(limits: &Limits) -> Gate {
        Gate::with(
            ANALYSES,
            limits.max_concurrent_analyses,
            limits.max_queued_analyses,
            limits.analysis_queue_timeout_s,
        )
    }

    fn with(kind: GateKind, concurrent: usize, queued: usize, timeout_s: f64) -> Gate {
        Gate {
            kind,
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent.max(1))),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: queued,
            timeout_s,
        }
    }

    pub async fn admit(&self) -> Result<Turn, crate::error::Error> {
        use crate::error::Error;
        use std::sync::atomic::Ordering;
        if let Ok(turn) = self.turns.clone().try_acquire_owned() {
            return Ok(turn);
        }
        let queue_metric = self.kind.queue_metric;
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        metrics::gauge!(queue_metric).set((waiting + 1) as f64);
        // Leaves the count however the wait ends (admitted, timed out, or dropped).
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize, &'static str);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                let left = self.0.fetch_sub(1, Ordering::SeqCst) - 1;
                metrics::gauge!(self.1).set(left as f64);
            }
        }
        let started = std::time::Instant::now();
        let _waiting = Waiting(&self.waiting, queue_metric);
        let GateKind {
            what,
            concurrent_key,
            queued_key,
            timeout_key,
            ..
        } = self.kind;
        if waiting >= self.max_waiting {
            return Err(Error::ResourceExhausted(format!(
                "{waiting} {what} are waiting, the most this server queues (config key {queued_key}); try later"
            )));
        }
        let timeout = crate::config::duration(self.timeout_s);
        match tokio::time::timeout(timeout, self.turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => {
                metrics::histogram!(self.kind.wait_metric).record(started.elapsed().as_secs_f64());
                Ok(turn)
            }
            Ok(Err(_)) => Err(Error::Unavailable("the server is shutting down".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "no turn within {} s (config key {timeout_key}); other {what} are running (at most {concurrent_key} at once), try later",
                self.timeout_s
            ))),
        }
    }
}

impl ExplainPool {
    /// As many threads as the explanation gate has turns.
    pub fn new(limits: &Limits) -> ExplainPool {
        ExplainPool {
            jobs: std::sync::OnceLock::new(),
            threads: limits.max_concurrent_explanations.max(1),
        }
    }

    /// Runs `job` on the explanation pool, holding `turn` until it returns. A turn means a
    /// thread is free (the pool has one per turn; live sessions explain on their own
    /// threads), so the job starts at once. A panic in it is caught and logged; the caller
    /// learns of it when its channels close.
    pub fn run(&self, turn: Turn, job: impl FnOnce() + Send + 'static) {
        let pool = self.jobs.get_or_init(|| {
            let (jobs, queue) = std::sync::mpsc::channel::<ExplainJob>();
            let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
            for i in 0..self.threads {
                let queue = queue.clone();
                let started = std::thread::Builder::new()
                    .name(format!("explain-{i}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take a job, not to run it.
                            let next = queue.lock().map(|q| q.recv());
                            let Ok(Ok(job)) = next else { return };
                            if let Err(e) = crate::error::catch_panic("explanation", || {
                                job();
                                Ok(())
                            }) {
                                tracing::error!("{e}");
                            }
                        }
                    });
                if let Err(e) = started {
                    tracing::error!("cannot start an explanation thread: {e}");
                }
            }
            std::sync::Mutex::new(jobs)
        });
        let job: ExplainJob = Box::new(move || {
            let _turn = turn;
            job()
        });
        let sent = pool.lock().map(|jobs| jobs.send(job));
        if !matches!(sent, Ok(Ok(()))) {
            tracing::error!("the explanation pool has stopped; the call is dropped");
        }
    }
}
