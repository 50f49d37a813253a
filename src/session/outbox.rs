//! The session's answers to its client, sent from the session's threads. A client that
//! stops reading its responses must not hold those threads (and with them the recording,
//! and the server's shutdown) for ever: a send that cannot go through within
//! `limits.client_read_timeout_s` marks the session's client as stalled; from then on
//! nothing waits for it, and the session worker ends the session (its recording is
//! completed and closed; the client, which is not reading, is told nothing more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::Event;
use crate::error::Error;

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Result<Event, Error>>,
    patience: Duration,
    stalled: Arc<AtomicBool>,
    /// The session's dashboard view, which sees every answer (even when the client has
    /// gone or stalled).
    board: Option<Arc<super::LiveSession>>,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<Result<Event, Error>>, patience: Duration) -> Outbox {
        Outbox {
            tx,
            patience,
            stalled: Arc::default(),
            board: None,
        }
    }

    /// Shows every answer on the session's dashboard view too.
    pub fn showing_on(mut self, live: Arc<super::LiveSession>) -> Outbox {
        self.board = Some(live);
        self
    }

    /// Sends from a blocking thread, waiting at most the patience for room; false when the
    /// client is gone or stalled (the answer is dropped).
    pub fn send(&self, item: Result<Event, Error>) -> bool {
        if let (Some(live), Ok(event)) = (&self.board, &item) {
            live.board.observe(event);
        }
        if self.stalled() {
            return false;
        }
        let mut item = match self.tx.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Closed(_)) => return false,
            Err(TrySendError::Full(item)) => item,
        };
        // Full: the client reads slower than the session answers. Poll with a growing
        // pause (tokio's channel has no blocking send with a deadline).
        let deadline = Instant::now() + self.patience;
        let mut pause = Duration::from_millis(1);
        loop {
            if Instant::now() >= deadline {
                self.stalled.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "a session's client has read none of its responses for {:?} (config key limits.client_read_timeout_s); ending the session",
                    self.patience
                );
                return false;
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(50));
            item = match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Closed(_)) => return false,
                Err(TrySendError::Full(item)) => item,
            };
        }
    }

    /// Whether a send gave up on the client.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// Whether the client's side is gone (or stalled).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.stalled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_does_not_read_is_given_up_after_the_patience() {
        let (tx, mut rx) = mpsc::channel(2);
        let out = Outbox::new(tx, Duration::from_millis(200));
        assert!(out.send(Ok(Event::Ack(1))));
        assert!(out.send(Ok(Event::Ack(2))));
        let started = Instant::now();
        assert!(!out.send(Ok(Event::Ack(3))), "the channel is full");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(out.stalled() && out.is_closed());
        // Once stalled, nothing waits again.
        let started = Instant::now();
        assert!(!out.send(Ok(Event::Ack(4))));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(matches!(rx.try_recv(), Ok(Ok(Event::Ack(1)))));
    }

    #[test]
    fn a_slow_reader_within_the_patience_loses_nothing() {
        let (tx, mut rx) = mpsc::channel(1);
        let out = Outbox::new(tx, Duration::from_secs(5));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            while let Some(Ok(Event::Ack(n))) = rx.blocking_recv() {
                got.push(n);
                std::thread::sleep(Duration::from_millis(5));
            }
            got
        });
        for n in 1..=20 {
            assert!(out.send(Ok(Event::Ack(n))));
        }
        drop(out);
        assert_eq!(reader.join().unwrap(), (1..=20).collect::<Vec<_>>());
    }
}
