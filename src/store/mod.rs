//! The session recording store: one SQLite database (WAL journal, `synchronous = FULL`), so
//! that a committed transaction survives a crash or power loss and an acknowledgement can
//! promise exactly that.
//!
//! What a live session receives is stored as received: frames (the client's encoded bytes,
//! or raw RGB), signal chunks (f32 little-endian samples, optional f64 timestamps),
//! markers and clock-offset probes. What the server computed (face results, feature
//! windows, explanations) is stored beside it as the encoded `affect.v1` messages the client
//! got, so a recording replays exactly what was sent.
//!
//! Several sessions may record at once: each writes through its own connection, and
//! SQLite serialises the writers (`busy_timeout` below), while readers (the Recordings
//! service) never block them under WAL.

pub mod export;
pub mod overview;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

/// Schema version, in SQLite's `user_version`. Version 2 added `sessions.interrupted`;
/// version 3 the tables `fused_estimates` and `fusion_models` (created when absent);
/// version 4 `sessions.owner`; version 5 the table `expression_events` (created when
/// absent); version 6 the running counts `sessions.frames`, `chunks`, `markers` and
/// `stored_bytes` (NULL for sessions recorded before: counted once when first asked).
const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    session_id   TEXT PRIMARY KEY,
    participant  TEXT NOT NULL,
    started_at   REAL NOT NULL,          -- server clock, s since the Unix epoch
    ended_at     REAL,                   -- server clock; NULL while live
    end_reason   TEXT NOT NULL DEFAULT '',
    config       BLOB NOT NULL,          -- the encoded affect.v1.SessionConfig
    interrupted  INTEGER NOT NULL DEFAULT 0, -- 1: closed by a later start, not by its server
    owner        TEXT,                   -- the name of the token that opened it; NULL: no authentication
    -- Running counts, kept in the same transaction as the rows they count (so they stay
    -- true across a crash); NULL: recorded before schema 6, counted when first asked.
    frames       INTEGER,
    chunks       INTEGER,
    markers      INTEGER,
    stored_bytes INTEGER                 -- frame bytes + chunk sample and time-stamp bytes
);
CREATE TABLE IF NOT EXISTS frames (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    client_seq   INTEGER NOT NULL,
    timestamp    REAL NOT NULL,          -- client clock, s
    received_at  REAL NOT NULL,          -- server clock, s
    format       TEXT NOT NULL,          -- 'encoded' (JPEG/PNG bytes) or 'rgb8'
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (session_id, client_seq)
);
-- A recording's frames and face results by time: the moment at a time (scrubbing, a
-- recorded explanation) and the review's face series look them up without a scan.
CREATE INDEX IF NOT EXISTS frames_by_time ON frames(session_id, timestamp);
CREATE TABLE IF NOT EXISTS chunks (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    client_seq   INTEGER NOT NULL,
    stream_id    TEXT NOT NULL,
    first_timestamp REAL NOT NULL,       -- client clock, s
    first_sample_index INTEGER,          -- NULL when the client did not send one
    sample_count INTEGER NOT NULL,       -- samples per channel
    samples      BLOB NOT NULL,          -- f32 little-endian, sample-major
    timestamps   BLOB,                   -- f64 little-endian per sample, or NULL
    PRIMARY KEY (session_id, client_seq)
);
CREATE TABLE IF NOT EXISTS markers (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    client_seq   INTEGER NOT NULL,
    timestamp    REAL NOT NULL,          -- client clock, s
    label        TEXT NOT NULL,
    duration_s   REAL NOT NULL,
    PRIMARY KEY (session_id, client_seq)
);
CREATE TABLE IF NOT EXISTS face_results (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    client_seq   INTEGER NOT NULL,       -- the frame's
    timestamp    REAL NOT NULL,          -- client clock, s
    result       BLOB NOT NULL,          -- the encoded affect.v1.FaceFrameResult
    PRIMARY KEY (session_id, client_seq)
);
CREATE INDEX IF NOT EXISTS face_results_by_time ON face_results(session_id, timestamp);
CREATE TABLE IF NOT EXISTS feature_windows (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    stream_id    TEXT NOT NULL,
    start_time   REAL NOT NULL,          -- client clock, s
    end_time     REAL NOT NULL,
    window       BLOB NOT NULL           -- the encoded affect.v1.FeatureWindow
);
CREATE INDEX IF NOT EXISTS feature_windows_by_session ON feature_windows(session_id, stream_id);
CREATE TABLE IF NOT EXISTS explanations (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    client_seq   INTEGER NOT NULL,       -- the ExplainRequest's
    result       BLOB NOT NULL,          -- the encoded affect.v1.ExplainResult
    PRIMARY KEY (session_id, client_seq)
);
CREATE TABLE IF NOT EXISTS fused_estimates (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    start_time   REAL NOT NULL,          -- client clock, s: the hop [start_time, end_time)
    end_time     REAL NOT NULL,
    estimate     BLOB NOT NULL           -- the encoded affect.v1.FusedEstimate
);
CREATE INDEX IF NOT EXISTS fused_estimates_by_session ON fused_estimates(session_id, start_time);
CREATE TABLE IF NOT EXISTS fusion_models (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    trained_at   REAL NOT NULL,          -- server clock, s
    model        TEXT NOT NULL           -- the calibration, JSON (fusion::calibrate::FusionModel)
);
CREATE TABLE IF NOT EXISTS expression_events (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    face_id      INTEGER NOT NULL,
    onset        REAL NOT NULL,          -- client clock, s
    offset_time  REAL NOT NULL,          -- client clock, s
    event        BLOB NOT NULL           -- the encoded affect.v1.ExpressionEvent (kind ENDED)
);
CREATE INDEX IF NOT EXISTS expression_events_by_session ON expression_events(session_id, onset);
CREATE TABLE IF NOT EXISTS clock_offsets (
    session_id   TEXT NOT NULL REFERENCES sessions(session_id) ON DELETE CASCADE,
    server_time  REAL NOT NULL,          -- server clock, s, when it was reported
    offset_s     REAL NOT NULL,          -- server minus client clock, s
    rtt_s        REAL NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the session database {path}: {source} (choose another with --database / AFFECTD_DATABASE)"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "cannot create the folder {folder} for the session database {path}: {source} (choose another with --database / AFFECTD_DATABASE)"
    )]
    Folder {
        folder: PathBuf,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the session database {path} has schema version {found}; this affectd reads version {SCHEMA_VERSION} (use a newer affectd, or another --database)"
    )]
    Version { path: PathBuf, found: i64 },
    #[error("session `{0}` is already recorded; choose another session_id (or leave it empty)")]
    Exists(String),
    #[error("no recorded session `{0}`")]
    NotFound(String),
    #[error(
        "the session database {path} is in use by another affectd server ({holder}); one server records into a database at a time: stop that server, or give this one another database with --database / AFFECTD_DATABASE"
    )]
    Locked { path: PathBuf, holder: String },
    #[error("cannot lock the session database {path} (lock file {lock}): {source}")]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("session database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// SQLite found the disk full (SQLITE_FULL).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

