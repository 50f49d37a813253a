//! The receive task: protocol checks on each client message, then on to the worker.

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

use super::worker::{Held, Input};
use super::{ClientMessage, InboundError, Incoming};
use crate::error::Error;
use crate::vision::image::ImageInput;

/// A session's budget of client-message bytes in memory (`limits.max_session_queue_bytes`):
/// a message read off the stream takes its share before it goes on, and gives it back when
/// what it became is committed. At the limit the session stops reading.
pub struct QueueBytes {
    semaphore: std::sync::Arc<tokio::sync::Semaphore>,
    limit: u32,
}

impl QueueBytes {
    pub fn new(limit: usize) -> QueueBytes {
        let limit = limit.clamp(1, u32::MAX as usize) as u32;
        QueueBytes {
            semaphore: std::sync::Arc::new(tokio::sync::Semaphore::new(limit as usize)),
            limit,
        }
    }

    /// Waits for room for `bytes` (a message over the whole budget takes all of it).
    async fn take(&self, bytes: usize) -> Held {
        let share = bytes.clamp(1, self.limit as usize) as u32;
        self.semaphore
            .clone()
            .acquire_many_owned(share)
            .await
            .expect("the semaphore is never closed")
    }
}

/// What a client message holds in memory until committed: its payload and a fixed
/// overhead for the rest.
fn held_bytes(message: &ClientMessage) -> usize {
    const OVERHEAD: usize = 256;
    OVERHEAD
        + match message {
            ClientMessage::Frame(frame) => match &frame.image {
                Some(ImageInput::Encoded(bytes)) => bytes.len(),
                Some(ImageInput::Raw { pixels, .. }) => pixels.len(),
                None => 0,
            },
            ClientMessage::Chunk(chunk) => {
                chunk.samples.len() * 4 + chunk.timestamps.len() * 8 + chunk.stream_id.len()
            }
            ClientMessage::Marker(marker) => marker.label.len(),
            ClientMessage::Explain(_) => 1024,
            ClientMessage::Config | ClientMessage::End => 0,
        }
}

/// Reads the client's messages until the session ends, checking that client_seq
/// increases, that no message is empty and that no config follows the first.
pub async fn receive<S>(
    mut inbound: S,
    input: mpsc::Sender<Input>,
    mut last_seq: u64,
    mut closing: tokio::sync::watch::Receiver<bool>,
    idle_timeout_s: f64,
    queue_bytes: QueueBytes,
) where
    S: Stream<Item = Result<Incoming, InboundError>> + Unpin + Send + 'static,
{
    // 0 (or a value too large for a Duration): no idle limit.
    let idle = (idle_timeout_s > 0.0).then(|| crate::config::duration(idle_timeout_s));
    let end = loop {
        let next = tokio::select! {
            next = inbound.next() => next,
            _ = closing.wait_for(|closing| *closing) => {
                break Input::End {
                    reason: "the server is shutting down".into(),
                    error: None,
                };
            }
            // The worker ended the session (an error, a stalled client): stop reading.
            _ = input.closed() => return,
            _ = async {
                match idle {
                    Some(idle) => tokio::time::sleep(idle).await,
                    None => std::future::pending().await,
                }
            } => {
                break Input::End {
                    reason: format!("no message from the client for {idle_timeout_s} s"),
                    error: Some(Error::DeadlineExceeded(format!(
                        "the session received no message for {idle_timeout_s} s and was ended; its recording is complete up to the last acknowledged message (config key limits.session_idle_timeout_s)"
                    ))),
                };
            }
        };
        let request = match next {
            Some(Ok(request)) => request,
            None => {
                break Input::End {
                    reason: "the client closed its side of the stream".into(),
                    error: None,
                };
            }
            Some(Err(InboundError::Broken(message))) => {
                break Input::End {
                    reason: format!("the client's stream failed: {message}"),
                    error: None,
                };
            }
            Some(Err(InboundError::Refused(error))) => {
                break Input::End {
                    reason: format!("a message after client_seq {last_seq} could not be read"),
                    error: Some(error),
                };
            }
        };
        let seq = request.client_seq;
        if seq <= last_seq {
            break Input::End {
                reason: format!("client_seq {seq} after {last_seq}"),
                error: Some(Error::InvalidArgument(format!(
                    "client_seq must increase: got {seq} after {last_seq}; nothing from {seq} on was recorded"
                ))),
            };
        }
        last_seq = seq;
        // The session's worker or writer held up: wait for room for this message (shutdown
        // still gets through), reading nothing more meanwhile.
        let bytes = request.message.as_ref().map_or(0, held_bytes);
        let held = tokio::select! {
            held = queue_bytes.take(bytes) => held,
            _ = closing.wait_for(|closing| *closing) => {
                break Input::End {
                    reason: "the server is shutting down".into(),
                    error: None,
                };
            }
        };
        let message = match request.message {
            Some(ClientMessage::Frame(frame)) => Input::Frame { seq, frame, held },
            Some(ClientMessage::Chunk(chunk)) => Input::Chunk { seq, chunk, held },
            Some(ClientMessage::Marker(marker)) => Input::Marker { seq, marker, held },
            Some(ClientMessage::Explain(request)) => Input::Explain { seq, request, held },
            None => {
                break Input::End {
                    reason: format!("empty message at client_seq {seq}"),
                    error: Some(Error::InvalidArgument(format!(
                        "client_seq {seq}: the message is empty (set frame, chunk, marker, explain or end)"
                    ))),
                };
            }
            Some(ClientMessage::Config) => {
                break Input::End {
                    reason: format!("a second config at client_seq {seq}"),
                    error: Some(Error::InvalidArgument(format!(
                        "client_seq {seq}: config may only be the first message"
                    ))),
                };
            }
            Some(ClientMessage::End) => {
                break Input::End {
                    reason: "EndSession received".into(),
                    error: None,
                };
            }
        };
        // A worker held up (a stalled client, a slow disk) holds this send; shutdown
        // must still get through.
        tokio::select! {
            sent = input.send(message) => if sent.is_err() {
                // The worker stopped (a rejected message or a failed commit); it has answered.
                return;
            },
            _ = closing.wait_for(|closing| *closing) => {
                break Input::End {
                    reason: "the server is shutting down".into(),
                    error: None,
                };
            }
        }
    };
    let _ = input.send(end).await;
}
