//! The HTTP surface of `clickstream serve`: `POST /v1/batch` (the collect
//! core, for browsers), `POST /ingest` (for the edge Worker), `GET /health`,
//! `GET /metrics`, `/dashboard` with its `GET /api/...` (see [`crate::api`]),
//! and the demo site's static files and catalog.

mod collect;
mod error;
mod ingest;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_worker::CollectConfig;
use tower_http::cors::{Any, CorsLayer};
use axum::handler::HandlerWithoutStateExt;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

pub use error::ApiError;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::stream::EventStream;

/// How `/ingest` authenticates the edge.
#[derive(Clone, Debug)]
pub enum IngestAuth {
    /// HMAC-SHA256 signatures with this shared secret (the default when a
    /// secret is configured).
    Signed(Vec<u8>),
    /// Unsigned requests accepted: only for local use, and only when asked
    /// for explicitly.
    Unsigned,
    /// No secret configured: `/ingest` refuses everything.
    Disabled,
}

/// Where the visitor's IP comes from. Locally every request comes from
/// 127.0.0.1; behind a trusted proxy the proxy's header is the truth.
#[derive(Clone, Debug)]
pub enum ClientIp {
    Peer,
    /// First address of this header (for example `x-forwarded-for`), only
    /// when the operator trusts the proxy that sets it.
    Header(String),
}

pub struct AppState {
    pub stream: Arc<dyn EventStream>,
    pub collect: CollectConfig,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub ingest_auth: IngestAuth,
    pub client_ip: ClientIp,
    /// Header carrying the visitor's country (set by the CDN in front).
    pub country_header: Option<String>,
    pub site_dir: Option<PathBuf>,
    /// The built tracker's folder, served at the path beside it.
    pub tracker: Option<(PathBuf, String)>,
    /// Another path for `POST /v1/batch`.
    pub collect_path: Option<String>,
    /// Signatures seen at `/ingest` within their validity, to refuse replays.
    pub(crate) seen_signatures: Mutex<HashMap<String, i64>>,
    /// The data directory the dashboard's API reads; `None` answers
    /// `no_data`.
    pub data_dir: Option<PathBuf>,
    /// The currency the dashboard shows revenue in.
    pub currency: String,
}

impl AppState {
    pub fn new(stream: Arc<dyn EventStream>, collect: CollectConfig, metrics: Arc<Metrics>, clock: Arc<dyn Clock>) -> Self {
        AppState {
            stream,
            collect,
            metrics,
            clock,
            ingest_auth: IngestAuth::Disabled,
            client_ip: ClientIp::Peer,
            country_header: Some("cf-ipcountry".into()),
            site_dir: None,
            tracker: None,
            collect_path: None,
            seen_signatures: Mutex::new(HashMap::new()),
            data_dir: None,
            currency: "EUR".into(),
        }
    }

    fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<String> {
        match &self.client_ip {
            ClientIp::Peer => peer.map(|p| p.ip().to_string()),
            ClientIp::Header(name) => headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .or_else(|| peer.map(|p| p.ip().to_string())),
        }
    }
}

/// The router; tests call it with `oneshot`, `serve` binds it to a socket.
pub fn app(state: Arc<AppState>) -> Router {
    // Browsers post batches cross-origin; `text/plain` bodies (sendBeacon)
    // need no preflight, JSON ones do.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    let mut collect_routes = Router::new().route("/v1/batch", post(collect::collect_batch));
    if let Some(path) = &state.collect_path {
        collect_routes = collect_routes.route(path, post(collect::collect_batch));
    }
    let collect_routes = collect_routes.layer(cors);
    let mut router = Router::new()
        .merge(collect_routes)
        .route("/ingest", post(ingest::ingest))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(crate::api::routes())
        // The handlers enforce their own, configurable, limits with a
        // JSON answer; axum's default 2 MB limit would answer first.
        .layer(DefaultBodyLimit::disable());
    if let Some((dir, path)) = &state.tracker {
        router = router.nest_service(path, ServeDir::new(dir));
    }
    if let Some(dir) = &state.site_dir {
        // A path with no file of its own, and no extension, gets the site's
        // index.html: a site that routes in the browser (the demo shop's
        // /p/42, /c/shoes, /cart) then loads on any of its URLs, while a
        // missing script or image is still a 404.
        let index = dir.join("index.html");
        let page = move |req: axum::extract::Request| async move {
            let last = req.uri().path().rsplit('/').next().unwrap_or_default();
            if last.contains('.') {
                return StatusCode::NOT_FOUND.into_response();
            }
            ServeFile::new(&index).oneshot(req).await.into_response()
        };
        let files = ServeDir::new(dir).append_index_html_on_directories(true).fallback(page.into_service());
        router = router.route("/demo/catalog.js", get(demo_catalog)).fallback_service(files);
    }
    router.with_state(state)
}

/// The demo shop's products: the traffic generator's catalog.
async fn demo_catalog() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], crate::generate::shop_module())
}

async fn health(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let partitions = state.stream.partitions(crate::stream::Topic::Events);
    Json(serde_json::json!({ "status": "ok", "stream_partitions": partitions }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}
