//! `POST /ingest`: batches the edge Worker already validated and enriched,
//! authenticated by an HMAC signature over timestamp and body.
//!
//! The order is the defence: the signature's headers are checked (present,
//! well-formed, fresh) before any of the body is read; the body is read up
//! to a bound and within a time; the MAC is checked against each valid
//! secret; only then is the signature recorded as used, so forged requests
//! cannot fill the replay store.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use clickstream_schema::signing::{SignedHeaders, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use clickstream_schema::IngestBatch;

use super::collect::{header_str, read_body, store};
use super::{ApiError, AppState, IngestAuth};

/// The Worker's batches are at most a tracker batch plus enrichment; allow
/// generous headroom over the collect limit.
const INGEST_BODY_FACTOR: usize = 4;

pub(super) async fn ingest(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.metrics.batches_received.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let now = state.clock.now_ms();
    let limit = state.collect.limits.max_body_bytes * INGEST_BODY_FACTOR;
    let body = match &state.ingest_auth {
        IngestAuth::Disabled => return Err(ApiError::IngestDisabled),
        IngestAuth::Unsigned => read_body(&parts.headers, body, limit, state.guard.body_timeout).await?,
        IngestAuth::Signed(secrets) => {
            let signed = SignedHeaders::read(
                header_str(&parts.headers, TIMESTAMP_HEADER).as_deref(),
                header_str(&parts.headers, SIGNATURE_HEADER).as_deref(),
                now,
            )
            .map_err(ApiError::Unauthorized)?;
            let body = read_body(&parts.headers, body, limit, state.guard.body_timeout).await?;
            let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.0.as_slice()).collect();
            signed.verify(&secrets, &body).map_err(ApiError::Unauthorized)?;
            match state.seen_signatures.first_use(&signed.mac, signed.timestamp_ms, now) {
                Ok(true) => {}
                Ok(false) => return Err(ApiError::Replayed),
                Err(e) => {
                    // Without the store a replay could pass: refuse, retryably.
                    tracing::error!(error = %e, "cannot record the ingest signature; answering 503");
                    return Err(ApiError::ReplayStoreUnavailable);
                }
            }
            body
        }
    };
    let batch: IngestBatch = serde_json::from_slice(&body).map_err(|e| ApiError::BadIngestBody(e.to_string()))?;
    store(&state, &batch.events, &batch.bad_rows).await?;
    Ok(Json(serde_json::json!({ "accepted": batch.events.len(), "rejected": batch.bad_rows.len() })))
}
