//! A recorded session's timelines for display (the dashboard's review page): the items of
//! `formats::timeline` over a time range, thinned to at most a given number per series.
//! The raw samples are never read: the series are the recorded feature windows, fused
//! estimates and face results, and the face series reads one analysed frame per display
//! bucket (decoding every frame of an hour takes seconds; a frame per bucket, milliseconds).

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::Store;
use super::export::{ExportError, decode_row as decode, expression_events};
use crate::formats::timeline;
use crate::proto;

/// Most markers and expression events sent for one range (they are drawn one by one).
pub const MAX_EVENTS: usize = 5000;
/// Most beats or SCRs in one series (thinned evenly beyond).
pub const MAX_LIST: usize = 2000;

/// A recording's timelines over `[from, to]`.
#[derive(Debug, Serialize)]
pub struct Overview {
    pub session_id: String,
    pub participant: String,
    /// The first and last time anything was recorded, client clock, s (None: nothing).
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// The range these series cover, client clock, s.
    pub from: f64,
    pub to: f64,
    /// At most this many items per series.
    pub points: usize,
    /// Each series (face, fused, and each stream's windows), thinned, in time order.
    pub series: Vec<Vec<Value>>,
    /// Markers and expression events in the range (at most [`MAX_EVENTS`] each).
    pub markers: Vec<Value>,
    pub events: Vec<Value>,
    /// True when markers or events were left out past [`MAX_EVENTS`].
    pub truncated: bool,
}

/// The span of a recording: the earliest and latest time anything was recorded.
fn span(conn: &Connection, session_id: &str) -> Result<(Option<f64>, Option<f64>), ExportError> {
    Ok(conn.query_row(
        "SELECT MIN(t0), MAX(t1) FROM (
           SELECT MIN(timestamp) AS t0, MAX(timestamp) AS t1 FROM face_results WHERE session_id = ?1
           UNION ALL SELECT MIN(start_time), MAX(end_time) FROM feature_windows WHERE session_id = ?1
           UNION ALL SELECT MIN(timestamp), MAX(timestamp) FROM markers WHERE session_id = ?1
           UNION ALL SELECT MIN(start_time), MAX(end_time) FROM fused_estimates WHERE session_id = ?1)",
        [session_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// The recording's timelines over `[from, to]` (default: all of it), at most `points`
/// items per series.
pub fn overview(
    store: &Store,
    session_id: &str,
    from: Option<f64>,
    to: Option<f64>,
    points: usize,
) -> Result<Overview, ExportError> {
    let row = store.header(session_id)?;
    let conn = store.connect()?;
    let (start, end) = span(&conn, session_id)?;
    let from = from.or(start).unwrap_or(0.0);
    let to = to.or(end).unwrap_or(from).max(from);
    let mut series = Vec::new();

    // Faces: the first analysed frame of each display bucket.
    let width = ((to - from) / points.max(1) as f64).max(1e-9);
    // The bucket's first time, from the time index alone (no row is read); then that
    // row's result.
    let mut first_of_bucket = conn.prepare(
        "SELECT MIN(timestamp) FROM face_results
         WHERE session_id = ?1 AND timestamp >= ?2 AND timestamp <= ?3
         GROUP BY MIN(CAST((timestamp - ?2) / ?4 AS INTEGER), ?5)",
    )?;
    let times: Vec<f64> = first_of_bucket
        .query_map(
            rusqlite::params![session_id, from, to, width, points.max(1) as i64 - 1],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut result_of = conn.prepare(
        // No ORDER BY: with one, SQLite walks the primary key instead of the time index.
        "SELECT timestamp, result FROM face_results WHERE session_id = ?1 AND timestamp = ?2 LIMIT 1",
    )?;
    let mut faces = Vec::with_capacity(times.len());
    for time in times {
        let Some((t, bytes)) = result_of
            .query_row(rusqlite::params![session_id, time], |r| {
                Ok((r.get::<_, f64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()?
        else {
            continue;
        };
        let frame: proto::FaceFrameResult = decode(session_id, "face result", &bytes)?;
        faces.push(timeline::face_item(
            t,
            frame.faces.iter().filter_map(timeline::face_point),
        ));
    }
    let time = |item: &Value| timeline::item_time(item).unwrap_or(f64::NAN);
    faces.sort_by(|a, b| time(a).total_cmp(&time(b)));
    series.push(faces);

    let mut fused_rows = conn.prepare(
        "SELECT estimate FROM fused_estimates
         WHERE session_id = ?1 AND end_time >= ?2 AND start_time <= ?3 ORDER BY start_time, rowid",
    )?;
    let fused = fused_rows
        .query_map(rusqlite::params![session_id, from, to], |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .map(|bytes| {
            let e: proto::FusedEstimate = decode(session_id, "fused estimate", &bytes?)?;
            Ok(timeline::fused_item(&e))
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    series.push(timeline::thin(fused, from, to, points, MAX_LIST));

    let mut window_rows = conn.prepare(
        "SELECT stream_id, window FROM feature_windows
         WHERE session_id = ?1 AND end_time >= ?2 AND start_time <= ?3
         ORDER BY stream_id, start_time, rowid",
    )?;
    let mut rows = window_rows.query(rusqlite::params![session_id, from, to])?;
    let mut stream: Option<String> = None;
    let mut items = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if stream.as_deref() != Some(id.as_str()) {
            if !items.is_empty() {
                series.push(timeline::thin(
                    std::mem::take(&mut items),
                    from,
                    to,
                    points,
                    MAX_LIST,
                ));
            }
            stream = Some(id);
        }
        let w: proto::FeatureWindow =
            decode(session_id, "feature window", &r.get::<_, Vec<u8>>(1)?)?;
        items.extend(timeline::window_item(&w));
    }
    if !items.is_empty() {
        series.push(timeline::thin(items, from, to, points, MAX_LIST));
    }

    let mut marker_rows = conn.prepare(
        "SELECT timestamp, label, duration_s FROM markers
         WHERE session_id = ?1 AND timestamp + duration_s >= ?2 AND timestamp <= ?3
         ORDER BY timestamp, client_seq LIMIT ?4",
    )?;
    let markers = marker_rows
        .query_map(
            rusqlite::params![session_id, from, to, MAX_EVENTS as i64 + 1],
            |r| {
                Ok(timeline::marker_item(
                    r.get(0)?,
                    &r.get::<_, String>(1)?,
                    r.get(2)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let events: Vec<Value> = expression_events(&conn, session_id)?
        .iter()
        .filter(|e| {
            let offset = e.offset.unwrap_or(e.onset);
            offset >= from && e.onset <= to
        })
        .take(MAX_EVENTS + 1)
        .map(|e| timeline::expression_item(session_id, e))
        .collect();
    let truncated = markers.len() > MAX_EVENTS || events.len() > MAX_EVENTS;
    for item in series.iter_mut().flatten() {
        timeline::round_for_display(item);
    }
    let clip = |mut v: Vec<Value>| {
        v.truncate(MAX_EVENTS);
        v
    };
    Ok(Overview {
        session_id: session_id.to_owned(),
        participant: row.participant,
        start,
        end,
        from,
        to,
        points,
        series: series.into_iter().filter(|s| !s.is_empty()).collect(),
        markers: clip(markers),
        events: clip(events),
        truncated,
    })
}
