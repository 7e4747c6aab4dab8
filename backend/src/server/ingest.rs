//! `POST /ingest`: batches the edge Worker already validated and enriched,
//! authenticated by an HMAC signature over timestamp and body.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::Json;
use clickstream_schema::signing::{self, MAX_SIGNATURE_AGE_MS, SIGNATURE_HEADER, TIMESTAMP_HEADER};
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
    let body = read_body(&parts.headers, body, state.collect.limits.max_body_bytes * INGEST_BODY_FACTOR).await?;
    let now = state.clock.now_ms();
    match &state.ingest_auth {
        IngestAuth::Disabled => return Err(ApiError::IngestDisabled),
        IngestAuth::Unsigned => {}
        IngestAuth::Signed(secret) => {
            let signature = header_str(&parts.headers, SIGNATURE_HEADER);
            signing::verify(
                secret,
                header_str(&parts.headers, TIMESTAMP_HEADER).as_deref(),
                signature.as_deref(),
                &body,
                now,
            )
            .map_err(ApiError::Unauthorized)?;
            let mut seen = state.seen_signatures.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|_, at| now - *at <= 2 * MAX_SIGNATURE_AGE_MS);
            if seen.insert(signature.unwrap_or_default(), now).is_some() {
                return Err(ApiError::Replayed);
            }
        }
    }
    let batch: IngestBatch = serde_json::from_slice(&body).map_err(|e| ApiError::BadIngestBody(e.to_string()))?;
    store(&state, &batch.events, &batch.bad_rows).await?;
    Ok(Json(serde_json::json!({ "accepted": batch.events.len(), "rejected": batch.bad_rows.len() })))
}
