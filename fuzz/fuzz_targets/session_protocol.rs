//! The session protocol and core: a sequence of encoded `StreamRequest`s (each a 2-byte
//! little-endian length and that many bytes; a message that does not decode arrives as
//! tonic reports it) through a Stream call's path, with a real session database. Checks:
//! no panic; `SessionStarted` first when the session opens; acknowledgements increase and
//! never pass the last client_seq sent; at most one `SessionEnded`, and nothing after it.
#![no_main]

use std::sync::{Arc, OnceLock};

use affectd::engine::Engine;
use affectd::proto::{StreamRequest, stream_response};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// At most this many messages per input (longer inputs explore nothing new, only slower).
const MAX_MESSAGES: usize = 64;

fn shared() -> &'static (tokio::runtime::Runtime, Arc<Engine>, tempfile::TempDir) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, Arc<Engine>, tempfile::TempDir)> =
        OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let engine = affectd::fuzzing::engine(&dir.path().join("fuzz.sqlite"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        (runtime, engine, dir)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, engine, _dir) = shared();
    let mut messages = Vec::new();
    let mut rest = data;
    let mut highest_seq = 0u64;
    while rest.len() >= 2 && messages.len() < MAX_MESSAGES {
        let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..(2 + n).min(rest.len())];
        rest = &rest[(2 + n).min(rest.len())..];
        messages.push(match StreamRequest::decode(body) {
            Ok(m) => {
                highest_seq = highest_seq.max(m.client_seq);
                Ok(m)
            }
            Err(e) => Err(tonic::Status::internal(format!(
                "failed to decode Protobuf message: {e}"
            ))),
        });
    }
    let responses = runtime.block_on(affectd::fuzzing::stream(engine.clone(), messages));
    let mut session = None;
    let mut last_ack = 0;
    let mut ended = false;
    for (i, response) in responses.iter().enumerate() {
        assert!(!ended, "a response after SessionEnded: {responses:?}");
        let Ok(response) = response else {
            assert_eq!(i + 1, responses.len(), "an error that is not last");
            continue;
        };
        match &response.message {
            Some(stream_response::Message::Started(started)) => {
                assert_eq!(i, 0, "SessionStarted is not first");
                session = Some(started.session_id.clone());
            }
            Some(stream_response::Message::Ack(ack)) => {
                assert!(ack.client_seq > last_ack, "acks must increase");
                assert!(ack.client_seq <= highest_seq, "an ack of a message never sent");
                last_ack = ack.client_seq;
            }
            Some(stream_response::Message::Ended(_)) => ended = true,
            _ => assert!(session.is_some(), "an answer before SessionStarted"),
        }
    }
    if let Some(id) = session {
        affectd::fuzzing::forget(engine, &id);
    }
});
