//! `GET /api/...`: the dashboard's numbers, read from the Gold tables (and
//! the rejects table) for a time range ending now. Every endpoint answers
//! JSON; a bad parameter is a 400 that names it, and a data directory the
//! aggregator has not written Gold into yet is a 503 `no_data`, which the
//! dashboard shows as an empty state. The endpoints and their fields are
//! listed in `docs/api.md`.

mod charts;
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
    ("/api/bots", &["limit"], charts::bots),
    ("/api/rejects", &[], charts::rejects),
    ("/api/sites", &[], charts::sites),
];

/// The API's routes, and `/dashboard`, the page that shows them.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new().route("/dashboard", get(dashboard));
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

/// The dashboard: one self-contained page (its charts are drawn as SVG by
/// its own script), built into the binary so it works offline.
async fn dashboard() -> impl IntoResponse {
    axum::response::Html(include_str!("../../assets/dashboard.html"))
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
