//! The dashboard: pages for the live sessions, one live session and a recorded session's
//! review, and the JSON and event-stream endpoints they read. Conversion only: what they
//! show comes from the core (`Engine`, the sessions' boards, `store::overview`).
//!
//! Pages (HTML; the browser code is `dashboard/app.js`):
//! - `/`: live and recorded sessions;
//! - `/sessions/{id}`: one live session (a session that has ended redirects to its review);
//! - `/recordings/{id}`: a recorded session's review;
//! - `/login`: where a browser gives its token, when the server has tokens.
//!
//! API (JSON; errors are `{"error": message}` with the HTTP status):
//! - `GET /api/sessions`: `{"live": [...], "recorded": [...]}`;
//! - `GET /api/sessions/{id}/feed`: the live feed, server-sent events (see `feed`);
//! - `GET /api/sessions/{id}/frame.jpg`: the latest analysed frame with its marks;
//! - `POST /api/sessions/{id}/explain`: an explanation of the current moment as
//!   server-sent events (`token`, then `result` or `error`);
//! - `GET /api/recordings/{id}/overview?from=&to=&points=`: `store::overview::Overview`;
//! - `GET /api/recordings/{id}/moment?t=`: the frame at `t` (marked JPEG as a data URL)
//!   and its faces;
//! - `GET /api/recordings/{id}/export.xdf`, `export.zip`: the exports.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::Http;
use crate::auth::{Principal, Role};
use crate::engine::{ExplainSource, ExportFormat};
use crate::error::Error;

/// The cookie a browser's token is kept in (set by `/login`).
const TOKEN_COOKIE: &str = "affectd_token";
/// Recordings on the sessions page, newest first.
const RECORDINGS_LISTED: usize = 200;
/// Display points per series in a review, by default and at most.
const DEFAULT_POINTS: usize = 800;
const MAX_POINTS: usize = 5000;

pub fn routes() -> axum::Router<Http> {
    axum::Router::new()
        .route("/", get(sessions_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout))
        .route("/sessions/{id}", get(live_page))
        .route("/recordings/{id}", get(review_page))
        .route("/assets/{file}", get(super::assets::asset))
        .route("/api/sessions", get(list_sessions))
        .route("/api/sessions/{id}/feed", get(super::feed::feed))
        .route("/api/sessions/{id}/frame.jpg", get(live_frame))
        .route("/api/sessions/{id}/explain", post(explain))
        .route("/api/recordings/{id}/overview", get(overview))
        .route("/api/recordings/{id}/moment", get(recorded_moment))
        .route("/api/recordings/{id}/export.xdf", get(export_xdf))
        .route("/api/recordings/{id}/export.zip", get(export_zip))
}

/// A failed request: a page or JSON, with the status the error maps to. The message is the
/// core's (it says what to do); never a backtrace.
pub struct Failure {
    status: StatusCode,
    message: String,
    page: bool,
}

impl Failure {
    pub fn api(error: Error) -> Failure {
        Failure {
            status: status_of(&error),
            message: error.to_string(),
            page: false,
        }
    }

    pub fn page(error: Error) -> Failure {
        Failure {
            page: true,
            ..Failure::api(error)
        }
    }
}

fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::AlreadyExists(_) => StatusCode::CONFLICT,
        Error::FailedPrecondition(_) => StatusCode::CONFLICT,
        Error::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.page {
            if self.status == StatusCode::UNAUTHORIZED {
                return Redirect::to("/login").into_response();
            }
            let title = match self.status {
                StatusCode::NOT_FOUND => "Not found",
                StatusCode::BAD_REQUEST => "Bad request",
                StatusCode::FORBIDDEN => "Not allowed",
                _ => "Error",
            };
            (self.status, page("error", "", title, &self.message)).into_response()
        } else {
            (self.status, Json(json!({"error": self.message}))).into_response()
        }
    }
}

