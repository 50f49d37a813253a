//! Exports a recorded session.
//!
//! CSV: a zip holding one CSV per signal stream (a timestamp column, then one column per
//! channel, named by its label), `markers.csv`, `faces.csv` and `features.csv` (the tables
//! of `formats::faces_csv` and `formats::features_csv`, the same that `affectd analyze` and
//! `affectd signals` write), `fused.csv` (`formats::fused_csv`), `explanations.csv`,
//! `fusion_models.json` (the session's calibrations, when it has any), `clock_offsets.csv` (the offsets the
//! client reported through ClockSync), and the frames themselves under `frames/` (the
//! client's JPEG/PNG bytes; raw frames as PNG). Each table has its own writer below.
//!
//! XDF: the signal streams, the markers and the fused estimates (`formats::xdf`).

use std::io::{Seek, Write};

use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, f32_values, f64_values};
use crate::formats::xdf::{ChannelHeader, StreamHeader, XdfWriter, xml_escape};
use crate::formats::{events, faces_csv, features_csv, fused_csv};
use crate::proto;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("export: {0}")]
    Io(#[from] std::io::Error),
    #[error("export: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("export: {0}")]
    Csv(#[from] csv::Error),
    #[error(
        "session `{session}`: a stored {what} cannot be decoded ({source}); the database is damaged"
    )]
    Damaged {
        session: String,
        what: &'static str,
        source: prost::DecodeError,
    },
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Store(StoreError::Sqlite(e))
    }
}

/// A stream's chunks in order, as (first sample's time stamp, samples, per-sample time
/// stamps when the client sent them).
type StoredChunk = (f64, Vec<f32>, Option<Vec<f64>>);

/// Calls `each` on a stream's chunks in order, one at a time (a long session's samples
/// need not fit in memory).
fn for_each_chunk(
    conn: &Connection,
    session_id: &str,
    stream_id: &str,
    mut each: impl FnMut(&StoredChunk) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut stmt = conn.prepare(
        "SELECT first_timestamp, samples, timestamps FROM chunks WHERE session_id = ?1 AND stream_id = ?2 ORDER BY client_seq",
    )?;
    let rows = stmt.query_map(params![session_id, stream_id], |r| {
        Ok((
            r.get::<_, f64>(0)?,
            f32_values(&r.get::<_, Vec<u8>>(1)?),
            r.get::<_, Option<Vec<u8>>>(2)?.map(|t| f64_values(&t)),
        ))
    })?;
    for row in rows {
        each(&row?)?;
    }
    Ok(())
}

/// Each sample of a chunk with its time stamp (client clock, s): the client's own, or
/// the first one plus i / rate.
fn timed_samples(
    chunk: &StoredChunk,
    channels: usize,
    rate_hz: f64,
) -> impl ExactSizeIterator<Item = (f64, &[f32])> {
    let (first, samples, times) = chunk;
    samples
        .chunks_exact(channels)
        .enumerate()
        .map(move |(i, sample)| {
            let t = times
                .as_ref()
                .map_or(first + i as f64 / rate_hz, |times| times[i]);
            (t, sample)
        })
}

/// Channel labels, "chN" where the client gave none.
fn channel_labels(stream: &proto::StreamInfo) -> Vec<String> {
    stream
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.label.is_empty() {
                format!("ch{}", i + 1)
            } else {
                c.label.clone()
            }
        })
        .collect()
}

/// The session's configuration as recorded.
pub fn session_config(
    store: &Store,
    session_id: &str,
) -> Result<proto::SessionConfig, ExportError> {
    let row = store.get(session_id)?;
    proto::SessionConfig::decode(row.config.as_slice()).map_err(|source| ExportError::Damaged {
        session: session_id.to_owned(),
        what: "session configuration",
        source,
    })
}

/// Every stored message of one kind, decoded, in order (`?1` is the session id).
fn decoded<M: Message + Default>(
    conn: &Connection,
    session_id: &str,
    sql: &str,
    what: &'static str,
) -> Result<Vec<(i64, M)>, ExportError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([session_id], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    rows.map(|row| {
        let (key, bytes) = row?;
        Ok((key, decode_row(session_id, what, &bytes)?))
    })
    .collect()
}

type Zip<W> = zip::ZipWriter<W>;

fn deflated() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

