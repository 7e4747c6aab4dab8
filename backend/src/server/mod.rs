//! The HTTP surface of `clickstream serve`: `POST /v1/batch` (the collect
//! core, for browsers), `POST /ingest` (for the edge Worker), `GET /health`,
//! `GET /metrics`, `/dashboard` with its `GET /api/...` (see [`crate::api`]),
//! and the demo site's static files and catalog.

pub mod auth;
mod collect;
mod error;
pub mod guard;
mod ingest;
pub mod listen;
pub mod seen_signatures;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edge_worker::CollectConfig;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

pub use auth::{Access, Tokens};
pub use error::ApiError;
pub use guard::{CollectGuard, TrustedProxies};
pub use seen_signatures::SeenSignatures;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::stream::EventStream;

/// How `/ingest` authenticates the edge.
#[derive(Clone, Debug)]
pub enum IngestAuth {
    /// HMAC-SHA256 signatures with any of these shared secrets (two while
    /// one is being rotated).
    Signed(Vec<crate::secrets::Redacted<Vec<u8>>>),
    /// Unsigned requests accepted: only for local use, and only when asked
    /// for explicitly.
    Unsigned,
    /// No secret configured: `/ingest` refuses everything.
    Disabled,
}

pub struct AppState {
    pub stream: Arc<dyn EventStream>,
    pub collect: CollectConfig,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub ingest_auth: IngestAuth,
    /// Who may read the dashboard, `/api/*` and `/metrics`.
    pub access: Access,
    /// The collect routes' origins, tokens, rate limits and time bounds.
    pub guard: CollectGuard,
    /// Header carrying the visitor's country (set by the CDN in front).
    pub country_header: Option<String>,
    /// A static site served at `/` (the demo shop, by `clickstream demo`).
    pub site_dir: Option<PathBuf>,
    /// The built tracker's folder, served at the path beside it.
    pub tracker: Option<(PathBuf, String)>,
    /// Another path for `POST /v1/batch`.
    pub collect_path: Option<String>,
    /// Signatures seen at `/ingest` within their validity, to refuse replays.
    pub seen_signatures: SeenSignatures,
    /// The data directory the dashboard's API reads; `None` answers
    /// `no_data`.
    pub data_dir: Option<PathBuf>,
    /// The currency the dashboard shows revenue in.
    pub currency: String,
    /// The time zones the dashboard's days start in.
    pub zones: std::sync::Arc<crate::api::Zones>,
}

impl AppState {
    /// Private by default: no token is configured, so only the collect
    /// routes answer until one is.
    pub fn new(
        stream: Arc<dyn EventStream>,
        collect: CollectConfig,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        AppState {
            stream,
            collect,
            metrics,
            clock,
            ingest_auth: IngestAuth::Disabled,
            access: Access::Tokens(Tokens::default()),
            guard: CollectGuard::default(),
            country_header: Some("cf-ipcountry".into()),
            site_dir: None,
            tracker: None,
            collect_path: None,
            seen_signatures: SeenSignatures::in_memory(),
            data_dir: None,
            currency: "EUR".into(),
            zones: Default::default(),
        }
    }

    /// One sign-in attempt of the request's client, or the 429 to answer.
    #[allow(clippy::result_large_err)] // the error is the answer, once per sign-in
    fn limit_sign_in(&self, request: &Request) -> Result<(), Response> {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let client = self.guard.proxies.client_ip(request.headers(), peer).map(|ip| ip.to_string());
        self.guard
            .admit_sign_in(client.as_deref().unwrap_or("unknown"), self.clock.now_ms())
            .map_err(IntoResponse::into_response)
    }
}

/// The router; tests call it with `oneshot`, `serve` binds it to a socket.
///
/// Public: the collect routes, `/ingest` (signed), `/health`, the tracker's
/// files and, in the demo, the demo shop. Everything else passes
/// [`auth::require_access`] first.
pub fn app(state: Arc<AppState>) -> Router {
    // Browsers post batches cross-origin; `text/plain` bodies (sendBeacon)
    // need no preflight, JSON ones do. A preflight passes for an origin
    // allowed for some site; the batch's own site is judged on arrival.
    let origins = state.guard.origins.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| origins.allows_any_site(o))
        }))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    let mut collect_routes = Router::new().route("/v1/batch", post(collect::collect_batch));
    if let Some(path) = &state.collect_path {
        collect_routes = collect_routes.route(path, post(collect::collect_batch));
    }
    let collect_routes = collect_routes.layer(cors);
    let private = Router::new()
        .route("/metrics", get(metrics))
        .route("/auth/logout", post(auth::logout))
        .merge(crate::api::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_access));
    let mut router = Router::new()
        .merge(collect_routes)
        .route("/ingest", post(ingest::ingest))
        .route("/health", get(health))
        .route("/auth/login", post(auth::login))
        .merge(private)
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

/// The admin listener (`--admin-bind`): `/metrics` and `/health` only, for
/// a Prometheus on a private network. `/metrics` still asks for a token
/// when metrics tokens are configured.
pub fn admin_app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_metrics_token))
        .route("/health", get(health))
        .with_state(state)
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
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}
