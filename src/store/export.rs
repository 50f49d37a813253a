//! Exports a recorded session.
//!
//! CSV: a zip holding one CSV per signal stream (a timestamp column, then one column per
//! channel, named by its label), `markers.csv`, `faces.csv` (one row per face per analysed
//! frame), `features.csv` (one row per feature window), `explanations.csv`,
//! `clock_offsets.csv` (the offsets the client reported through ClockSync), and the frames
//! themselves under `frames/` (the client's JPEG/PNG bytes; raw frames as PNG).

use std::io::{Seek, Write};

use prost::Message;
use rusqlite::params;

use super::{Store, StoreError, f32_values, f64_values};
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

fn csv_bytes(
    write: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> Result<(), ExportError>,
) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    write(&mut w)?;
    w.into_inner().map_err(|e| ExportError::Io(e.into_error()))
}

/// A stream's chunks in order, as (first sample's time stamp, samples, per-sample time
/// stamps when the client sent them).
type StoredChunk = (f64, Vec<f32>, Option<Vec<f64>>);

/// Calls `each` on a stream's chunks in order, one at a time (a long session's samples
/// need not fit in memory).
fn for_each_chunk(
    conn: &rusqlite::Connection,
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
) -> impl Iterator<Item = (f64, &[f32])> {
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

/// One CSV file from a query over the session's rows (`?1` is the session id).
fn query_csv(
    conn: &rusqlite::Connection,
    session_id: &str,
    sql: &str,
    header: &[&str],
    row: impl Fn(&rusqlite::Row) -> rusqlite::Result<Vec<String>>,
) -> Result<Vec<u8>, ExportError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([session_id], |r| row(r))?;
    csv_bytes(|w| {
        w.write_record(header)?;
        for r in rows {
            w.write_record(&r?)?;
        }
        Ok(())
    })
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

/// Writes the CSV zip of a session into `out`.
pub fn csv_zip<W: Write + Seek>(
    store: &Store,
    session_id: &str,
    out: W,
) -> Result<(), ExportError> {
    let config = session_config(store, session_id)?;
    let conn = store.connect()?;
    let damaged = |what: &'static str| {
        move |source| ExportError::Damaged {
            session: session_id.to_owned(),
            what,
            source,
        }
    };
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);

    for stream in &config.streams {
        let channels = stream.channels.len().max(1);
        // Written straight into the zip entry, a chunk at a time.
        zip.start_file(format!("{}.csv", safe_name(&stream.stream_id)), options)?;
        let mut w = csv::Writer::from_writer(&mut zip);
        let mut header = vec!["timestamp".to_string()];
        header.extend(channel_labels(stream));
        w.write_record(&header)?;
        for_each_chunk(&conn, session_id, &stream.stream_id, |chunk| {
            for (t, sample) in timed_samples(chunk, channels, stream.nominal_rate_hz) {
                let mut record = vec![format!("{t:.6}")];
                record.extend(sample.iter().map(|v| v.to_string()));
                w.write_record(&record)?;
            }
            Ok(())
        })?;
        w.flush()?;
    }

    let body = query_csv(
        &conn,
        session_id,
        "SELECT timestamp, duration_s, label FROM markers WHERE session_id = ?1 ORDER BY client_seq",
        &["timestamp", "duration_s", "label"],
        |r| {
            Ok(vec![
                format!("{:.6}", r.get::<_, f64>(0)?),
                r.get::<_, f64>(1)?.to_string(),
                r.get(2)?,
            ])
        },
    )?;
    zip.start_file("markers.csv", options)?;
    zip.write_all(&body)?;

    let mut stmt =
        conn.prepare("SELECT result FROM face_results WHERE session_id = ?1 ORDER BY client_seq")?;
    let results: Vec<proto::FaceFrameResult> = stmt
        .query_map([session_id], |r| r.get::<_, Vec<u8>>(0))?
        .map(|b| -> Result<_, ExportError> {
            proto::FaceFrameResult::decode(b?.as_slice()).map_err(damaged("face result"))
        })
        .collect::<Result<_, _>>()?;
    let au_columns: Vec<String> = results
        .iter()
        .flat_map(|r| r.faces.iter())
        .next()
        .map(|f| {
            f.action_units
                .iter()
                .map(|a| format!("{}_r", a.name))
                .collect()
        })
        .unwrap_or_default();
    let body = csv_bytes(|w| {
        let mut header: Vec<String> = [
            "client_seq",
            "timestamp",
            "face_id",
            "tracked",
            "box_x",
            "box_y",
            "box_width",
            "box_height",
            "yaw_deg",
            "pitch_deg",
            "roll_deg",
            "expression",
            "probability",
            "valence",
            "arousal",
        ]
        .map(String::from)
        .to_vec();
        header.extend(au_columns.iter().cloned());
        w.write_record(&header)?;
        for r in &results {
            for f in &r.faces {
                let b = f.r#box.unwrap_or_default();
                let pose = f.head_pose.unwrap_or_default();
                let expression = f.expression.clone().unwrap_or_default();
                let top = expression
                    .combined
                    .iter()
                    .max_by(|a, b| a.probability.total_cmp(&b.probability))
                    .cloned()
                    .unwrap_or_default();
                let mut record = vec![
                    r.client_seq.to_string(),
                    format!("{:.6}", r.timestamp),
                    f.face_id.to_string(),
                    f.tracked.to_string(),
                    b.x.to_string(),
                    b.y.to_string(),
                    b.width.to_string(),
                    b.height.to_string(),
                    pose.yaw_deg.to_string(),
                    pose.pitch_deg.to_string(),
                    pose.roll_deg.to_string(),
                    top.label,
                    top.probability.to_string(),
                    expression.valence.to_string(),
                    expression.arousal.to_string(),
                ];
                record.extend(au_columns.iter().map(|column| {
                    f.action_units
                        .iter()
                        .find(|a| format!("{}_r", a.name) == *column)
                        .map_or(String::new(), |a| a.intensity.to_string())
                }));
                w.write_record(&record)?;
            }
        }
        Ok(())
    })?;
    zip.start_file("faces.csv", options)?;
    zip.write_all(&body)?;

    let mut stmt =
        conn.prepare("SELECT window FROM feature_windows WHERE session_id = ?1 ORDER BY rowid")?;
    let windows: Vec<proto::FeatureWindow> = stmt
        .query_map([session_id], |r| r.get::<_, Vec<u8>>(0))?
        .map(|b| -> Result<_, ExportError> {
            proto::FeatureWindow::decode(b?.as_slice()).map_err(damaged("feature window"))
        })
        .collect::<Result<_, _>>()?;
    let body = csv_bytes(|w| {
        w.write_record([
            "stream_id",
            "kind",
            "start_time",
            "end_time",
            "usable_channels",
            "eeg_arousal_index",
            "eeg_engagement_index",
            "eeg_asymmetry_mean",
            "tonic_mean",
            "scr_count",
            "scr_rate_per_min",
            "heart_rate_bpm",
            "heart_rate_change_bpm",
            "rmssd_ms",
            "respiration_rate_per_min",
        ])?;
        use proto::feature_window::Features as F;
        for win in &windows {
            let mut cells = vec![String::new(); 10];
            match &win.features {
                Some(F::Eeg(e)) => {
                    cells[0] = e.arousal_index.to_string();
                    cells[1] = e.engagement_index.to_string();
                    if !e.asymmetry.is_empty() {
                        cells[2] = (e.asymmetry.iter().map(|a| a.value).sum::<f64>()
                            / e.asymmetry.len() as f64)
                            .to_string();
                    }
                }
                Some(F::Eda(e)) => {
                    cells[3] = e.tonic_mean.to_string();
                    cells[4] = e.responses.len().to_string();
                    cells[5] = e.scr_rate_per_min.to_string();
                }
                Some(F::Cardiac(c)) => {
                    cells[6] = c.heart_rate_bpm.to_string();
                    cells[7] = c.heart_rate_change_bpm.to_string();
                    cells[8] = c.rmssd_ms.to_string();
                }
                Some(F::Respiration(r)) => cells[9] = r.rate_per_min.to_string(),
                None => {}
            }
            let kind = proto::SignalKind::try_from(win.kind)
                .map_or("unknown".to_string(), |k| k.as_str_name().to_string());
            let mut record = vec![
                win.stream_id.clone(),
                kind,
                format!("{:.6}", win.start_time),
                format!("{:.6}", win.end_time),
                win.quality.iter().filter(|q| q.usable).count().to_string(),
            ];
            record.extend(cells);
            w.write_record(&record)?;
        }
        Ok(())
    })?;
    zip.start_file("features.csv", options)?;
    zip.write_all(&body)?;

    let mut stmt = conn.prepare(
        "SELECT client_seq, result FROM explanations WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let explanations: Vec<(i64, proto::ExplainResult)> = stmt
        .query_map([session_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .map(|row| -> Result<_, ExportError> {
            let (seq, b) = row?;
            Ok((
                seq,
                proto::ExplainResult::decode(b.as_slice()).map_err(damaged("explanation"))?,
            ))
        })
        .collect::<Result<_, _>>()?;
    let body = csv_bytes(|w| {
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
        ])?;
        for (seq, e) in &explanations {
            let base = |j: Option<&proto::Judgement>| {
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
                ]
            };
            if e.judgements.is_empty() {
                w.write_record(base(None))?;
            }
            for j in &e.judgements {
                w.write_record(base(Some(j)))?;
            }
        }
        Ok(())
    })?;
    zip.start_file("explanations.csv", options)?;
    zip.write_all(&body)?;

    let body = query_csv(
        &conn,
        session_id,
        "SELECT server_time, offset_s, rtt_s FROM clock_offsets WHERE session_id = ?1 ORDER BY rowid",
        &["server_time", "offset_s", "rtt_s"],
        |r| {
            Ok(vec![
                format!("{:.6}", r.get::<_, f64>(0)?),
                r.get::<_, f64>(1)?.to_string(),
                r.get::<_, f64>(2)?.to_string(),
            ])
        },
    )?;
    zip.start_file("clock_offsets.csv", options)?;
    zip.write_all(&body)?;

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
    zip.finish()?;
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