/// Security headers for every dashboard response: no framing, no sniffing, nothing loaded
/// from elsewhere (the page works without internet; uPlot sets inline styles).
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// The caller: the `authorization` header, else the token cookie. With no tokens
/// configured, everyone.
pub fn caller(http: &Http, headers: &HeaderMap) -> Result<Principal, Error> {
    let tokens = &http.engine.tokens;
    if !tokens.enabled() {
        return Ok(Principal::open());
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return tokens.authenticate(Some(value.to_str().unwrap_or("(not text)")));
    }
    match cookie(headers, TOKEN_COOKIE) {
        Some(token) => tokens.authenticate(Some(&format!("Bearer {token}"))),
        None => Err(Error::Unauthenticated(
            "this server requires a token: sign in at /login, or send `authorization: Bearer <token>`"
                .into(),
        )),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

pub fn check_id(id: &str) -> Result<(), Error> {
    crate::session::check_session_id(id).map_err(Error::InvalidArgument)
}

/// A live session the caller may see (`role`), or why not.
pub fn live_session(
    http: &Http,
    headers: &HeaderMap,
    id: &str,
    role: Role,
    what: &str,
) -> Result<Arc<crate::session::LiveSession>, Error> {
    check_id(id)?;
    let caller = caller(http, headers)?;
    let live = http.engine.sessions.live(id)?;
    caller.require_session(role, live.owner.as_deref(), id, what)?;
    Ok(live)
}

/// A recording the caller may read, or why not (blocking: reads the database; its header
/// only, never the counts that read every frame's row).
fn recording(
    http: &Http,
    headers: &HeaderMap,
    id: &str,
) -> Result<crate::store::SessionHeader, Error> {
    check_id(id)?;
    let caller = caller(http, headers)?;
    let row = http.engine.recording_header(id)?;
    caller.require_session(
        Role::Read,
        row.owner.as_deref(),
        id,
        "the dashboard's review",
    )?;
    Ok(row)
}

/// Runs database work off the async threads; a panic is an internal error, not a trace.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || crate::error::catch_panic("the dashboard", work))
        .await
        .map_err(|e| Error::Internal(format!("the dashboard's task failed: {e}")))?
}

/// The query's parameters, each known to this endpoint, each a finite number; the message
/// of a 400 names the parameter and what it must be.
fn numbers(
    query: &HashMap<String, String>,
    allowed: &[(&str, &str)],
) -> Result<HashMap<String, f64>, Error> {
    let mut out = HashMap::new();
    for (key, value) in query {
        let Some((_, meaning)) = allowed.iter().find(|(name, _)| name == key) else {
            let names: Vec<_> = allowed.iter().map(|(n, _)| *n).collect();
            return Err(Error::InvalidArgument(format!(
                "unknown query parameter `{key}`; this endpoint takes {}",
                names.join(", ")
            )));
        };
        let number: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "query parameter `{key}` must be a finite number ({meaning}), got {value:?}"
                ))
            })?;
        out.insert(key.clone(), number);
    }
    Ok(out)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: the shell the browser code fills in (`kind` picks the view).
fn page(kind: &str, session_id: &str, title: &str, message: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>affectd · {title}</title>
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/app.css">
</head>
<body data-page="{kind}" data-session="{id}">
<header class="top">
  <a class="brand" href="/">affectd</a>
  <nav><a href="/">Sessions</a></nav>
  <button id="theme" type="button" aria-label="Switch between dark and light theme">Theme</button>
</header>
<main id="app">
  <h1>{title}</h1>
  <p id="message" class="message">{message}</p>
</main>
<script src="/assets/uPlot.iife.min.js"></script>
<script src="/assets/app.js"></script>
</body>
</html>
"#,
        title = escape(title),
        kind = escape(kind),
        id = escape(session_id),
        message = escape(message),
    );
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
    )
}

async fn sessions_page(State(http): State<Http>, headers: HeaderMap) -> Result<Response, Failure> {
    caller(&http, &headers).map_err(Failure::page)?;
    Ok(page("sessions", "", "Sessions", ""))
}

