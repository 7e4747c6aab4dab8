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
use clickstream_schema::ingest::{decode_ingest, decode_ingest_json, INGEST_RECORDS_TYPE};
use clickstream_schema::signing::{SignedHeaders, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use super::collect::{header_str, read_body, store, store_records};
use super::{ApiError, AppState, IngestAuth};
use crate::stream::{records_of, Record, Topic};

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
    let (accepted, rejected) = if header_str(&parts.headers, "content-type").as_deref() == Some(INGEST_RECORDS_TYPE) {
        // Each event is the stream record the Worker wrote: checked to read
        // as one, then appended as it came.
        let batch = decode_ingest(&body).map_err(|e| ApiError::BadIngestBody(e.to_string()))?;
        let records = batch
            .events
            .iter()
            .map(|e| Record { topic: Topic::Events, key: e.anonymous_id.as_bytes().to_vec(), value: e.record.to_vec() })
            .chain(records_of(&[], &batch.bad_rows))
            .collect();
        store_records(&state, records, batch.events.len(), &batch.bad_rows).await?;
        (batch.events.len(), batch.bad_rows.len())
    } else {
        // The JSON body of Workers deployed before the binary one.
        let batch = decode_ingest_json(&body).map_err(|e| ApiError::BadIngestBody(e.to_string()))?;
        store(&state, &batch.events, &batch.bad_rows).await?;
        (batch.events.len(), batch.bad_rows.len())
    };
    Ok(Json(serde_json::json!({ "accepted": accepted, "rejected": rejected })))
}
