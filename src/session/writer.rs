//! The session's recording thread: commits what has queued up (up to a few MB) in one SQLite
//! transaction (a commit with synchronous=FULL waits for the disk, ~10-30 ms here), and
//! acknowledges after each commit.

use std::sync::mpsc as std_mpsc;

use super::Event;
use super::outbox::Outbox;
use crate::error::{Error, catch_panic};
use crate::store::{DiskBudget, Record, Recorder, Store};

pub enum WriteJob {
    /// Records to commit; every client message up to `accepted` is among them or earlier.
    /// `taken_at`: when the session worker took the first of these messages.
    Records {
        records: Vec<Record>,
        accepted: u64,
        taken_at: std::time::Instant,
        /// The messages' shares of the session's queue bytes: released when written.
        held: Vec<super::worker::Held>,
    },
    /// Marks the recording ended (after everything before it is committed).
    End { ended_at: f64, reason: String },
}

/// Batches that may wait for the writer. Bounded so that a writer held up (by the disk, or
/// by a client that does not read its acknowledgements) holds up the session's worker, which
/// stops taking the client's messages, which stops reading the stream: HTTP/2 flow control
/// then slows the sender, instead of the server queueing without end.
pub const QUEUE_BATCHES: usize = 8;

pub struct Writer {
    pub jobs: std_mpsc::SyncSender<WriteJob>,
    /// Answers whether everything was recorded (false: the writer told the client why).
    thread: std::thread::JoinHandle<bool>,
}

impl Writer {
    pub fn start(
        recorder: Recorder,
        store: Store,
        budget: DiskBudget,
        out: Outbox,
    ) -> Result<Writer, Error> {
        let (jobs, queue) = std_mpsc::sync_channel::<WriteJob>(QUEUE_BATCHES);
        let thread = std::thread::Builder::new()
            .name("session-writer".into())
            .spawn(move || {
                match catch_panic("session recorder", || {
                    record(recorder, &store, budget, queue, &out)
                }) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!("{e}");
                        let _ = out.send(Err(e));
                        false
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the session recorder: {e}")))?;
        Ok(Writer { jobs, thread })
    }

    /// Waits for the writer to finish; true when everything was recorded.
    pub fn join(self) -> bool {
        drop(self.jobs);
        // The thread catches its own panics, so a join error cannot carry one.
        self.thread.join().unwrap_or(false)
    }
}

fn record(
    mut recorder: Recorder,
    store: &Store,
    budget: DiskBudget,
    queue: std_mpsc::Receiver<WriteJob>,
    out: &Outbox,
) -> Result<(), Error> {
    let mut acked = 0u64;
    let mut recorded_bytes = 0u64;
    while let Ok(first) = queue.recv() {
        let mut records = Vec::new();
        let mut accepted = acked;
        let mut end = None;
        let mut oldest: Option<std::time::Instant> = None;
        // Dropped (released to the client's next messages) after this transaction.
        let mut written = Vec::new();
        // Batches queued meanwhile join the transaction up to about
        // worker::MAX_BATCH_BYTES of payload; the rest wait for the next.
        let mut pending = Some(first);
        let mut payload = 0u64;
        while let Some(job) = pending.take().or_else(|| {
            (payload < super::worker::MAX_BATCH_BYTES as u64)
                .then(|| queue.try_recv().ok())
                .flatten()
        }) {
            if let WriteJob::Records { records, .. } = &job {
                payload += records.iter().map(Record::payload_bytes).sum::<u64>();
            }
            match job {
                WriteJob::Records {
                    records: more,
                    accepted: upto,
                    taken_at,
                    held,
                } => {
                    metrics::gauge!(crate::metrics::WRITER_QUEUE).decrement(1.0);
                    records.extend(more);
                    written.extend(held);
                    accepted = accepted.max(upto);
                    oldest = Some(oldest.map_or(taken_at, |o| o.min(taken_at)));
                }
                WriteJob::End { ended_at, reason } => end = Some((ended_at, reason)),
            }
        }
        // The quotas, before writing: a batch that does not fit is not written, and the
        // recording ends with everything acknowledged in it.
        let adding = payload;
        if let Err(why) = budget.check(store, recorded_bytes, adding) {
            let _ = recorder.end(
                crate::engine::unix_now(),
                &format!("recording stopped: {why}"),
            );
            return Err(Error::ResourceExhausted(format!(
                "recording stopped: {why}; messages up to client_seq {acked} are recorded"
            )));
        }
        if let Err(e) = recorder.write(&records) {
            // Closing it may fail for the same reason; then the next start closes it.
            let _ = recorder.end(crate::engine::unix_now(), &format!("recording failed: {e}"));
            if e.is_disk_full() {
                return Err(Error::ResourceExhausted(format!(
                    "recording failed: the disk holding the session database is full ({e}); messages up to client_seq {acked} are recorded (free space, or raise store.min_free_disk_bytes so that recording stops earlier)"
                )));
            }
            return Err(Error::Internal(format!(
                "recording failed: {e}; messages up to client_seq {acked} are recorded"
            )));
        }
        recorded_bytes += adding;
        drop(written);
        metrics::counter!(crate::metrics::RECORDED_BYTES).increment(adding);
        if accepted > acked {
            acked = accepted;
            let _ = out.send(Ok(Event::Ack(acked)));
            if let Some(taken_at) = oldest {
                metrics::histogram!(crate::metrics::ACK_LATENCY)
                    .record(taken_at.elapsed().as_secs_f64());
            }
        }
        if let Some((ended_at, reason)) = end {
            if let Err(e) = recorder.end(ended_at, &reason) {
                tracing::error!("cannot mark the recording ended: {e}");
            }
            return Ok(());
        }
    }
    // The session worker went away without ending the recording (it failed; it has told
    // the client): close the recording with the reason rather than leave it open.
    let _ = recorder.end(
        crate::engine::unix_now(),
        "the session's worker stopped without ending it (see the server log)",
    );
    Ok(())
}