/// XDF chunk tags (the XDF 1.0 specification).
mod xdf_tag {
    pub const FILE_HEADER: u16 = 1;
    pub const STREAM_HEADER: u16 = 2;
    pub const SAMPLES: u16 = 3;
    pub const CLOCK_OFFSET: u16 = 4;
    pub const STREAM_FOOTER: u16 = 6;
}

/// XDF's variable-length integer: a byte giving the width (1, 4 or 8), then the value.
fn xdf_varlen(out: &mut Vec<u8>, n: u64) {
    if n < 256 {
        out.extend([1, n as u8]);
    } else if n <= u32::MAX as u64 {
        out.push(4);
        out.extend((n as u32).to_le_bytes());
    } else {
        out.push(8);
        out.extend(n.to_le_bytes());
    }
}

fn xdf_chunk<W: Write>(out: &mut W, tag: u16, content: &[u8]) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(11);
    xdf_varlen(&mut head, content.len() as u64 + 2);
    head.extend(tag.to_le_bytes());
    out.write_all(&head)?;
    out.write_all(content)
}

/// Text for an XML element body.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
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

/// Writes a session as XDF 1.0, the format LabRecorder writes and pyxdf, MNE (via pyxdf)
/// and EEGLAB read: one float32 stream per signal stream, with the channel labels and
/// units of the session's configuration and every sample's time stamp written out (the
/// client clock, s), and a string stream "Markers". The offsets the client reported through
/// ClockSync are written as each stream's clock offsets (server minus client clock, at
/// the client time they were measured), so that pyxdf's default clock synchronisation maps
/// the time stamps onto the server's clock; without reports they stay in the client clock.
/// Face results, feature windows and explanations are not signals: the CSV export has them.
///
/// Hand-written: the `xdf` crate only reads.
pub fn xdf<W: Write>(store: &Store, session_id: &str, mut out: W) -> Result<(), ExportError> {
    let config = session_config(store, session_id)?;
    let row = store.get(session_id)?;
    let conn = store.connect()?;
    out.write_all(b"XDF:")?;
    xdf_chunk(
        &mut out,
        xdf_tag::FILE_HEADER,
        format!(
            "<?xml version=\"1.0\"?><info><version>1.0</version><datetime>{}</datetime><writer>affectd {}</writer><session_id>{}</session_id><participant>{}</participant></info>",
            row.started_at,
            env!("CARGO_PKG_VERSION"),
            xml_escape(session_id),
            xml_escape(&row.participant),
        )
        .as_bytes(),
    )?;
    let offsets: Vec<(f64, f64)> = {
        let mut stmt = conn.prepare(
            "SELECT server_time, offset_s FROM clock_offsets WHERE session_id = ?1 ORDER BY rowid",
        )?;
        stmt.query_map([session_id], |r| {
            Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let offset_chunks = |out: &mut W, id: u32| -> std::io::Result<()> {
        for (server_time, offset) in &offsets {
            let mut c = id.to_le_bytes().to_vec();
            c.extend((server_time - offset).to_le_bytes());
            c.extend(offset.to_le_bytes());
            xdf_chunk(out, xdf_tag::CLOCK_OFFSET, &c)?;
        }
        Ok(())
    };
    let footer = |out: &mut W, id: u32, first: f64, last: f64, count: u64| {
        let mut c = id.to_le_bytes().to_vec();
        c.extend(
            format!(
                "<?xml version=\"1.0\"?><info><first_timestamp>{first}</first_timestamp><last_timestamp>{last}</last_timestamp><sample_count>{count}</sample_count></info>"
            )
            .as_bytes(),
        );
        xdf_chunk(out, xdf_tag::STREAM_FOOTER, &c)
    };

    let mut id = 0u32;
    for stream in &config.streams {
        id += 1;
        let channels = stream.channels.len().max(1);
        let kind = xdf_type(stream.kind);
        let described: String = channel_labels(stream)
            .iter()
            .zip(&stream.channels)
            .map(|(label, c)| {
                format!(
                    "<channel><label>{}</label><unit>{}</unit><type>{kind}</type></channel>",
                    xml_escape(label),
                    xml_escape(&c.unit)
                )
            })
            .collect();
        let mut header = id.to_le_bytes().to_vec();
        header.extend(
            format!(
                "<?xml version=\"1.0\"?><info><name>{}</name><type>{kind}</type><channel_count>{channels}</channel_count><nominal_srate>{}</nominal_srate><channel_format>float32</channel_format><source_id>affectd/{}/{}</source_id><created_at>{}</created_at><desc><channels>{described}</channels></desc></info>",
                xml_escape(&stream.stream_id),
                stream.nominal_rate_hz,
                xml_escape(session_id),
                xml_escape(&stream.stream_id),
                row.started_at,
            )
            .as_bytes(),
        );
        xdf_chunk(&mut out, xdf_tag::STREAM_HEADER, &header)?;
        let (mut first, mut last, mut count) = (0.0, 0.0, 0u64);
        for_each_chunk(&conn, session_id, &stream.stream_id, |chunk| {
            let n = chunk.1.len() / channels;
            if n == 0 {
                return Ok(());
            }
            let mut c = id.to_le_bytes().to_vec();
            xdf_varlen(&mut c, n as u64);
            for (t, sample) in timed_samples(chunk, channels, stream.nominal_rate_hz) {
                if count == 0 {
                    first = t;
                }
                last = t;
                count += 1;
                c.push(8);
                c.extend(t.to_le_bytes());
                for v in sample {
                    c.extend(v.to_le_bytes());
                }
            }
            xdf_chunk(&mut out, xdf_tag::SAMPLES, &c)?;
            Ok(())
        })?;
        offset_chunks(&mut out, id)?;
        footer(&mut out, id, first, last, count)?;
    }

    id += 1;
    let mut header = id.to_le_bytes().to_vec();
    header.extend(
        format!(
            "<?xml version=\"1.0\"?><info><name>Markers</name><type>Markers</type><channel_count>1</channel_count><nominal_srate>0</nominal_srate><channel_format>string</channel_format><source_id>affectd/{}/markers</source_id><created_at>{}</created_at></info>",
            xml_escape(session_id),
            row.started_at
        )
        .as_bytes(),
    );
    xdf_chunk(&mut out, xdf_tag::STREAM_HEADER, &header)?;
    let mut stmt = conn.prepare(
        "SELECT timestamp, label FROM markers WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let markers: Vec<(f64, String)> = stmt
        .query_map([session_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (t, label) in &markers {
        let mut c = id.to_le_bytes().to_vec();
        xdf_varlen(&mut c, 1);
        c.push(8);
        c.extend(t.to_le_bytes());
        xdf_varlen(&mut c, label.len() as u64);
        c.extend(label.as_bytes());
        xdf_chunk(&mut out, xdf_tag::SAMPLES, &c)?;
    }
    offset_chunks(&mut out, id)?;
    let (first, last) = (
        markers.first().map_or(0.0, |m| m.0),
        markers.last().map_or(0.0, |m| m.0),
    );
    footer(&mut out, id, first, last, markers.len() as u64)?;
    out.flush()?;
    Ok(())
}