/// How much a recording may take (the `[store]` quotas); 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskBudget {
    pub max_session_bytes: u64,
    pub max_database_bytes: u64,
    pub min_free_disk_bytes: u64,
}

impl DiskBudget {
    /// Whether `adding` more bytes fit, for a session that has recorded `session_bytes`;
    /// Err says which limit and its config key.
    pub fn check(&self, store: &Store, session_bytes: u64, adding: u64) -> Result<(), String> {
        if self.max_session_bytes > 0 && session_bytes + adding > self.max_session_bytes {
            return Err(format!(
                "the session has recorded {session_bytes} bytes and {adding} more would pass the config key store.max_session_bytes = {}",
                self.max_session_bytes
            ));
        }
        if self.max_database_bytes > 0 {
            let total = store.disk_bytes();
            if total + adding > self.max_database_bytes {
                return Err(format!(
                    "the session database takes {total} bytes and {adding} more would pass the config key store.max_database_bytes = {} (delete or export old recordings, or set store.retention_days)",
                    self.max_database_bytes
                ));
            }
        }
        if self.min_free_disk_bytes > 0
            && let Some(free) = store.free_disk_bytes()
            && free < adding + self.min_free_disk_bytes
        {
            return Err(format!(
                "the disk holding the session database has {free} bytes free, and recording {adding} more would leave less than the config key store.min_free_disk_bytes = {}",
                self.min_free_disk_bytes
            ));
        }
        Ok(())
    }
}

/// Where the database lives; every connection is opened from it.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

/// A frame's pixels as received.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameData {
    /// JPEG or PNG bytes; the size is the decoded one.
    Encoded(Vec<u8>),
    /// Packed 8-bit RGB rows.
    Rgb8(Vec<u8>),
}

/// One item a session writes; a batch of them is one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Frame {
        client_seq: u64,
        timestamp: f64,
        received_at: f64,
        width: u32,
        height: u32,
        data: FrameData,
    },
    Chunk {
        client_seq: u64,
        stream_id: String,
        first_timestamp: f64,
        first_sample_index: Option<u64>,
        sample_count: u64,
        samples: Vec<f32>,
        timestamps: Vec<f64>,
    },
    Marker {
        client_seq: u64,
        timestamp: f64,
        label: String,
        duration_s: f64,
    },
    FaceResult {
        client_seq: u64,
        timestamp: f64,
        encoded: Vec<u8>,
    },
    FeatureWindow {
        stream_id: String,
        start_time: f64,
        end_time: f64,
        encoded: Vec<u8>,
    },
    Explanation {
        client_seq: u64,
        encoded: Vec<u8>,
    },
    FusedEstimate {
        start_time: f64,
        end_time: f64,
        encoded: Vec<u8>,
    },
    /// An ended expression episode.
    ExpressionEvent {
        face_id: u32,
        /// Client clock, s.
        onset: f64,
        offset: f64,
        encoded: Vec<u8>,
    },
    FusionModel {
        /// Server clock, s.
        trained_at: f64,
        /// JSON.
        model: String,
    },
    ClockOffset {
        server_time: f64,
        offset_s: f64,
        rtt_s: f64,
    },
}