/// Writes the CSV zip of a session into `out`.
pub fn csv_zip<W: Write + Seek>(
    store: &Store,
    session_id: &str,
    out: W,
) -> Result<(), ExportError> {
    let config = session_config(store, session_id)?;
    let conn = store.connect()?;
    let mut zip = zip::ZipWriter::new(out);
    for stream in &config.streams {
        stream_csv(&conn, session_id, stream, &mut zip)?;
    }
    markers_csv(&conn, session_id, &mut zip)?;
    faces_table(&conn, session_id, &mut zip)?;
    events_table(&conn, session_id, &mut zip)?;
    features_table(&conn, session_id, &mut zip)?;
    fused_table(&conn, session_id, &mut zip)?;
    fusion_models(&conn, session_id, &mut zip)?;
    explanations_csv(&conn, session_id, &mut zip)?;
    clock_offsets_csv(&conn, session_id, &mut zip)?;
    frames(&conn, session_id, &mut zip)?;
    zip.finish()?;
    Ok(())
}

/// One signal stream: a timestamp column, then one column per channel. Written straight
/// into the zip entry, a chunk at a time.
fn stream_csv<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    stream: &proto::StreamInfo,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let channels = stream.channels.len().max(1);
    zip.start_file(format!("{}.csv", safe_name(&stream.stream_id)), deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    let mut header = vec!["timestamp".to_string()];
    header.extend(channel_labels(stream));
    w.write_record(&header)?;
    for_each_chunk(conn, session_id, &stream.stream_id, |chunk| {
        for (t, sample) in timed_samples(chunk, channels, stream.nominal_rate_hz) {
            let mut record = vec![format!("{t:.6}")];
            record.extend(sample.iter().map(|v| v.to_string()));
            w.write_record(&record)?;
        }
        Ok(())
    })?;
    w.flush()?;
    Ok(())
}

fn markers_csv<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    zip.start_file("markers.csv", deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    w.write_record(["timestamp", "duration_s", "label"])?;
    let mut stmt = conn.prepare(
        "SELECT timestamp, duration_s, label FROM markers WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let rows = stmt.query_map([session_id], |r| {
        Ok([
            format!("{:.6}", r.get::<_, f64>(0)?),
            r.get::<_, f64>(1)?.to_string(),
            r.get::<_, String>(2)?,
        ])
    })?;
    for row in rows {
        w.write_record(row?)?;
    }
    w.flush()?;
    Ok(())
}

/// `faces.csv`: the face table, one row per face per analysed frame.
fn faces_table<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    zip.start_file("faces.csv", deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    w.write_record(faces_csv::header())?;
    let results: Vec<(i64, proto::FaceFrameResult)> = decoded(
        conn,
        session_id,
        "SELECT client_seq, result FROM face_results WHERE session_id = ?1 ORDER BY client_seq",
        "face result",
    )?;
    for (_, r) in &results {
        for face in &r.faces {
            w.write_record(faces_csv::row(session_id, r.client_seq, r.timestamp, face))?;
        }
    }
    w.flush()?;
    Ok(())
}

/// The session's ended expression episodes, in onset order.
pub fn expression_events(
    conn: &Connection,
    session_id: &str,
) -> Result<Vec<proto::ExpressionEvent>, ExportError> {
    Ok(decoded(
        conn,
        session_id,
        "SELECT rowid, event FROM expression_events WHERE session_id = ?1 ORDER BY onset, rowid",
        "expression event",
    )?
    .into_iter()
    .map(|(_, e): (i64, proto::ExpressionEvent)| e)
    .collect())
}

/// What a recording holds about one moment (see [`moment_at`]).
pub struct RecordedMoment {
    pub frame: RecordedFrame,
    /// The latest window of each stream that ended within 30 s before the frame.
    pub windows: Vec<proto::FeatureWindow>,
    /// The latest fused estimate that ended within 15 s before the frame.
    pub fused: Option<proto::FusedEstimate>,
    /// The expression episodes that had ended by `time`.
    pub episodes: Vec<proto::ExpressionEvent>,
}

/// A recorded frame with its face result.
pub struct RecordedFrame {
    /// Client clock, s.
    pub timestamp: f64,
    pub data: crate::store::FrameData,
    pub width: u32,
    pub height: u32,
    pub faces: proto::FaceFrameResult,
}

