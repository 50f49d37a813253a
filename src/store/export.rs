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
        let rate = stream.nominal_rate_hz;
        let mut stmt = conn.prepare(
            "SELECT first_timestamp, samples, timestamps FROM chunks WHERE session_id = ?1 AND stream_id = ?2 ORDER BY client_seq",
        )?;
        let rows = stmt.query_map(params![session_id, stream.stream_id], |r| {
            Ok((
                r.get::<_, f64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
            ))
        })?;
        let body = csv_bytes(|w| {
            let mut header = vec!["timestamp".to_string()];
            header.extend(stream.channels.iter().enumerate().map(|(i, c)| {
                if c.label.is_empty() {
                    format!("ch{}", i + 1)
                } else {
                    c.label.clone()
                }
            }));
            w.write_record(&header)?;
            for row in rows {
                let (first, samples, times) = row?;
                let samples = f32_values(&samples);
                let times = times.map(|t| f64_values(&t));
                for (i, sample) in samples.chunks_exact(channels).enumerate() {
                    let t = times
                        .as_ref()
                        .map_or(first + i as f64 / rate, |times| times[i]);
                    let mut record = vec![format!("{t:.6}")];
                    record.extend(sample.iter().map(|v| v.to_string()));
                    w.write_record(&record)?;
                }
            }
            Ok(())
        })?;
        zip.start_file(format!("{}.csv", safe_name(&stream.stream_id)), options)?;
        zip.write_all(&body)?;
    }

    let mut stmt = conn.prepare(
        "SELECT timestamp, duration_s, label FROM markers WHERE session_id = ?1 ORDER BY client_seq",
    )?;
    let markers = stmt.query_map([session_id], |r| {
        Ok((
            r.get::<_, f64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let body = csv_bytes(|w| {
        w.write_record(["timestamp", "duration_s", "label"])?;
        for m in markers {
            let (t, d, label) = m?;
            w.write_record([format!("{t:.6}"), d.to_string(), label])?;
        }
        Ok(())
    })?;
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

    let mut stmt = conn.prepare(
        "SELECT server_time, offset_s, rtt_s FROM clock_offsets WHERE session_id = ?1 ORDER BY rowid",
    )?;
    let offsets = stmt.query_map([session_id], |r| {
        Ok((
            r.get::<_, f64>(0)?,
            r.get::<_, f64>(1)?,
            r.get::<_, f64>(2)?,
        ))
    })?;
    let body = csv_bytes(|w| {
        w.write_record(["server_time", "offset_s", "rtt_s"])?;
        for o in offsets {
            let (t, offset, rtt) = o?;
            w.write_record([format!("{t:.6}"), offset.to_string(), rtt.to_string()])?;
        }
        Ok(())
    })?;
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