async fn login_page(State(http): State<Http>) -> Response {
    let message = if http.engine.tokens.enabled() {
        ""
    } else {
        "This server has no tokens: nothing to sign in to."
    };
    page("login", "", "Sign in", message)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    // Absent is empty: the page then says to give one (not axum's 422 for a missing field).
    #[serde(default)]
    token: String,
}

async fn login(State(http): State<Http>, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let token = form.token.trim();
    if token.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            page("login", "", "Sign in", "Give a token."),
        )
            .into_response();
    }
    // A cookie's value cannot hold every character a configured token may have.
    if let Some(c) = token
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, ';' | ',' | '"' | '\\'))
    {
        return (
            StatusCode::BAD_REQUEST,
            page(
                "login",
                "",
                "Sign in",
                &format!(
                    "this token has the character {c:?}, which a browser cookie cannot keep: send it as `authorization: Bearer <token>` instead, or use a token from `affectd token new`"
                ),
            ),
        )
            .into_response();
    }
    match http
        .engine
        .tokens
        .authenticate(Some(&format!("Bearer {token}")))
    {
        Ok(_) => {
            // The cookie is the token itself: HttpOnly (scripts cannot read it), sent only
            // to this server's own pages (SameSite=Strict), and only over TLS when TLS is on.
            let secure = if http.tls { "; Secure" } else { "" };
            let cookie =
                format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
            let mut response = Redirect::to("/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => (
            StatusCode::UNAUTHORIZED,
            page("login", "", "Sign in", &e.to_string()),
        )
            .into_response(),
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("affectd_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

async fn live_page(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    match live_session(&http, &headers, &id, Role::Read, "the dashboard") {
        Ok(_) => Ok(page("live", &id, &format!("Session {id}"), "")),
        Err(Error::NotFound(_)) => {
            // Not live: its review, if it was recorded.
            let engine = http.engine.clone();
            let lookup = id.clone();
            match blocking(move || engine.recording_header(&lookup)).await {
                Ok(_) => Ok(Redirect::to(&format!("/recordings/{id}")).into_response()),
                Err(_) => Err(Failure::page(Error::NotFound(format!(
                    "no session `{id}` is live or recorded on this server"
                )))),
            }
        }
        Err(e) => Err(Failure::page(e)),
    }
}

async fn review_page(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let lookup = id.clone();
    blocking(move || recording(&http, &headers, &lookup))
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Failure::page(Error::NotFound(format!(
                "no session `{id}` is recorded on this server"
            ))),
            e => Failure::page(e),
        })?;
    Ok(page("review", &id, &format!("Recording {id}"), ""))
}

async fn list_sessions(
    State(http): State<Http>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    numbers(&query, &[]).map_err(Failure::api)?;
    let caller = caller(&http, &headers).map_err(Failure::api)?;
    let now = crate::engine::unix_now();
    let live: Vec<Value> = http
        .engine
        .sessions
        .all()
        .into_iter()
        .filter(|s| caller.reads_all() || (s.owner.is_some() && s.owner == caller.owner()))
        .map(|s| {
            let status = s.board.status();
            let mut row = serde_json::to_value(&status).unwrap_or(Value::Null);
            row["session_id"] = json!(s.session_id);
            row["owner"] = json!(s.owner);
            row["duration_s"] = json!((now - status.info.started_at).max(0.0));
            row
        })
        .collect();
    let engine = http.engine.clone();
    let owner = (!caller.reads_all()).then(|| caller.owner()).flatten();
    let store_error = engine.store.as_ref().err().cloned();
    let recorded = blocking(move || {
        if engine.store.is_err() {
            return Ok(Vec::new());
        }
        // Headers only: this is asked every few seconds, and counting a recording's frames
        // reads every frame's row.
        let rows = engine.recording_headers(RECORDINGS_LISTED, owner.as_deref())?;
        Ok(rows
            .into_iter()
            .map(|r| {
                json!({
                    "session_id": r.session_id, "participant": r.participant,
                    "started_at": r.started_at, "ended_at": r.ended_at,
                    "state": format!("{:?}", r.state()).to_lowercase(),
                    "end_reason": r.end_reason, "owner": r.owner,
                })
            })
            .collect::<Vec<_>>())
    })
    .await
    .map_err(Failure::api)?;
    // Without a database the page says why nothing is recorded.
    Ok(secure(
        Json(json!({"live": live, "recorded": recorded, "recordings_unavailable": store_error}))
            .into_response(),
    ))
}

async fn live_frame(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let live =
        live_session(&http, &headers, &id, Role::Read, "the dashboard").map_err(Failure::api)?;
    let frame = live.latest_frame().ok_or_else(|| {
        Failure::api(Error::NotFound(format!(
            "session `{id}` has no analysed frame yet"
        )))
    })?;
    let jpeg = match live.board.marked() {
        Some((t, jpeg)) if t == frame.timestamp => jpeg,
        _ => {
            let board = live.clone();
            blocking(move || {
                let marked = crate::vision::marks::render(
                    &frame.image,
                    &frame.faces.faces,
                    &crate::vision::marks::Layers::default(),
                );
                let jpeg = Arc::new(
                    crate::vision::marks::encode(&marked, crate::vision::marks::Encoding::Jpeg)
                        .map_err(Error::Internal)?,
                );
                board.board.set_marked(frame.timestamp, jpeg.clone());
                Ok(jpeg)
            })
            .await
            .map_err(Failure::api)?
        }
    };
    Ok(secure(
        (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg.as_ref().clone(),
        )
            .into_response(),
    ))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    context: String,
    #[serde(default)]
    max_tokens: u32,
}

async fn explain(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    live_session(&http, &headers, &id, Role::Stream, "Explain").map_err(Failure::api)?;
    let body: ExplainBody = if body.is_empty() {
        ExplainBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Failure::api(Error::InvalidArgument(format!(
                "the request body must be JSON with optional labels (list of text), context (text) and max_tokens (number): {e}"
            )))
        })?
    };
    let request = crate::explain::Request {
        labels: body.labels,
        context: body.context,
        max_tokens: body.max_tokens,
        include_image: true,
        ..Default::default()
    };
    let mut events = http
        .engine
        .explain(request, Some(ExplainSource::Session(id)))
        .await
        .map_err(Failure::api)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let sse = match event {
                Ok(crate::explain::ExplainEvent::Token(text)) => SseEvent::default()
                    .event("token")
                    .data(json!({"text": text}).to_string()),
                Ok(crate::explain::ExplainEvent::Result(result)) => SseEvent::default()
                    .event("result")
                    .data(crate::formats::explanation_json::explanation_json(&result).to_string()),
                Err(e) => SseEvent::default()
                    .event("error")
                    .data(json!({"error": e.to_string()}).to_string()),
            };
            // The browser left: dropping `events` cancels the generation.
            if tx.send(Ok(sse)).await.is_err() {
                return;
            }
        }
    });
    Ok(secure(
        Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
            .keep_alive(KeepAlive::default())
            .into_response(),
    ))
}