impl Record {
    /// Bytes this record adds to the database, about (its payloads; the row overhead of
    /// a few numbers is left out). What the recording quotas count.
    pub fn payload_bytes(&self) -> u64 {
        let bytes = match self {
            Record::Frame { data, .. } => match data {
                FrameData::Encoded(b) | FrameData::Rgb8(b) => b.len(),
            },
            Record::Chunk {
                samples,
                timestamps,
                stream_id,
                ..
            } => samples.len() * 4 + timestamps.len() * 8 + stream_id.len(),
            Record::Marker { label, .. } => label.len(),
            Record::FaceResult { encoded, .. }
            | Record::Explanation { encoded, .. }
            | Record::FusedEstimate { encoded, .. }
            | Record::ExpressionEvent { encoded, .. } => encoded.len(),
            Record::FeatureWindow {
                encoded, stream_id, ..
            } => encoded.len() + stream_id.len(),
            Record::FusionModel { model, .. } => model.len(),
            Record::ClockOffset { .. } => 0,
        };
        bytes as u64 + 32
    }
}

/// A recorded session's header and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub session_id: String,
    pub participant: String,
    pub started_at: f64,
    pub ended_at: Option<f64>,
    pub end_reason: String,
    /// The encoded `affect.v1.SessionConfig`.
    pub config: Vec<u8>,
    pub frames: u64,
    pub chunks: u64,
    pub markers: u64,
    /// Bytes of received frames and samples.
    pub stored_bytes: u64,
    /// Closed by a later server start rather than by its own server.
    pub interrupted: bool,
    /// The name of the token that opened it; None when authentication was off.
    pub owner: Option<String>,
}

/// A recorded session's header: who and when, without the counts of [`SessionRow`] (which
/// read a row of every frame: seconds for a cold hour-long recording).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionHeader {
    pub session_id: String,
    pub participant: String,
    pub started_at: f64,
    pub ended_at: Option<f64>,
    pub end_reason: String,
    pub interrupted: bool,
    pub owner: Option<String>,
}

impl SessionHeader {
    pub fn state(&self) -> RecordingState {
        recording_state(self.ended_at, self.interrupted)
    }
}

fn recording_state(ended_at: Option<f64>, interrupted: bool) -> RecordingState {
    match (ended_at, interrupted) {
        (None, _) => RecordingState::Live,
        (Some(_), true) => RecordingState::Interrupted,
        (Some(_), false) => RecordingState::Ended,
    }
}

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// Open: being recorded (or its server was killed and has not started again).
    Live,
    /// Closed by its server when the session ended.
    Ended,
    /// Left open by a server that stopped without ending it; closed by a later start.
    Interrupted,
}

impl SessionRow {
    pub fn state(&self) -> RecordingState {
        recording_state(self.ended_at, self.interrupted)
    }
}

/// Held by the server that records into a database: an exclusive lock on the file
/// `DATABASE.lock` beside it, which holds the server's process id. The operating system
/// releases the lock when the process ends, however it ends, so a killed server leaves no
/// stale lock behind.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: std::fs::File,
    pub path: PathBuf,
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

