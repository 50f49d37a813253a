//! A live session's feed for one dashboard client, as server-sent events. Each client has
//! its own task that looks at the session's board at most [`UPDATES_PER_S`] times a second
//! and sends what changed; the session never waits for it. A client that stops reading
//! fills its connection, its task waits on it alone, and the session goes on (its board
//! keeps the latest [`crate::session::board::MAX_ITEMS`] items; a client that comes back
//! is told how many it missed).
//!
//! Events (data is JSON):
//! - `status`: `session::board::Status` (participant, counters, acknowledged client_seq,
//!   stream health with the quality map), when it changed;
//! - `frame`: `{"t","width","height","faces":[...]}` when a new frame was analysed (faces
//!   as `formats::faces_json` without landmarks; the image is `frame.jpg`);
//! - `items`: `{"missed","items":[...]}`, the board's new timeline items
//!   (`formats::timeline`);
//! - `ended`: the session is no longer live (its review is at `/recordings/{id}` when it
//!   was recorded).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Http;
use super::dashboard::{Failure, face_panel_json, live_session, secure};
use crate::auth::Role;
use crate::error::Error;
use crate::session::LiveSession;

/// Updates per second per client, at most.
pub const UPDATES_PER_S: u64 = 10;
/// Most items in one `items` event (the rest follow in the next).
const ITEMS_PER_EVENT: usize = 1000;
/// Events waiting to be sent to one client: a client that stops reading holds its task
/// here, and nothing more is made for it.
const QUEUED_EVENTS: usize = 4;

pub async fn feed(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let live =
        live_session(&http, &headers, &id, Role::Read, "the dashboard").map_err(Failure::api)?;
    let limit = http.engine.limits.max_dashboard_feeds;
    let permit = http.feeds.clone().try_acquire_owned().map_err(|_| {
        Failure::api(Error::Unavailable(format!(
            "{limit} dashboard feeds are open, the most this server allows (limits.max_dashboard_feeds); close a tab or raise the limit"
        )))
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_EVENTS);
    let engine = http.engine.clone();
    tokio::spawn(async move {
        let _permit = permit;
        follow(engine, live, tx).await;
    });
    Ok(secure(
        Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
            .keep_alive(KeepAlive::default())
            .into_response(),
    ))
}

type Sender = tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>;

/// Sends the session's changes until it ends or the client goes.
async fn follow(engine: Arc<crate::engine::Engine>, live: Arc<LiveSession>, tx: Sender) {
    let mut ticks = tokio::time::interval(Duration::from_millis(1000 / UPDATES_PER_S));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = String::new();
    let mut last_frame: Option<f64> = None;
    let mut cursor = 0u64;
    let send = |name: &'static str, data: String| {
        let tx = tx.clone();
        async move {
            tx.send(Ok(SseEvent::default().event(name).data(data)))
                .await
                .is_ok()
        }
    };
    loop {
        ticks.tick().await;
        let still_live = engine
            .sessions
            .get(&live.session_id)
            .is_some_and(|now| Arc::ptr_eq(&now, &live));
        let status = serde_json::to_string(&live.board.status()).unwrap_or_default();
        if status != last_status {
            if !send("status", status.clone()).await {
                return;
            }
            last_status = status;
        }
        if let Some(frame) = live.latest_frame()
            && last_frame != Some(frame.timestamp)
        {
            last_frame = Some(frame.timestamp);
            let data = json!({
                "t": frame.timestamp,
                "width": frame.faces.width,
                "height": frame.faces.height,
                "faces": frame.faces.faces.iter().map(face_panel_json).collect::<Vec<_>>(),
            });
            if !send("frame", data.to_string()).await {
                return;
            }
        }
        // At most one batch a tick (ITEMS_PER_EVENT x UPDATES_PER_S items a second, far
        // more than a session makes): the rest follows on the next tick.
        let new = live.board.items_after(cursor);
        let mut caught_up = true;
        if !new.items.is_empty() || new.missed > 0 {
            let shown = new.items.len().min(ITEMS_PER_EVENT);
            let mut data = format!("{{\"missed\":{},\"items\":[", new.missed);
            for (i, item) in new.items[..shown].iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                data.push_str(item);
            }
            data.push_str("]}");
            cursor = new.next - (new.items.len() - shown) as u64;
            caught_up = shown == new.items.len();
            if !send("items", data).await {
                return;
            }
        }
        if !still_live && caught_up {
            let _ = send("ended", json!({"session_id": live.session_id}).to_string()).await;
            return;
        }
    }
}
