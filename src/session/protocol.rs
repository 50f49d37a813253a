//! The receive task: protocol checks on each client message, then on to the worker.

use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};

use super::worker::Input;
use super::{ClientMessage, InboundError, Incoming};
use crate::error::Error;

/// Reads the client's messages until the session ends, checking that client_seq
/// increases, that no message is empty and that no config follows the first.
pub async fn receive<S>(
    mut inbound: S,
    input: mpsc::Sender<Input>,
    mut last_seq: u64,
    mut closing: tokio::sync::watch::Receiver<bool>,
    idle_timeout_s: f64,
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
        let message = match request.message {
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
            Some(ClientMessage::Frame(frame)) => Input::Frame { seq, frame },
            Some(ClientMessage::Chunk(chunk)) => Input::Chunk { seq, chunk },
            Some(ClientMessage::Marker(marker)) => Input::Marker { seq, marker },
            Some(ClientMessage::Explain(request)) => Input::Explain { seq, request },
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