pub fn f64_values(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

/// Creates the folder the database at `path` lives in.
fn create_folder(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
            folder: parent.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}

impl Store {
    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database takes on disk: the file, its write-ahead log and shared memory.
    pub fn disk_bytes(&self) -> u64 {
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let mut name = self.path.as_os_str().to_owned();
                name.push(suffix);
                std::fs::metadata(PathBuf::from(name)).ok()
            })
            .map(|m| m.len())
            .sum()
    }

    /// Bytes free for unprivileged writers on the database's file system (None when the
    /// file system cannot say).
    pub fn free_disk_bytes(&self) -> Option<u64> {
        let folder = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stat = rustix::fs::statvfs(folder).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Deletes ended recordings that ended before `before` (server clock, s), and
    /// checkpoints the write-ahead log into the database (truncating it). Returns how many
    /// recordings were deleted.
    pub fn expire(&self, before: f64) -> Result<usize, StoreError> {
        let conn = self.connect()?;
        let deleted = conn.execute(
            "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?1",
            [before],
        )?;
        // A busy reader may keep part of the log; the next sweep tries again.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(deleted)
    }

    /// Creates the database (and its folder) when absent and checks its schema.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_folder(path)?;
        let store = Store {
            path: path.to_owned(),
        };
        let conn = store.connect()?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Version {
                path: path.to_owned(),
                found,
            });
        }
        conn.execute_batch(SCHEMA)?;
        if (1..2).contains(&found) {
            conn.execute_batch(
                "ALTER TABLE sessions ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        if (1..4).contains(&found) {
            conn.execute_batch("ALTER TABLE sessions ADD COLUMN owner TEXT")?;
        }
        if (1..6).contains(&found) {
            conn.execute_batch(
                "ALTER TABLE sessions ADD COLUMN frames INTEGER;
                 ALTER TABLE sessions ADD COLUMN chunks INTEGER;
                 ALTER TABLE sessions ADD COLUMN markers INTEGER;
                 ALTER TABLE sessions ADD COLUMN stored_bytes INTEGER;",
            )?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(store)
    }

    /// Takes the server's lock on the database at `path` (see [`DatabaseLock`]); fails with
    /// [`StoreError::Locked`], naming the holder's process id, when another server holds it.
    pub fn lock_for_server(path: &Path) -> Result<DatabaseLock, StoreError> {
        use std::io::{Read, Seek, Write};
        create_folder(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let failed = |source| StoreError::Lock {
            path: path.to_owned(),
            lock: lock_path.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(failed)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "its process id is not written yet".to_string(),
                    pid => format!("pid {pid}"),
                };
                return Err(StoreError::Locked {
                    path: path.to_owned(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
        }
        file.set_len(0).map_err(failed)?;
        file.rewind().map_err(failed)?;
        writeln!(file, "{}", std::process::id()).map_err(failed)?;
        file.flush().map_err(failed)?;
        Ok(DatabaseLock {
            _file: file,
            path: lock_path,
        })
    }

    /// A new connection: WAL, full sync (commits are durable), foreign keys on.
    pub fn connect(&self) -> Result<Connection, StoreError> {
        let open = |source| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open(&self.path).map_err(open)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open)?;
        Ok(conn)
    }

    /// Starts recording a session; fails when the id is already recorded.
    pub fn begin(
        &self,
        session_id: &str,
        participant: &str,
        owner: Option<&str>,
        started_at: f64,
        config: &[u8],
    ) -> Result<Recorder, StoreError> {
        let conn = self.connect()?;
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO sessions (session_id, participant, owner, started_at, config, frames, chunks, markers, stored_bytes) VALUES (?1, ?2, ?3, ?4, ?5, 0, 0, 0, 0)",
            params![session_id, participant, owner, started_at, config],
        )?;
        if inserted == 0 {
            return Err(StoreError::Exists(session_id.to_owned()));
        }
        Ok(Recorder {
            conn,
            session_id: session_id.to_owned(),
        })
    }

    /// Closes recordings left open by a server that stopped without ending them (killed,
    /// or recording failed): called at start-up, when no session of this server is live.
    /// Their end time is `now`, and the reason says so. Returns how many there were.
    pub fn close_orphans(&self, now: f64) -> Result<usize, StoreError> {
        let conn = self.connect()?;
        Ok(conn.execute(
            "UPDATE sessions SET ended_at = ?1, interrupted = 1, end_reason = 'not ended by its server (it stopped, or recording failed); ended_at is when a later start found it open' WHERE ended_at IS NULL",
            [now],
        )?)
    }

    /// Sessions in start order, after the one named `after` (a page token), at most `limit`;
    /// with `owner`, only the sessions that owner opened.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        owner: Option<&str>,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let conn = self.connect()?;
        // ?9 IS NULL: every owner.
        let ids: Vec<String> = match after {
            None => {
                let mut stmt = conn.prepare(
                    "SELECT session_id FROM sessions WHERE (?9 IS NULL OR owner = ?9) ORDER BY started_at, session_id LIMIT ?1",
                )?;
                stmt.query_map(
                    rusqlite::named_params! {"?1": limit as i64, "?9": owner},
                    |r| r.get(0),
                )?
                .collect::<Result<_, _>>()?
            }
            Some(after) => {
                let (started, id): (f64, String) = conn
                    .query_row(
                        "SELECT started_at, session_id FROM sessions WHERE session_id = ?1",
                        [after],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(after.to_owned()))?;
                let mut stmt = conn.prepare(
                    "SELECT session_id FROM sessions WHERE (started_at, session_id) > (?1, ?2) AND (?9 IS NULL OR owner = ?9) ORDER BY started_at, session_id LIMIT ?3",
                )?;
                stmt.query_map(
                    rusqlite::named_params! {"?1": started, "?2": id, "?3": limit as i64, "?9": owner},
                    |r| r.get(0),
                )?
                .collect::<Result<_, _>>()?
            }
        };
        ids.iter().map(|id| summary(&conn, id)).collect()
    }

    pub fn get(&self, session_id: &str) -> Result<SessionRow, StoreError> {
        summary(&self.connect()?, session_id)
    }

    /// A recording's header alone (no counts): NotFound when there is none.
    pub fn header(&self, session_id: &str) -> Result<SessionHeader, StoreError> {
        self.connect()?
            .query_row(
                &format!("{HEADER_COLUMNS} WHERE session_id = ?1"),
                [session_id],
                header_of,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(session_id.to_owned()))
    }

    /// The newest `limit` recordings' headers, newest first; with `owner`, only its own.
    pub fn headers(
        &self,
        limit: usize,
        owner: Option<&str>,
    ) -> Result<Vec<SessionHeader>, StoreError> {
        let conn = self.connect()?;
        let mut stmt = conn.prepare(&format!(
            "{HEADER_COLUMNS} WHERE (?2 IS NULL OR owner = ?2) ORDER BY started_at DESC, session_id LIMIT ?1"
        ))?;
        let rows = stmt
            .query_map(rusqlite::params![limit as i64, owner], header_of)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Deletes a recording and everything in it; false when there was none.
    pub fn delete(&self, session_id: &str) -> Result<bool, StoreError> {
        let conn = self.connect()?;
        Ok(conn.execute("DELETE FROM sessions WHERE session_id = ?1", [session_id])? > 0)
    }
}

const HEADER_COLUMNS: &str = "SELECT session_id, participant, started_at, ended_at, end_reason, interrupted, owner FROM sessions";

fn header_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionHeader> {
    Ok(SessionHeader {
        session_id: r.get(0)?,
        participant: r.get(1)?,
        started_at: r.get(2)?,
        ended_at: r.get(3)?,
        end_reason: r.get(4)?,
        interrupted: r.get::<_, i64>(5)? != 0,
        owner: r.get(6)?,
    })
}

fn summary(conn: &Connection, session_id: &str) -> Result<SessionRow, StoreError> {
    let row = conn
        .query_row(
            "SELECT participant, started_at, ended_at, end_reason, config, interrupted, owner FROM sessions WHERE session_id = ?1",
            [session_id],
            |r| {
                Ok(SessionRow {
                    session_id: session_id.to_owned(),
                    participant: r.get(0)?,
                    started_at: r.get(1)?,
                    ended_at: r.get(2)?,
                    end_reason: r.get(3)?,
                    config: r.get(4)?,
                    frames: 0,
                    chunks: 0,
                    markers: 0,
                    stored_bytes: 0,
                    interrupted: r.get::<_, i64>(5)? != 0,
                    owner: r.get(6)?,
                })
            },
        )
        .optional()?;
    let mut row = row.ok_or_else(|| StoreError::NotFound(session_id.to_owned()))?;
    let kept: (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT frames, chunks, markers, stored_bytes FROM sessions WHERE session_id = ?1",
        [session_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (frames, chunks, markers, stored_bytes) = match kept {
        (Some(f), Some(c), Some(m), Some(b)) => (f as u64, c as u64, m as u64, b as u64),
        // Recorded before the running counts existed: counted from the rows (every frame
        // row is read: seconds for an hour-long recording), and kept once the recording
        // has ended (no row can follow). Keeping them is best effort: a read-only or busy
        // database still gets its answer.
        _ => {
            let counted = count_rows(conn, session_id)?;
            let kept = conn.execute(
                "UPDATE sessions SET frames = ?2, chunks = ?3, markers = ?4, stored_bytes = ?5 WHERE session_id = ?1 AND ended_at IS NOT NULL",
                params![
                    session_id,
                    counted.0 as i64,
                    counted.1 as i64,
                    counted.2 as i64,
                    counted.3 as i64
                ],
            );
            if let Err(e) = kept {
                tracing::debug!(session_id, "recording's counts not kept: {e}");
            }
            counted
        }
    };
    row.frames = frames;
    row.chunks = chunks;
    row.markers = markers;
    row.stored_bytes = stored_bytes;
    Ok(row)
}

/// A session's frames, chunks, markers and stored bytes, counted from its rows.
fn count_rows(conn: &Connection, session_id: &str) -> Result<(u64, u64, u64, u64), StoreError> {
    let count = |sql: &str| -> Result<(u64, u64), rusqlite::Error> {
        conn.query_row(sql, [session_id], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
    };
    let (frames, frame_bytes) =
        count("SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM frames WHERE session_id = ?1")?;
    let (chunks, chunk_bytes) = count(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(samples) + COALESCE(LENGTH(timestamps), 0)), 0) FROM chunks WHERE session_id = ?1",
    )?;
    let (markers, _) = count("SELECT COUNT(*), 0 FROM markers WHERE session_id = ?1")?;
    Ok((frames, chunks, markers, frame_bytes + chunk_bytes))
}

/// One live session's writer.
pub struct Recorder {
    conn: Connection,
    session_id: String,
}

impl Recorder {
    /// Writes the records in one transaction; when this returns Ok they are durable.
    pub fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let id = self.session_id.as_str();
        let tx = self.conn.transaction()?;
        // The session's running counts move in this same transaction.
        let (mut frames, mut chunks, mut markers, mut bytes) = (0i64, 0i64, 0i64, 0i64);
        for record in records {
            match record {
                Record::Frame {
                    client_seq,
                    timestamp,
                    received_at,
                    width,
                    height,
                    data,
                } => {
                    let (format, data) = match data {
                        FrameData::Encoded(b) => ("encoded", b),
                        FrameData::Rgb8(b) => ("rgb8", b),
                    };
                    frames += 1;
                    bytes += data.len() as i64;
                    tx.execute(
                        "INSERT INTO frames VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            id,
                            *client_seq as i64,
                            timestamp,
                            received_at,
                            format,
                            width,
                            height,
                            data
                        ],
                    )?;
                }
                Record::Chunk {
                    client_seq,
                    stream_id,
                    first_timestamp,
                    first_sample_index,
                    sample_count,
                    samples,
                    timestamps,
                } => {
                    chunks += 1;
                    bytes += (samples.len() * 4 + timestamps.len() * 8) as i64;
                    tx.execute(
                        "INSERT INTO chunks VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            id,
                            *client_seq as i64,
                            stream_id,
                            first_timestamp,
                            first_sample_index.map(|i| i as i64),
                            *sample_count as i64,
                            f32_bytes(samples),
                            (!timestamps.is_empty()).then(|| f64_bytes(timestamps)),
                        ],
                    )?;
                }
                Record::Marker {
                    client_seq,
                    timestamp,
                    label,
                    duration_s,
                } => {
                    markers += 1;
                    tx.execute(
                        "INSERT INTO markers VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, *client_seq as i64, timestamp, label, duration_s],
                    )?;
                }
                Record::FaceResult {
                    client_seq,
                    timestamp,
                    encoded,
                } => {
                    tx.execute(
                        "INSERT INTO face_results VALUES (?1, ?2, ?3, ?4)",
                        params![id, *client_seq as i64, timestamp, encoded],
                    )?;
                }
                Record::FeatureWindow {
                    stream_id,
                    start_time,
                    end_time,
                    encoded,
                } => {
                    tx.execute(
                        "INSERT INTO feature_windows VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, stream_id, start_time, end_time, encoded],
                    )?;
                }
                Record::Explanation {
                    client_seq,
                    encoded,
                } => {
                    tx.execute(
                        "INSERT INTO explanations VALUES (?1, ?2, ?3)",
                        params![id, *client_seq as i64, encoded],
                    )?;
                }
                Record::FusedEstimate {
                    start_time,
                    end_time,
                    encoded,
                } => {
                    tx.execute(
                        "INSERT INTO fused_estimates VALUES (?1, ?2, ?3, ?4)",
                        params![id, start_time, end_time, encoded],
                    )?;
                }
                Record::ExpressionEvent {
                    face_id,
                    onset,
                    offset,
                    encoded,
                } => {
                    tx.execute(
                        "INSERT INTO expression_events VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, face_id, onset, offset, encoded],
                    )?;
                }
                Record::FusionModel { trained_at, model } => {
                    tx.execute(
                        "INSERT INTO fusion_models VALUES (?1, ?2, ?3)",
                        params![id, trained_at, model],
                    )?;
                }
                Record::ClockOffset {
                    server_time,
                    offset_s,
                    rtt_s,
                } => {
                    tx.execute(
                        "INSERT INTO clock_offsets VALUES (?1, ?2, ?3, ?4)",
                        params![id, server_time, offset_s, rtt_s],
                    )?;
                }
            }
        }
        if frames + chunks + markers > 0 {
            // NULL counts (a recording opened before schema 6, resumed) stay NULL: they
            // are counted from the rows when asked.
            tx.execute(
                "UPDATE sessions SET frames = frames + ?2, chunks = chunks + ?3, markers = markers + ?4, stored_bytes = stored_bytes + ?5 WHERE session_id = ?1",
                params![id, frames, chunks, markers, bytes],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks the recording ended (server clock) and why.
    pub fn end(&mut self, ended_at: f64, reason: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE sessions SET ended_at = ?2, end_reason = ?3 WHERE session_id = ?1",
            params![self.session_id, ended_at, reason],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, first: f64) -> Record {
        Record::Chunk {
            client_seq: seq,
            stream_id: "eda".into(),
            first_timestamp: first,
            first_sample_index: None,
            sample_count: 3,
            samples: vec![1.0, 2.5, -3.0],
            timestamps: vec![],
        }
    }

    #[test]
    fn records_round_trip_with_counts_pages_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("sub/s.sqlite")).unwrap();
        let mut a = store.begin("a", "p1", None, 10.0, b"cfg").unwrap();
        a.write(&[
            chunk(2, 0.0),
            chunk(3, 0.1),
            Record::Marker {
                client_seq: 4,
                timestamp: 0.2,
                label: "stim".into(),
                duration_s: 0.0,
            },
            Record::Frame {
                client_seq: 5,
                timestamp: 0.3,
                received_at: 11.0,
                width: 2,
                height: 1,
                data: FrameData::Rgb8(vec![0; 6]),
            },
        ])
        .unwrap();
        a.end(12.0, "ended by the client").unwrap();
        let _b = store.begin("b", "p2", Some("pc2"), 20.0, b"").unwrap();
        assert!(matches!(
            store.begin("a", "p3", None, 30.0, b""),
            Err(StoreError::Exists(_))
        ));

        let row = store.get("a").unwrap();
        assert_eq!((row.frames, row.chunks, row.markers), (1, 2, 1));
        assert_eq!(row.stored_bytes, 6 + 2 * 12);
        assert_eq!(row.ended_at, Some(12.0));
        assert_eq!(row.config, b"cfg");
        assert_eq!(store.get("b").unwrap().ended_at, None);

        let page = store.list(None, 1, None).unwrap();
        assert_eq!(page[0].session_id, "a");
        let next = store.list(Some("a"), 1, None).unwrap();
        assert_eq!(next[0].session_id, "b");
        assert!(store.list(Some("b"), 1, None).unwrap().is_empty());
        assert!(matches!(
            store.list(Some("zz"), 1, None),
            Err(StoreError::NotFound(_))
        ));
        // An owner sees its own recordings only.
        assert_eq!(store.get("b").unwrap().owner.as_deref(), Some("pc2"));
        assert_eq!(store.get("a").unwrap().owner, None);
        let own: Vec<_> = store.list(None, 10, Some("pc2")).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].session_id, "b");
        assert!(store.list(Some("a"), 10, Some("pc3")).unwrap().is_empty());

        assert!(store.delete("a").unwrap());
        assert!(!store.delete("a").unwrap());
        assert!(matches!(store.get("a"), Err(StoreError::NotFound(_))));
        // The cascade removed a's rows.
        let conn = store.connect().unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn headers_come_newest_first_and_by_owner_without_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        store.begin("old", "p1", Some("pc1"), 10.0, b"cfg").unwrap();
        let mut new = store.begin("new", "p2", Some("pc2"), 20.0, b"cfg").unwrap();
        new.end(25.0, "done").unwrap();
        let all: Vec<_> = store.headers(10, None).unwrap();
        assert_eq!(
            all.iter()
                .map(|h| h.session_id.as_str())
                .collect::<Vec<_>>(),
            ["new", "old"]
        );
        assert_eq!(all[0].state(), RecordingState::Ended);
        assert_eq!(all[1].state(), RecordingState::Live);
        let own = store.headers(10, Some("pc1")).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].participant, "p1");
        assert_eq!(store.headers(1, None).unwrap()[0].session_id, "new");
        let header = store.header("new").unwrap();
        assert_eq!((header.started_at, header.ended_at), (20.0, Some(25.0)));
        assert!(matches!(store.header("none"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn a_failed_batch_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let mut rec = store.begin("a", "", None, 0.0, b"").unwrap();
        rec.write(&[chunk(1, 0.0)]).unwrap();
        // The second record repeats client_seq 1: the whole batch is rolled back.
        assert!(rec.write(&[chunk(2, 0.1), chunk(1, 0.2)]).is_err());
        assert_eq!(store.get("a").unwrap().chunks, 1);
    }

    /// The running counts equal what the rows say, batch after batch (time stamps with
    /// and without, encoded and raw frames), without reading the rows; a rolled-back batch
    /// (above) leaves them as they were.
    #[test]
    fn running_counts_equal_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let mut rec = store.begin("a", "", None, 0.0, b"").unwrap();
        let stamped = Record::Chunk {
            client_seq: 9,
            stream_id: "ecg".into(),
            first_timestamp: 1.0,
            first_sample_index: Some(0),
            sample_count: 2,
            samples: vec![0.5, 0.25],
            timestamps: vec![1.0, 1.001],
        };
        let frame = |seq: u64, data: FrameData| Record::Frame {
            client_seq: seq,
            timestamp: seq as f64,
            received_at: 0.0,
            width: 2,
            height: 1,
            data,
        };
        rec.write(&[chunk(1, 0.0), frame(2, FrameData::Encoded(vec![7; 100]))])
            .unwrap();
        rec.write(&[stamped, frame(3, FrameData::Rgb8(vec![0; 6]))])
            .unwrap();
        rec.write(&[Record::Marker {
            client_seq: 4,
            timestamp: 2.0,
            label: "m".into(),
            duration_s: 0.0,
        }])
        .unwrap();
        let row = store.get("a").unwrap();
        let counted = count_rows(&store.connect().unwrap(), "a").unwrap();
        assert_eq!(
            (row.frames, row.chunks, row.markers, row.stored_bytes),
            counted
        );
        assert_eq!(counted, (2, 2, 1, 100 + 6 + 12 + (8 + 16)));
    }

    /// A recording made before schema 6 has no running counts: it is counted from its
    /// rows, the counts are kept once it has ended, and a live one is counted each time.
    #[test]
    fn recordings_from_before_the_counts_are_counted_from_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).unwrap();
        store
            .begin("ended", "", None, 0.0, b"")
            .and_then(|mut r| {
                r.write(&[chunk(1, 0.0), chunk(2, 0.1)])?;
                r.end(1.0, "ended by the client")
            })
            .unwrap();
        let mut live = store.begin("live", "", None, 0.0, b"").unwrap();
        live.write(&[chunk(1, 0.0)]).unwrap();
        // As a schema-5 database that was opened by this version: the columns are NULL.
        let conn = store.connect().unwrap();
        conn.execute_batch(
            "UPDATE sessions SET frames = NULL, chunks = NULL, markers = NULL, stored_bytes = NULL",
        )
        .unwrap();
        let counts = |id: &str| -> Option<i64> {
            conn.query_row(
                "SELECT chunks FROM sessions WHERE session_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(store.get("ended").unwrap().chunks, 2);
        assert_eq!(counts("ended"), Some(2), "kept once counted");
        // The live one's writer leaves NULL as NULL, and it is counted from the rows.
        live.write(&[chunk(2, 0.1)]).unwrap();
        assert_eq!(store.get("live").unwrap().chunks, 2);
        assert_eq!(counts("live"), None);
        assert_eq!(store.list(None, 10, None).unwrap()[1].stored_bytes, 24);
    }

    #[test]
    fn one_server_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let lock = Store::lock_for_server(&path).unwrap();
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(&lock.path).unwrap().trim(), pid);
        let err = Store::lock_for_server(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {pid}")) && err.contains("s.sqlite"),
            "{err}"
        );
        drop(lock);
        // Released with its holder.
        Store::lock_for_server(&path).unwrap();
    }

    #[test]
    fn a_version_1_database_gains_the_interrupted_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, participant TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, end_reason TEXT NOT NULL DEFAULT '', config BLOB NOT NULL);
                 INSERT INTO sessions (session_id, participant, started_at, config) VALUES ('old', 'p', 1.0, x'');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.get("old").unwrap().state(), RecordingState::Live);
        assert_eq!(store.close_orphans(2.0).unwrap(), 1);
        let row = store.get("old").unwrap();
        assert_eq!(row.state(), RecordingState::Interrupted);
        assert_eq!(row.ended_at, Some(2.0));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn sample_bytes_round_trip() {
        let v = [1.5f32, -0.0, f32::NAN, 3e-9];
        let back = f32_values(&f32_bytes(&v));
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(f64_values(&f64_bytes(&[1.0, 2.0])), vec![1.0, 2.0]);
    }
}

