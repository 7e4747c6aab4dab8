//! The request path's one error type, mapped to HTTP in exactly one place.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use clickstream_schema::signing::SignatureError;
use clickstream_schema::BatchError;

use crate::stream::StreamError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not an acceptable batch (4xx, not retried).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The stream could not durably take the events: retryable (503).
    #[error("the stream is unavailable: {0}")]
    StreamUnavailable(#[from] StreamError),
    #[error("ingest authentication failed: {}", .0.code())]
    Unauthorized(SignatureError),
    #[error("signature already used")]
    Replayed,
    #[error("ingest is disabled: configure an ingest secret (CLICKSTREAM_INGEST_SECRET)")]
    IngestDisabled,
    #[error("bad ingest body: {0}")]
    BadIngestBody(String),
    #[error("origin {origin} may not send events for site {site_id:?}")]
    OriginNotAllowed { origin: String, site_id: String },
    #[error("site {site_id:?} takes requests without an Origin only with its token (Authorization: Bearer)")]
    SiteTokenRequired { site_id: String },
    /// A token bucket is empty: the client, the site, or sign-in attempts.
    #[error("too many requests for this {scope}; retry in {retry_after_s} s")]
    RateLimited { scope: &'static str, retry_after_s: u32 },
    /// The stream did not acknowledge within the bound: shed, retryable.
    #[error("the stream did not acknowledge in time; retry shortly")]
    Overloaded,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the ingest replay store is unavailable")]
    ReplayStoreUnavailable,
}

impl ApiError {
    /// The reason code the answer and the metrics carry.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Batch(e) => (StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST), e.code()),
            ApiError::StreamUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "stream_unavailable"),
            ApiError::Unauthorized(e) => (StatusCode::UNAUTHORIZED, e.code()),
            ApiError::Replayed => (StatusCode::UNAUTHORIZED, "signature_replayed"),
            ApiError::IngestDisabled => (StatusCode::UNAUTHORIZED, "ingest_disabled"),
            ApiError::BadIngestBody(_) => (StatusCode::BAD_REQUEST, "invalid_ingest_body"),
            ApiError::OriginNotAllowed { .. } => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            ApiError::SiteTokenRequired { .. } => (StatusCode::FORBIDDEN, "site_token_required"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::ReplayStoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "replay_store_unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = self.status_and_code();
        let body = Json(serde_json::json!({ "error": code, "message": message }));
        // Tell the tracker (or the Worker) when to try again.
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        match retry_after {
            Some(seconds) => (status, [(header::RETRY_AFTER, seconds.to_string())], body).into_response(),
            None => (status, body).into_response(),
        }
    }
}
