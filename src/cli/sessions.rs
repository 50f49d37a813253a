//! `affectd sessions`: the recorded sessions in the database, without a server: list,
//! show, export (XDF or CSV zip) and delete.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use affectd::config::Config;
use affectd::store::{RecordingState, SessionRow, Store, StoreError, export};

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// One line per recorded session: id, participant, start (UTC), state, counts.
    List,
    /// A session's summary as JSON.
    Show { session_id: String },
    /// Export a session: XDF (pyxdf, MNE, EEGLAB) or a zip of CSV files and frames.
    Export {
        session_id: String,
        #[arg(long, value_enum, default_value_t = Format::Xdf)]
        format: Format,
        /// Output file (default: SESSION_ID.xdf or SESSION_ID.zip in the current folder).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Delete a recorded session and everything in it.
    Delete { session_id: String },
    /// Re-run vision, signals and fusion over a recorded session (with new settings if
    /// given): one timeline of faces, feature windows, fused estimates and markers, as JSON
    /// lines or CSV, and optionally a summary plot.
    Analyze(super::offline::AnalyzeSessionArgs),
    /// Explain a moment of a recorded session: its last analysed frame at or before --at,
    /// with what was recorded by then (windows, fused estimate, expression episodes).
    Explain(super::explain::RecordedExplainArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Xdf,
    Csv,
}

/// The session database named by the config; a missing one says where it was looked for.
pub(super) fn open(config: &Config) -> anyhow::Result<Store> {
    let path = &config.store.database;
    if !path.exists() {
        bail!(
            "no session database at {}: no session has been recorded there yet (set --database / AFFECTD_DATABASE to the server's)",
            path.display()
        );
    }
    Ok(Store::open(path)?)
}

fn state_name(state: RecordingState) -> &'static str {
    match state {
        RecordingState::Live => "live",
        RecordingState::Ended => "ended",
        RecordingState::Interrupted => "interrupted",
    }
}

fn summary_json(row: &SessionRow) -> serde_json::Value {
    use prost::Message;
    let config = affectd::proto::SessionConfig::decode(row.config.as_slice()).unwrap_or_default();
    serde_json::json!({
        "session_id": row.session_id,
        "participant": row.participant,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "state": state_name(row.state()),
        "end_reason": row.end_reason,
        "frames": row.frames,
        "chunks": row.chunks,
        "markers": row.markers,
        "stored_bytes": row.stored_bytes,
        "streams": config.streams.iter().map(|s| serde_json::json!({
            "stream_id": s.stream_id,
            "kind": affectd::proto::SignalKind::try_from(s.kind).map_or("unknown", |k| k.as_str_name()),
            "nominal_rate_hz": s.nominal_rate_hz,
            "channels": s.channels.iter().map(|c| &c.label).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "metadata": config.metadata,
    })
}

/// Seconds since the Unix epoch as an ISO-8601 UTC time, to the second. Hand-written
/// (days-from-civil, H. Hinnant) to avoid a calendar dependency for one column.
fn utc(seconds: f64) -> String {
    let s = seconds.floor() as i64;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn run(config: &Config, command: SessionsCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    let mut stdout = std::io::stdout().lock();
    match command {
        SessionsCommand::Analyze(args) => super::offline::analyze_session(config, args)?,
        SessionsCommand::Explain(args) => super::explain::run_recorded(config, args)?,
        SessionsCommand::List => {
            let mut after: Option<String> = None;
            loop {
                let page = store.list(after.as_deref(), 500, None)?;
                for row in &page {
                    writeln!(
                        stdout,
                        "{}\t{}\t{}\t{}\tframes={} chunks={} markers={}",
                        row.session_id,
                        if row.participant.is_empty() {
                            "-"
                        } else {
                            &row.participant
                        },
                        utc(row.started_at),
                        state_name(row.state()),
                        row.frames,
                        row.chunks,
                        row.markers
                    )?;
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.session_id.clone()),
                    _ => break,
                }
            }
        }
        SessionsCommand::Show { session_id } => {
            let row = store.get(&session_id).map_err(not_found)?;
            serde_json::to_writer_pretty(&mut stdout, &summary_json(&row))?;
            writeln!(stdout)?;
        }
        SessionsCommand::Export {
            session_id,
            format,
            output,
        } => {
            store.get(&session_id).map_err(not_found)?;
            let path = output.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "{session_id}.{}",
                    if format == Format::Xdf { "xdf" } else { "zip" }
                ))
            });
            // Written beside the target and renamed, so a failed export leaves no torn file.
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(folder)
                .with_context(|| format!("cannot write in {}", folder.display()))?;
            match format {
                Format::Xdf => {
                    export::xdf(&store, &session_id, std::io::BufWriter::new(&mut file))?
                }
                Format::Csv => export::csv_zip(&store, &session_id, &mut file)?,
            }
            file.persist(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        SessionsCommand::Delete { session_id } => {
            if !store.delete(&session_id)? {
                bail!("no recorded session `{session_id}` (see `affectd sessions list`)");
            }
            eprintln!("deleted {session_id}");
        }
    }
    Ok(())
}

fn not_found(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::NotFound(id) => {
            anyhow::anyhow!("no recorded session `{id}` (see `affectd sessions list`)")
        }
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        assert_eq!(super::utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_795_975_506.0), "2026-11-29T18:05:06Z");
    }
}
