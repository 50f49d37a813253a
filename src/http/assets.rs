//! The dashboard's files, built into the binary: its own page code (`dashboard/app.js`,
//! `dashboard/app.css`) and uPlot from the npm registry (`build.rs` installs it by the lock
//! file in `dashboard/`; without npm the binary is built without it and these answer 503).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

mod built {
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

const APP_JS: &[u8] = include_bytes!("dashboard/app.js");
const APP_CSS: &[u8] = include_bytes!("dashboard/app.css");

pub async fn asset(Path(file): Path<String>) -> Response {
    let (content, content_type) = match file.as_str() {
        "app.js" => (Some(APP_JS), "text/javascript; charset=utf-8"),
        "app.css" => (Some(APP_CSS), "text/css; charset=utf-8"),
        "uPlot.iife.min.js" => (built::UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (built::UPLOT_CSS, "text/css; charset=utf-8"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("no dashboard asset `{file}`\n"),
            )
                .into_response();
        }
    };
    match content {
        Some(bytes) => super::dashboard::secure(
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    // Built into this binary: fresh for as long as it runs.
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                bytes,
            )
                .into_response(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", built::MISSING),
        )
            .into_response(),
    }
}
