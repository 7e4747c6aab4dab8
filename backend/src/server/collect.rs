//! `POST /v1/batch`: the collect core, mounted natively.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use clickstream_schema::{BadRow, BatchError, EnrichedEvent, RequestMeta};
use edge_worker::{collect, CollectResponse};

use super::{ApiError, AppState};
use crate::stream::{records_of, Record};

pub(super) async fn collect_batch(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<CollectResponse>, ApiError> {
    state.metrics.batches_received.fetch_add(1, Ordering::Relaxed);
    let result = admit_and_collect(&state, request).await;
    if let Err(e) = &result {
        state.metrics.batch_refused(e.code());
    }
    result
}

async fn admit_and_collect(state: &AppState, request: Request) -> Result<Json<CollectResponse>, ApiError> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let now = state.clock.now_ms();
    let ip = state.guard.proxies.client_ip(&parts.headers, peer).map(|ip| ip.to_string());
    state.guard.admit_client(ip.as_deref().unwrap_or("unknown"), now)?;
    let body = read_body(&parts.headers, body, state.collect.limits.max_body_bytes, state.guard.body_timeout).await?;
    let meta = RequestMeta {
        received_at: now,
        user_agent: header_str(&parts.headers, header::USER_AGENT.as_str()),
        ip,
        country: state.country_header.as_deref().and_then(|h| header_str(&parts.headers, h)),
        ..RequestMeta::default()
    };
    // The accepted events borrow from `body` and `meta` until they are stored.
    let collected = collect(&body, &meta, &state.collect)?;
    state.guard.admit_sender(&collected.site_id, &parts.headers)?;
    state.guard.admit_site(&collected.site_id, collected.accepted.len() + collected.bad_rows.len(), now)?;
    store(state, &collected.accepted, &collected.bad_rows).await?;
    Ok(Json(collected.response()))
}

/// Appends accepted events and bad rows in one durable produce, and counts
/// them only once the stream acknowledged.
pub(super) async fn store(state: &AppState, events: &[EnrichedEvent<'_>], bad_rows: &[BadRow]) -> Result<(), ApiError> {
    store_records(state, records_of(events, bad_rows), events.len(), bad_rows).await
}

/// [`store`] for records already encoded: `events` of them are accepted
/// events, the rest the `bad_rows`.
pub(super) async fn store_records(
    state: &AppState,
    records: Vec<Record>,
    events: usize,
    bad_rows: &[BadRow],
) -> Result<(), ApiError> {
    if records.is_empty() {
        return Ok(());
    }
    // Shed load rather than hang: a stream that does not acknowledge within
    // the bound gets a 503 the sender retries (its events keep their ids, so
    // a late acknowledgement of this attempt is deduplicated in Silver).
    match tokio::time::timeout(state.guard.ack_timeout, state.stream.produce(records)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            state.metrics.stream_unavailable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "produce failed; answering 503");
            return Err(e.into());
        }
        Err(_) => {
            state.metrics.stream_unavailable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                bound_ms = state.guard.ack_timeout.as_millis() as u64,
                "the stream did not acknowledge in time; answering 503"
            );
            return Err(ApiError::Overloaded);
        }
    }
    state.metrics.events_accepted.fetch_add(events as u64, Ordering::Relaxed);
    for row in bad_rows {
        state.metrics.event_rejected(&row.reason, 1);
    }
    Ok(())
}

/// Reads the body up to `limit` bytes within `within`; a larger body is
/// refused with 413 before it is read whole when its length is announced,
/// and a client that trickles it is cut off with 408.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    within: Duration,
) -> Result<axum::body::Bytes, ApiError> {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(BatchError::BodyTooLarge { limit }.into());
    }
    match tokio::time::timeout(within, to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(BatchError::BodyTooLarge { limit }.into()),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

pub(super) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string).filter(|s| !s.is_empty())
}
