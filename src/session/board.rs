//! What a live session shows on the dashboard: its counters, each signal stream's health,
//! and a bounded, numbered list of what it produced lately (the dashboard's timelines).
//!
//! The session's threads write here with one short lock and no waiting on anyone: what is
//! recorded (windows, fused estimates, expression events, markers) from the form it is
//! recorded in, when it is made; the rest (faces, acknowledgements, warnings) as the
//! `Outbox` sends it to the client. Dashboard clients read at their
//! own pace (`http::feed`), each with its own cursor, so a browser that stops reading
//! cannot slow the session. A reader that falls more than [`MAX_ITEMS`] behind is told how
//! many items it missed.
//!
//! Items are the JSON objects of `formats::timeline` (a recorded session's review draws the
//! same ones), serialised once when they are produced. They are small: EEG band powers are
//! averaged per scalp region, and the per-channel quality map is kept only as each stream's
//! latest, in its health. Every time is the client's clock, s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};

use crate::formats::timeline;
use crate::proto;

use super::Event;
use crate::signals::features::{FeatureWindow, SignalKind};
use crate::signals::quality::ChannelQuality;

/// Items kept per session: about 8 minutes of a session with faces, EEG, EDA and ECG.
pub const MAX_ITEMS: usize = 4096;
/// Face items per second on the timeline (the feed sends the latest faces separately).
pub const FACE_ITEMS_PER_S: f64 = 5.0;

/// The session's counters, as the sessions page shows them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub frames_received: u64,
    pub frames_analysed: u64,
    /// Recorded but not analysed (face analysis behind, or failed on the frame).
    pub frames_skipped: u64,
    pub chunks: u64,
    pub markers: u64,
    pub explanations: u64,
    /// Every message up to this client_seq is recorded; None before the first
    /// acknowledgement (and always for an unrecorded session).
    pub acked_client_seq: Option<u64>,
}

/// One signal stream's health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamHealth {
    pub stream_id: String,
    pub kind: &'static str,
    pub windows: u64,
    /// The latest window's end, client clock, s.
    pub last_window_end: Option<f64>,
    /// The latest window's channels, and which of them were usable.
    pub channels: usize,
    pub usable_channels: usize,
    /// The latest window's quality per channel (the quality map).
    pub quality: Vec<ChannelQuality>,
    pub warnings: u64,
    pub last_warning: Option<String>,
}

/// Who the session is and when it started.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Info {
    pub participant: String,
    /// Server clock, s since the Unix epoch.
    pub started_at: f64,
    pub recording: bool,
}

#[derive(Default)]
struct State {
    info: Info,
    counts: Counts,
    streams: BTreeMap<String, StreamHealth>,
    items: VecDeque<Arc<str>>,
    /// The number of the oldest item kept (items are numbered from 0).
    first: u64,
    last_face_item: Option<f64>,
    /// The latest frame drawn with its marks for the dashboard (its time and JPEG): every
    /// dashboard client shares it.
    marked: Option<(f64, Arc<Vec<u8>>)>,
}

/// A live session's dashboard view.
#[derive(Default)]
pub struct Board {
    state: Mutex<State>,
}

/// What a reader gets: the items after its cursor, its new cursor, and how many it
/// missed because it fell behind.
pub struct Items {
    pub items: Vec<Arc<str>>,
    pub next: u64,
    pub missed: u64,
}