async fn overview(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let q = numbers(
        &query,
        &[
            ("from", "client clock, s"),
            ("to", "client clock, s"),
            ("points", "display points per series"),
        ],
    )
    .map_err(Failure::api)?;
    let points = match q.get("points") {
        None => DEFAULT_POINTS,
        Some(&p) if p >= 2.0 && p <= MAX_POINTS as f64 && p.fract() == 0.0 => p as usize,
        Some(p) => {
            return Err(Failure::api(Error::InvalidArgument(format!(
                "query parameter `points` must be a whole number from 2 to {MAX_POINTS}, got {p}"
            ))));
        }
    };
    let (from, to) = (q.get("from").copied(), q.get("to").copied());
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(Failure::api(Error::InvalidArgument(format!(
            "query parameter `from` ({from}) must be before `to` ({to})"
        ))));
    }
    let overview = blocking(move || {
        recording(&http, &headers, &id)?;
        crate::store::overview::overview(http.engine.store()?, &id, from, to, points).map_err(|e| {
            match e {
                crate::store::export::ExportError::Store(crate::store::StoreError::NotFound(_)) => {
                    Error::NotFound(e.to_string())
                }
                e => Error::Internal(e.to_string()),
            }
        })
    })
    .await
    .map_err(Failure::api)?;
    Ok(secure(Json(overview).into_response()))
}