/// A recorded client message, as a replay reads it back.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredMessage {
    Frame {
        client_seq: u64,
        timestamp: f64,
        width: u32,
        height: u32,
        data: FrameData,
    },
    Chunk {
        client_seq: u64,
        stream_id: String,
        first_timestamp: f64,
        first_sample_index: Option<u64>,
        samples: Vec<f32>,
        timestamps: Vec<f64>,
    },
    Marker {
        client_seq: u64,
        timestamp: f64,
        label: String,
        duration_s: f64,
    },
}

impl Store {
    /// How many frames, chunks and markers a session holds (for a progress bar).
    pub fn message_count(&self, session_id: &str) -> Result<u64, StoreError> {
        let conn = self.connect()?;
        Ok(conn.query_row(
            "SELECT (SELECT count(*) FROM frames WHERE session_id = ?1)
                  + (SELECT count(*) FROM chunks WHERE session_id = ?1)
                  + (SELECT count(*) FROM markers WHERE session_id = ?1)",
            [session_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Calls `each` on a session's frames, chunks and markers in client_seq order (the
    /// order the session received them), one at a time.
    pub fn replay<E: From<StoreError>>(
        &self,
        session_id: &str,
        mut each: impl FnMut(StoredMessage) -> Result<(), E>,
    ) -> Result<(), E> {
        let conn = self.connect()?;
        let mut stmt = conn
            .prepare(
                "SELECT 0, client_seq, timestamp, format, width, height, data, NULL, NULL, NULL
                   FROM frames WHERE session_id = ?1
                 UNION ALL
                 SELECT 1, client_seq, first_timestamp, stream_id, first_sample_index, NULL, samples, timestamps, NULL, NULL
                   FROM chunks WHERE session_id = ?1
                 UNION ALL
                 SELECT 2, client_seq, timestamp, label, NULL, NULL, NULL, NULL, duration_s, NULL
                   FROM markers WHERE session_id = ?1
                 ORDER BY 2",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt.query([session_id]).map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let read = || -> rusqlite::Result<StoredMessage> {
                let kind: i64 = r.get(0)?;
                let client_seq = r.get::<_, i64>(1)? as u64;
                let timestamp: f64 = r.get(2)?;
                Ok(match kind {
                    0 => {
                        let format: String = r.get(3)?;
                        let data: Vec<u8> = r.get(6)?;
                        StoredMessage::Frame {
                            client_seq,
                            timestamp,
                            width: r.get(4)?,
                            height: r.get(5)?,
                            data: if format == "rgb8" {
                                FrameData::Rgb8(data)
                            } else {
                                FrameData::Encoded(data)
                            },
                        }
                    }
                    1 => StoredMessage::Chunk {
                        client_seq,
                        stream_id: r.get(3)?,
                        first_timestamp: timestamp,
                        first_sample_index: r.get::<_, Option<i64>>(4)?.map(|i| i as u64),
                        samples: f32_values(&r.get::<_, Vec<u8>>(6)?),
                        timestamps: r
                            .get::<_, Option<Vec<u8>>>(7)?
                            .map_or_else(Vec::new, |t| f64_values(&t)),
                    },
                    _ => StoredMessage::Marker {
                        client_seq,
                        timestamp,
                        label: r.get(3)?,
                        duration_s: r.get(8)?,
                    },
                })
            };
            each(read().map_err(StoreError::from)?)?;
        }
        Ok(())
    }
}