/// Status for the sessions page and the session page's header.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    #[serde(flatten)]
    pub info: Info,
    #[serde(flatten)]
    pub counts: Counts,
    pub streams: Vec<StreamHealth>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock left plain counters behind: keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn start(&self, info: Info, streams: &[(String, SignalKind)]) {
        let mut state = self.lock();
        state.info = info;
        for (id, kind) in streams {
            state.streams.insert(
                id.clone(),
                StreamHealth {
                    stream_id: id.clone(),
                    kind: kind.name(),
                    windows: 0,
                    last_window_end: None,
                    channels: 0,
                    usable_channels: 0,
                    quality: Vec::new(),
                    warnings: 0,
                    last_warning: None,
                },
            );
        }
    }

    pub fn status(&self) -> Status {
        let state = self.lock();
        Status {
            info: state.info.clone(),
            counts: state.counts.clone(),
            streams: state.streams.values().cloned().collect(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts.clone()
    }

    /// The items after `cursor` (a reader's first cursor is 0).
    pub fn items_after(&self, cursor: u64) -> Items {
        let state = self.lock();
        let end = state.first + state.items.len() as u64;
        let from = cursor.clamp(state.first, end);
        Items {
            items: state
                .items
                .iter()
                .skip((from - state.first) as usize)
                .cloned()
                .collect(),
            next: end,
            missed: from - cursor.min(from),
        }
    }

    pub fn marked(&self) -> Option<(f64, Arc<Vec<u8>>)> {
        self.lock().marked.clone()
    }

    pub fn set_marked(&self, timestamp: f64, jpeg: Arc<Vec<u8>>) {
        let mut state = self.lock();
        // Two readers may draw the same frame at once; never replace a newer one.
        if state.marked.as_ref().is_none_or(|(t, _)| *t <= timestamp) {
            state.marked = Some((timestamp, jpeg));
        }
    }

    /// The session worker's counts of the frames and chunks it accepted and the frames
    /// analysed (it keeps them; the board shows them).
    pub fn set_accepted(&self, frames: u64, chunks: u64, analysed: u64) {
        let mut state = self.lock();
        state.counts.frames_received = frames;
        state.counts.chunks = chunks;
        state.counts.frames_analysed = analysed;
    }

    /// An accepted marker: counted here, where every one arrives.
    pub fn marker(&self, timestamp: f64, label: &str, duration_s: f64) {
        let item = timeline::marker_item(timestamp, label, duration_s).to_string();
        let mut state = self.lock();
        state.counts.markers += 1;
        state.keep(item);
    }

    /// A fused estimate, in the form it is recorded in.
    pub fn fused(&self, estimate: &proto::FusedEstimate) {
        self.push(timeline::fused_item(estimate));
    }

    /// An expression event, in the form it is recorded and sent in.
    pub fn expression(&self, event: &proto::ExpressionEvent) {
        self.push(timeline::expression_item("live", event));
    }

    /// A completed window: `wire` is its recorded form, which the item is made from.
    pub fn window(&self, w: &FeatureWindow, wire: &proto::FeatureWindow) {
        let item = timeline::window_item(wire).map(|item| item.to_string());
        let mut state = self.lock();
        if let Some(health) = state.streams.get_mut(&w.stream_id) {
            health.windows += 1;
            health.last_window_end = Some(w.end_time);
            health.channels = w.quality.len();
            health.usable_channels = w.quality.iter().filter(|q| q.usable).count();
            health.quality = w.quality.clone();
        }
        if let Some(item) = item {
            state.keep(item);
        }
    }

    /// Adds an item, serialised before the lock is taken.
    fn push(&self, item: Value) {
        let text = item.to_string();
        self.lock().keep(text);
    }

    /// Takes in what the session sends its client.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::Faces {
                timestamp, result, ..
            } => {
                // At most FACE_ITEMS_PER_S on the timeline: decided under the lock, the
                // item made after it.
                let due = {
                    let mut state = self.lock();
                    let due = !result.faces.is_empty()
                        && state.last_face_item.is_none_or(|last| {
                            *timestamp < last || *timestamp - last >= 1.0 / FACE_ITEMS_PER_S
                        });
                    if due {
                        state.last_face_item = Some(*timestamp);
                    }
                    due
                };
                if due {
                    let faces = result.faces.iter().filter_map(|face| {
                        let e = face.expression.as_ref()?;
                        Some(timeline::FacePoint {
                            face_id: face.face_id,
                            valence: e.valence,
                            arousal: e.arousal,
                            label: e.most_likely(),
                        })
                    });
                    self.push(timeline::face_item(*timestamp, faces));
                }
            }
            Event::Warning(w) if w.kind == super::SessionWarningKind::FrameSkipped => {
                self.lock().counts.frames_skipped += 1;
            }
            Event::Ack(seq) => self.lock().counts.acked_client_seq = Some(*seq),
            Event::Explain {
                event: crate::explain::ExplainEvent::Result(_),
                ..
            } => self.lock().counts.explanations += 1,
            Event::SignalWarning { warning, .. } => {
                let item = json!({
                    "type": "signal_warning", "stream_id": warning.stream_id,
                    "kind": format!("{:?}", warning.kind), "message": warning.message,
                    "t": warning.timestamp,
                })
                .to_string();
                let mut state = self.lock();
                if let Some(health) = state.streams.get_mut(&warning.stream_id) {
                    health.warnings += 1;
                    health.last_warning = Some(warning.message.clone());
                }
                state.keep(item);
            }
            _ => {}
        }
    }
}

impl State {
    fn keep(&mut self, item: String) {
        if self.items.len() == MAX_ITEMS {
            self.items.pop_front();
            self.first += 1;
        }
        self.items.push_back(item.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_behind_the_kept_items_is_told_what_it_missed() {
        let board = Board::default();
        for i in 0..(MAX_ITEMS + 10) {
            board.marker(i as f64, "m", 0.0);
        }
        let all = board.items_after(0);
        assert_eq!(all.items.len(), MAX_ITEMS);
        assert_eq!(all.missed, 10);
        assert_eq!(all.next, (MAX_ITEMS + 10) as u64);
        assert!(all.items[0].contains("\"t\":10.0"), "{}", all.items[0]);
        let none = board.items_after(all.next);
        assert!(none.items.is_empty() && none.missed == 0 && none.next == all.next);
        board.marker(1e4, "new", 0.0);
        let one = board.items_after(all.next);
        assert_eq!((one.items.len(), one.missed), (1, 0));
        assert_eq!(board.counts().markers, (MAX_ITEMS + 11) as u64);
    }
}
