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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code) = match &self {
            ApiError::Batch(e) => (StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST), e.code()),
            ApiError::StreamUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "stream_unavailable"),
            ApiError::Unauthorized(e) => (StatusCode::UNAUTHORIZED, e.code()),
            ApiError::Replayed => (StatusCode::UNAUTHORIZED, "signature_replayed"),
            ApiError::IngestDisabled => (StatusCode::UNAUTHORIZED, "ingest_disabled"),
            ApiError::BadIngestBody(_) => (StatusCode::BAD_REQUEST, "invalid_ingest_body"),
        };
        let body = Json(serde_json::json!({ "error": code, "message": message }));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Tell the tracker (or the Worker) when to try again.
            return (status, [(header::RETRY_AFTER, "1")], body).into_response();
        }
        (status, body).into_response()
    }
}