/// A face as the face panel shows it: `formats::faces_json` without the landmarks, key
/// points and blendshapes (the marked frame shows where the face is).
pub fn face_panel_json(face: &crate::vision::FaceResult) -> Value {
    let mut value = crate::formats::faces_json::face_json(face);
    if let Value::Object(map) = &mut value {
        for key in ["landmarks", "keypoints", "blendshapes"] {
            map.remove(key);
        }
    }
    value
}

async fn recorded_moment(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Failure> {
    use base64::Engine as _;
    let q = numbers(&query, &[("t", "client clock, s")]).map_err(Failure::api)?;
    let t = *q.get("t").ok_or_else(|| {
        Failure::api(Error::InvalidArgument(
            "query parameter `t` is required: the time to show, client clock, s".into(),
        ))
    })?;
    let moment = blocking(move || {
        recording(&http, &headers, &id)?;
        http.engine.recorded_frame(&id, t)?.ok_or_else(|| {
            Error::NotFound(format!(
                "recording `{id}` has no analysed frame at or before {t} s (client clock)"
            ))
        })
    })
    .await
    .map_err(Failure::api)?;
    Ok(secure(
        Json(json!({
            "t": moment.timestamp,
            "image": format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(moment.jpeg)),
            "faces": moment.faces.iter().map(face_panel_json).collect::<Vec<_>>(),
        }))
        .into_response(),
    ))
}

async fn export_xdf(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    export(http, headers, id, ExportFormat::Xdf).await
}

async fn export_zip(
    State(http): State<Http>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    export(http, headers, id, ExportFormat::CsvZip).await
}

/// Bytes per piece of a download.
const DOWNLOAD_PIECE: usize = 1 << 20;

async fn export(
    http: Http,
    headers: HeaderMap,
    id: String,
    format: ExportFormat,
) -> Result<Response, Failure> {
    let turn = http.engine.export_turn().map_err(Failure::api)?;
    let name = format!(
        "{id}.{}",
        if format == ExportFormat::Xdf {
            "xdf"
        } else {
            "zip"
        }
    );
    let file = {
        let id = id.clone();
        blocking(move || {
            recording(&http, &headers, &id)?;
            http.engine.export_file(&id, format)
        })
        .await
        .map_err(Failure::api)?
    };
    // Read on a blocking thread a piece at a time; the turn is held to the last byte.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        crate::engine::Engine::send_export(file, DOWNLOAD_PIECE, |piece, _| {
            tx.blocking_send(piece.map_err(std::io::Error::other))
                .is_ok()
        });
    });
    let content_type = if format == ExportFormat::Xdf {
        "application/octet-stream"
    } else {
        "application/zip"
    };
    Ok(secure(
        (
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
            .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn query_numbers_name_the_parameter_and_what_it_must_be() {
        let allowed = [("t", "client clock, s")];
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            numbers(&q(&[("t", " 12.5 ")]), &allowed).unwrap()["t"],
            12.5
        );
        let e = numbers(&q(&[("t", "abc")]), &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`t`") && e.contains("client clock, s") && e.contains("\"abc\""),
            "{e}"
        );
        let e = numbers(&q(&[("t", "NaN")]), &allowed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("finite"), "{e}");
        let e = numbers(&q(&[("x", "1")]), &allowed)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown query parameter `x`") && e.contains("takes t"),
            "{e}"
        );
    }

    #[test]
    fn the_token_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; affectd_token=s3cret"),
        );
        assert_eq!(cookie(&headers, TOKEN_COOKIE), Some("s3cret"));
        assert_eq!(cookie(&headers, "b"), None);
    }
}
