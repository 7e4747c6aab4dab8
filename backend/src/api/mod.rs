//! `GET /api/...`: the dashboard's numbers, read from the Gold tables (and
//! the rejects table) for a time range ending now. Every endpoint answers
//! JSON; a bad parameter is a 400 that names it, and a data directory the
//! aggregator has not written Gold into yet is a 503 `no_data`, which the
//! dashboard shows as an empty state. The endpoints and their fields are
//! listed in `docs/api.md`.

mod charts;
mod engagement;
mod goals;
mod paths;
mod range;
mod retention;
mod sources;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use polars::prelude::PolarsError;
use serde_json::Value;

pub use range::{iso, Params, Range, Zones};

use crate::server::AppState;

/// What an endpoint reads: the data directory, the time (injected: tests
/// fix it) and the display settings.
#[derive(Clone, Debug)]
pub struct Context {
    pub data_dir: PathBuf,
    pub now: i64,
    /// The currency revenue is shown in (Gold does not convert).
    pub currency: String,
    /// Where days start, per site.
    pub zones: Arc<Zones>,
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{0}")]
    BadParameter(String),
    #[error("no {0} data yet: the aggregator has not written it (send some traffic first)")]
    NoData(&'static str),
    #[error("reading the tables failed: {0}")]
    Polars(#[from] PolarsError),
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            DashboardError::BadParameter(_) => (StatusCode::BAD_REQUEST, "bad_parameter"),
            DashboardError::NoData(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_data"),
            DashboardError::Polars(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "dashboard query failed");
        }
        (status, Json(serde_json::json!({ "error": code, "message": self.to_string() }))).into_response()
    }
}

/// Every endpoint answers `no_data` until the aggregator wrote Gold.
fn require_gold(data_dir: &std::path::Path) -> Result<(), DashboardError> {
    if crate::storage::range::has_gold(data_dir) {
        Ok(())
    } else {
        Err(DashboardError::NoData("Gold"))
    }
}

type Endpoint = fn(&Context, &Params) -> Result<Value, DashboardError>;

/// One endpoint: its path, the parameters it takes besides `range` and
/// `site`, and the function that answers it.
const ENDPOINTS: &[(&str, &[&str], Endpoint)] = &[
    ("/api/summary", &[], summary::summary),
    ("/api/traffic", &[], charts::traffic),
    ("/api/revenue", &["top"], charts::revenue),
    ("/api/top_pages", &["limit"], charts::top_pages),
    ("/api/funnel", &[], charts::funnel),
    ("/api/sessions/breakdown", &["by"], charts::sessions_breakdown),
    ("/api/pages", &["limit"], paths::pages),
    ("/api/next_pages", &["page", "limit"], paths::next_pages),
    ("/api/sources", &["limit", "channel"], sources::sources),
    ("/api/retention", &["period"], retention::retention),
    ("/api/goals", &[], goals::goals),
    ("/api/custom_events", &["limit"], goals::custom_events),
    ("/api/links", &["limit"], goals::links),
    ("/api/engagement", &["limit"], engagement::engagement),
    ("/api/bots", &["limit"], charts::bots),
    ("/api/rejects", &[], charts::rejects),
    ("/api/sites", &[], charts::sites),
];

/// The API's routes, and `/dashboard`, the page that shows them.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router =
        Router::new().route("/dashboard", get(dashboard)).route("/dashboard/app.js", get(dashboard_script));
    for &(path, allowed, endpoint) in ENDPOINTS {
        router = router.route(
            path,
            get(move |State(state): State<Arc<AppState>>, Query(query): Query<HashMap<String, String>>| {
                answer(state, path, query, allowed, endpoint)
            }),
        );
    }
    router
}

/// What the dashboard's pages may load and do: only serve's own script
/// (no inline script, so a visitor's text that slipped into the page could
/// not run), styles inline or its own (ECharts styles its SVG and tooltips
/// inline), images from itself or data: URLs (the icons), requests to
/// itself; no framing (clickjacking), no other form target.
pub const PAGE_SECURITY_HEADERS: [(axum::http::HeaderName, &str); 3] = [
    (
        axum::http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (axum::http::header::REFERRER_POLICY, "no-referrer"),
];

/// The dashboard: one page and its script (with the charting library),
/// built into the binary so it works offline and needs no CDN.
async fn dashboard() -> impl IntoResponse {
    (PAGE_SECURITY_HEADERS, axum::response::Html(include_str!("../../assets/dashboard.html")))
}

/// assets/dashboard.js bundled with ECharts by build.rs: 660 KB, 230 KB
/// gzipped, sent gzipped to every browser that says it takes gzip. Asked
/// again each load (`no-cache`), and answered 304 while the ETag matches.
async fn dashboard_script(headers: axum::http::HeaderMap) -> Response {
    use axum::http::header;
    const JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dashboard.js"));
    const GZIPPED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/dashboard.js.gz"));
    const ETAG: &str = env!("CLICKSTREAM_DASHBOARD_ETAG");
    let common = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, ETAG),
        (header::VARY, "Accept-Encoding"),
    ];
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == ETAG
        })
    });
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|e| e.split(';').next().is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip")))
    });
    if gzip {
        (common, [(header::CONTENT_ENCODING, "gzip")], GZIPPED).into_response()
    } else {
        (common, JS).into_response()
    }
}

async fn answer(
    state: Arc<AppState>,
    path: &'static str,
    query: HashMap<String, String>,
    allowed: &'static [&'static str],
    endpoint: Endpoint,
) -> Response {
    let Some(data_dir) = state.data_dir.clone() else {
        return DashboardError::NoData("Gold").into_response();
    };
    let context =
        Context { data_dir, now: state.clock.now_ms(), currency: state.currency.clone(), zones: state.zones.clone() };
    let started = Instant::now();
    // Polars work is CPU-bound: off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let params = Params::parse(&query, allowed, context.now, &context.zones)?;
        crate::storage::scan::retry_on_swap(&context.data_dir, || endpoint(&context, &params))
    })
    .await;
    state.metrics.observe_api(path, started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => {
            DashboardError::Polars(PolarsError::ComputeError(format!("query task failed: {e}").into())).into_response()
        }
    }
}