/// The last analysed frame at or before `time` (client clock, s), with its faces; None when
/// none was analysed by then.
pub fn analysed_frame_at(
    conn: &Connection,
    session_id: &str,
    time: f64,
) -> Result<Option<RecordedFrame>, ExportError> {
    let row = conn
        .query_row(
            "SELECT f.timestamp, f.format, f.width, f.height, f.data, r.result FROM frames f
             JOIN face_results r ON r.session_id = f.session_id AND r.client_seq = f.client_seq
             WHERE f.session_id = ?1 AND f.timestamp <= ?2
             ORDER BY f.timestamp DESC, f.client_seq DESC LIMIT 1",
            rusqlite::params![session_id, time],
            |r| {
                Ok((
                    r.get::<_, f64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((timestamp, format, width, height, data, result)) = row else {
        return Ok(None);
    };
    Ok(Some(RecordedFrame {
        timestamp,
        data: match format.as_str() {
            "rgb8" => crate::store::FrameData::Rgb8(data),
            _ => crate::store::FrameData::Encoded(data),
        },
        width: width as u32,
        height: height as u32,
        faces: decode_row(session_id, "face result", &result)?,
    }))
}

pub(crate) fn decode_row<M: Message + Default>(
    session_id: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<M, ExportError> {
    M::decode(bytes).map_err(|source| ExportError::Damaged {
        session: session_id.to_owned(),
        what,
        source,
    })
}

/// The recording at `time` (client clock, s): its last analysed frame at or before it and
/// what had been recorded by then; None when no frame was analysed by then.
pub fn moment_at(
    store: &Store,
    session_id: &str,
    time: f64,
) -> Result<Option<RecordedMoment>, ExportError> {
    store.get(session_id)?;
    let conn = store.connect()?;
    let Some(frame) = analysed_frame_at(&conn, session_id, time)? else {
        return Ok(None);
    };
    let timestamp = frame.timestamp;
    let mut windows: Vec<proto::FeatureWindow> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT window FROM feature_windows WHERE session_id = ?1 AND end_time <= ?2 AND end_time >= ?3 ORDER BY end_time, rowid",
    )?;
    let rows = stmt.query_map(rusqlite::params![session_id, time, timestamp - 30.0], |r| {
        r.get::<_, Vec<u8>>(0)
    })?;
    for bytes in rows {
        let w: proto::FeatureWindow = decode_row(session_id, "feature window", &bytes?)?;
        // The latest window of each stream.
        windows.retain(|kept| kept.stream_id != w.stream_id);
        windows.push(w);
    }
    let fused = conn
        .query_row(
            "SELECT estimate FROM fused_estimates WHERE session_id = ?1 AND end_time <= ?2 AND end_time >= ?3 ORDER BY end_time DESC, rowid DESC LIMIT 1",
            rusqlite::params![session_id, time, timestamp - 15.0],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .map(|bytes| decode_row(session_id, "fused estimate", &bytes))
        .transpose()?;
    let mut stmt = conn.prepare(
        "SELECT event FROM expression_events WHERE session_id = ?1 AND offset_time <= ?2 ORDER BY onset, rowid",
    )?;
    let episodes = stmt
        .query_map(rusqlite::params![session_id, time], |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .map(|bytes| decode_row(session_id, "expression event", &bytes?))
        .collect::<Result<Vec<proto::ExpressionEvent>, ExportError>>()?;
    Ok(Some(RecordedMoment {
        frame,
        windows,
        fused,
        episodes,
    }))
}

/// `expression_events.csv`: one row per ended episode (`formats::events`).
fn events_table<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    zip.start_file("expression_events.csv", deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    w.write_record(events::header())?;
    for e in expression_events(conn, session_id)? {
        w.write_record(events::row(session_id, &e))?;
    }
    w.flush()?;
    Ok(())
}

/// `features.csv`: the feature table, one row per window per stream.
fn features_table<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let windows: Vec<(i64, proto::FeatureWindow)> = decoded(
        conn,
        session_id,
        "SELECT rowid, window FROM feature_windows WHERE session_id = ?1 ORDER BY rowid",
        "feature window",
    )?;
    let mut table = features_csv::Table::default();
    for (_, window) in &windows {
        table.push(features_csv::cells(session_id, window));
    }
    zip.start_file("features.csv", deflated())?;
    table.write(zip)?;
    Ok(())
}

/// The session's fused estimates, in time order.
pub fn fused_estimates(
    conn: &Connection,
    session_id: &str,
) -> Result<Vec<proto::FusedEstimate>, ExportError> {
    Ok(decoded(
        conn,
        session_id,
        "SELECT rowid, estimate FROM fused_estimates WHERE session_id = ?1 ORDER BY start_time, rowid",
        "fused estimate",
    )?
    .into_iter()
    .map(|(_, e): (i64, proto::FusedEstimate)| e)
    .collect())
}

/// `fused.csv`: one row per hop.
fn fused_table<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let rows: Vec<(String, proto::FusedEstimate)> = fused_estimates(conn, session_id)?
        .into_iter()
        .map(|e| (session_id.to_string(), e))
        .collect();
    zip.start_file("fused.csv", deflated())?;
    fused_csv::write(&rows, zip)?;
    Ok(())
}

/// `fusion_models.json`: the session's calibrations in training order, when it has any.
fn fusion_models<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let mut stmt = conn.prepare(
        "SELECT trained_at, model FROM fusion_models WHERE session_id = ?1 ORDER BY rowid",
    )?;
    let models: Vec<(f64, String)> = stmt
        .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if models.is_empty() {
        return Ok(());
    }
    zip.start_file("fusion_models.json", deflated())?;
    let items: Vec<String> = models
        .iter()
        .map(|(at, model)| format!("{{\"trained_at\": {at}, \"model\": {model}}}"))
        .collect();
    zip.write_all(format!("[{}]\n", items.join(",\n")).as_bytes())?;
    Ok(())
}

/// `explanations.csv`: one row per judgement, or one row with the raw text for an answer
/// that did not validate.
fn explanations_csv<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let explanations: Vec<(i64, proto::ExplainResult)> = decoded(
        conn,
        session_id,
        "SELECT client_seq, result FROM explanations WHERE session_id = ?1 ORDER BY client_seq",
        "explanation",
    )?;
    zip.start_file("explanations.csv", deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    w.write_record([
        "client_seq",
        "parsed",
        "face_id",
        "label",
        "confidence",
        "valence",
        "arousal",
        "rationale",
        "raw_text",
        "template_id",
        "backend",
        "model",
        "combined_label",
        "grounding",
        "citations",
    ])?;
    for (seq, e) in &explanations {
        let row = |j: Option<&proto::Judgement>| {
            vec![
                seq.to_string(),
                e.parsed.to_string(),
                j.map_or(String::new(), |j| j.face_id.to_string()),
                j.map_or(String::new(), |j| j.label.clone()),
                j.map_or(String::new(), |j| j.confidence.to_string()),
                j.map_or(String::new(), |j| j.valence.to_string()),
                j.map_or(String::new(), |j| j.arousal.to_string()),
                j.map_or(String::new(), |j| j.rationale.clone()),
                if j.is_some() {
                    String::new()
                } else {
                    e.raw_text.clone()
                },
                e.template_id.clone(),
                e.backend.clone(),
                e.model.clone(),
                j.map_or(String::new(), |j| j.combined_label.clone()),
                j.and_then(|j| j.grounding)
                    .map_or(String::new(), |g| g.to_string()),
                // key:direction:verdict, separated by spaces.
                j.map_or(String::new(), |j| {
                    j.citations
                        .iter()
                        .map(|c| {
                            let verdict = proto::CitationVerdict::try_from(c.verdict).map_or(
                                "unknown",
                                |v| match v {
                                    proto::CitationVerdict::Supported => "supported",
                                    proto::CitationVerdict::Contradicted => "contradicted",
                                    _ => "unsupported",
                                },
                            );
                            format!("{}:{}:{verdict}", c.key, c.direction)
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
            ]
        };
        if e.judgements.is_empty() {
            w.write_record(row(None))?;
        }
        for j in &e.judgements {
            w.write_record(row(Some(j)))?;
        }
    }
    w.flush()?;
    Ok(())
}

fn clock_offsets_csv<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    zip.start_file("clock_offsets.csv", deflated())?;
    let mut w = csv::Writer::from_writer(zip);
    w.write_record(["server_time", "offset_s", "rtt_s"])?;
    for (server_time, offset, rtt) in clock_offsets(conn, session_id)? {
        w.write_record([
            format!("{server_time:.6}"),
            offset.to_string(),
            rtt.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// The offsets the client reported: (server time, offset, rtt), s.
fn clock_offsets(conn: &Connection, session_id: &str) -> Result<Vec<(f64, f64, f64)>, ExportError> {
    let mut stmt = conn.prepare(
        "SELECT server_time, offset_s, rtt_s FROM clock_offsets WHERE session_id = ?1 ORDER BY rowid",
    )?;
    let rows = stmt.query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The frames as sent: `frames/<client_seq>.jpg|png` (raw frames as PNG).
fn frames<W: Write + Seek>(
    conn: &Connection,
    session_id: &str,
    zip: &mut Zip<W>,
) -> Result<(), ExportError> {
    let mut stmt = conn.prepare(
        "SELECT client_seq, format, width, height, data FROM frames WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let frames = stmt.query_map([session_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, u32>(2)?,
            r.get::<_, u32>(3)?,
            r.get::<_, Vec<u8>>(4)?,
        ))
    })?;
    // Already compressed (JPEG/PNG): stored as they are.
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for frame in frames {
        let (seq, format, width, height, data) = frame?;
        if format == "rgb8" {
            let Some(image) = image::RgbImage::from_raw(width, height, data) else {
                continue;
            };
            let mut png = Vec::new();
            image
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(std::io::Error::other)?;
            zip.start_file(format!("frames/{seq:08}.png"), stored)?;
            zip.write_all(&png)?;
        } else {
            let extension = if data.starts_with(&[0x89, b'P', b'N', b'G']) {
                "png"
            } else {
                "jpg"
            };
            zip.start_file(format!("frames/{seq:08}.{extension}"), stored)?;
            zip.write_all(&data)?;
        }
    }
    Ok(())
}

/// A stream id as a file name: path separators and other awkward characters become '_'.
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn xdf_type(kind: i32) -> &'static str {
    match proto::SignalKind::try_from(kind) {
        Ok(proto::SignalKind::Eeg) => "EEG",
        Ok(proto::SignalKind::Eda) => "EDA",
        Ok(proto::SignalKind::Ecg) => "ECG",
        Ok(proto::SignalKind::Ppg) => "PPG",
        Ok(proto::SignalKind::Respiration) => "RESP",
        _ => "Misc",
    }
}

/// Writes a session as XDF 1.0: one float32 stream per signal stream, with the channel
/// labels and units of the session's configuration and every sample's time stamp written
/// out (the client clock, s), and a string stream "Markers". The offsets the client
/// reported through ClockSync are written as each stream's clock offsets (server minus
/// client clock, at the client time they were measured), so that pyxdf's default clock
/// synchronisation maps the time stamps onto the server's clock; without reports they stay
/// in the client clock. Face results, feature windows and explanations are not signals:
/// the CSV export has them.
pub fn xdf<W: Write>(store: &Store, session_id: &str, out: W) -> Result<(), ExportError> {
    let config = session_config(store, session_id)?;
    let row = store.get(session_id)?;
    let conn = store.connect()?;
    let mut w = XdfWriter::new(
        out,
        &format!(
            "<datetime>{}</datetime><writer>affectd {}</writer><session_id>{}</session_id><participant>{}</participant>",
            row.started_at,
            env!("CARGO_PKG_VERSION"),
            xml_escape(session_id),
            xml_escape(&row.participant),
        ),
    )?;
    let offsets = clock_offsets(&conn, session_id)?;
    let write_offsets = |w: &mut XdfWriter<W>, id: u32| -> std::io::Result<()> {
        for (server_time, offset, _) in &offsets {
            w.clock_offset(id, server_time - offset, *offset)?;
        }
        Ok(())
    };

    let mut id = 0u32;
    for stream in &config.streams {
        id += 1;
        let channels = stream.channels.len().max(1);
        let kind = xdf_type(stream.kind);
        w.stream_header(
            id,
            &StreamHeader {
                name: stream.stream_id.clone(),
                stream_type: kind.into(),
                channel_count: channels,
                nominal_srate: stream.nominal_rate_hz,
                numeric: true,
                source_id: format!("affectd/{session_id}/{}", stream.stream_id),
                created_at: row.started_at,
                channels: channel_labels(stream)
                    .into_iter()
                    .zip(&stream.channels)
                    .map(|(label, c)| ChannelHeader {
                        label,
                        unit: c.unit.clone(),
                        kind: kind.into(),
                    })
                    .collect(),
            },
        )?;
        let (mut first, mut last, mut count) = (None, 0.0, 0u64);
        for_each_chunk(&conn, session_id, &stream.stream_id, |chunk| {
            let samples = timed_samples(chunk, channels, stream.nominal_rate_hz);
            count += samples.len() as u64;
            w.numeric_samples(
                id,
                samples.inspect(|(t, _)| {
                    first.get_or_insert(*t);
                    last = *t;
                }),
            )?;
            Ok(())
        })?;
        write_offsets(&mut w, id)?;
        w.stream_footer(id, first.unwrap_or(0.0), last, count)?;
    }

    id += 1;
    let (first, last, count) = fused_stream(&mut w, id, &conn, session_id, row.started_at)?;
    write_offsets(&mut w, id)?;
    w.stream_footer(id, first, last, count)?;

    id += 1;
    w.stream_header(
        id,
        &StreamHeader {
            name: "Markers".into(),
            stream_type: "Markers".into(),
            channel_count: 1,
            nominal_srate: 0.0,
            numeric: false,
            source_id: format!("affectd/{session_id}/markers"),
            created_at: row.started_at,
            channels: Vec::new(),
        },
    )?;
    let mut stmt = conn.prepare(
        "SELECT timestamp, label FROM markers WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let markers: Vec<(f64, String)> = stmt
        .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (t, label) in &markers {
        w.string_sample(id, *t, label)?;
    }
    write_offsets(&mut w, id)?;
    let (first, last) = (
        markers.first().map_or(0.0, |m| m.0),
        markers.last().map_or(0.0, |m| m.0),
    );
    w.stream_footer(id, first, last, markers.len() as u64)?;

    // Expression episodes: a string stream stamped at each onset, its value the episode as
    // one JSON object (formats::events), as MNE and EEGLAB read marker streams.
    id += 1;
    w.stream_header(
        id,
        &StreamHeader {
            name: "ExpressionEvents".into(),
            stream_type: "Markers".into(),
            channel_count: 1,
            nominal_srate: 0.0,
            numeric: false,
            source_id: format!("affectd/{session_id}/expression_events"),
            created_at: row.started_at,
            channels: Vec::new(),
        },
    )?;
    let episodes = expression_events(&conn, session_id)?;
    for e in &episodes {
        w.string_sample(id, e.onset, &events::event_json(session_id, e).to_string())?;
    }
    write_offsets(&mut w, id)?;
    w.stream_footer(
        id,
        episodes.first().map_or(0.0, |e| e.onset),
        episodes.last().map_or(0.0, |e| e.onset),
        episodes.len() as u64,
    )?;
    w.finish()?;
    Ok(())
}

/// Channels of the XDF stream "Fused": the fused values, then each modality's weight.
const FUSED_CHANNELS: [&str; 7] = [
    "valence",
    "arousal",
    "face.weight",
    "eeg.weight",
    "cardiac.weight",
    "eda.weight",
    "respiration.weight",
];

/// The XDF stream "Fused": one sample per hop, stamped with the hop's start (client clock,
/// s); a value not computed (no modality with a valence, a modality that did not
/// contribute) is NaN, XDF's missing value. Returns the first and last time stamps and the
/// count, for the footer.
fn fused_stream<W: Write>(
    w: &mut XdfWriter<W>,
    id: u32,
    conn: &Connection,
    session_id: &str,
    created_at: f64,
) -> Result<(f64, f64, u64), ExportError> {
    let estimates = fused_estimates(conn, session_id)?;
    w.stream_header(
        id,
        &StreamHeader {
            name: "Fused".into(),
            stream_type: "Affect".into(),
            channel_count: FUSED_CHANNELS.len(),
            nominal_srate: 0.0,
            numeric: true,
            source_id: format!("affectd/{session_id}/fused"),
            created_at,
            channels: FUSED_CHANNELS
                .iter()
                .map(|label| ChannelHeader {
                    label: label.to_string(),
                    unit: String::new(),
                    kind: "Affect".into(),
                })
                .collect(),
        },
    )?;
    let modalities = [
        proto::Modality::Face,
        proto::Modality::Eeg,
        proto::Modality::Cardiac,
        proto::Modality::Eda,
        proto::Modality::Respiration,
    ];
    let rows: Vec<(f64, Vec<f32>)> = estimates
        .iter()
        .map(|e| {
            let mut values = vec![
                e.valence.map_or(f32::NAN, |v| v as f32),
                e.arousal.map_or(f32::NAN, |v| v as f32),
            ];
            values.extend(modalities.iter().map(|m| {
                e.contributions
                    .iter()
                    .find(|c| c.modality == *m as i32)
                    .map_or(f32::NAN, |c| c.weight as f32)
            }));
            (e.start_time, values)
        })
        .collect();
    w.numeric_samples(id, rows.iter().map(|(t, v)| (*t, v.as_slice())))?;
    Ok((
        rows.first().map_or(0.0, |r| r.0),
        rows.last().map_or(0.0, |r| r.0),
        rows.len() as u64,
    ))
}
