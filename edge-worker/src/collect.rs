//! The collect core: validate and enrich one batch.

use std::borrow::Cow;
use std::collections::HashSet;

use clickstream_schema::{
    enrich_with, parse_batch, BadRow, BatchError, DailySalt, EnrichedEvent, Limits, RejectReason, Rejection,
    RequestFacts, RequestMeta, ValidEvent,
};
use serde::{Deserialize, Serialize};

/// How the collector judges and enriches batches.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    pub limits: Limits,
    pub ip_salt: DailySalt,
    /// Recorded in bad rows: where validation ran (`edge` or `backend`).
    pub source: &'static str,
}

impl CollectConfig {
    pub fn new(ip_salt_secret: impl Into<Vec<u8>>, source: &'static str) -> Self {
        CollectConfig { limits: Limits::default(), ip_salt: DailySalt::new(ip_salt_secret), source }
    }
}

/// The outcome of one batch: what to store, and what to answer. The
/// accepted events borrow from the request's body and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Collected<'a> {
    pub site_id: Cow<'a, str>,
    pub accepted: Vec<EnrichedEvent<'a>>,
    pub bad_rows: Vec<BadRow>,
}

/// The body of a 200 answer: how many events were accepted and why the
/// others were not, so a site owner can fix their tracking.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectResponse {
    pub accepted: usize,
    pub rejected: usize,
    pub errors: Vec<EventError>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventError {
    /// Position of the event in the batch.
    pub index: u32,
    pub event_id: Option<String>,
    pub reason: String,
    pub detail: String,
}

impl Collected<'_> {
    pub fn response(&self) -> CollectResponse {
        CollectResponse {
            accepted: self.accepted.len(),
            rejected: self.bad_rows.len(),
            errors: self
                .bad_rows
                .iter()
                .map(|row| EventError {
                    index: row.index,
                    event_id: row.event_id.clone(),
                    reason: row.reason.clone(),
                    detail: row.detail.clone(),
                })
                .collect(),
        }
    }
}

/// Validates and enriches one batch.
///
/// A body that is not a batch is refused whole ([`BatchError`]); inside a
/// valid batch every event is judged on its own: the valid ones are
/// enriched, the others become bad rows, and none is dropped.
pub fn collect<'a>(body: &'a [u8], meta: &'a RequestMeta, config: &CollectConfig) -> Result<Collected<'a>, BatchError> {
    let batch = parse_batch(body, &config.limits)?;
    let facts = RequestFacts::new(meta, &batch.site_id, &config.ip_salt);
    let texts: Vec<&str> = batch.events.iter().map(|e| e.json).collect();
    let mut verdicts: Vec<Result<ValidEvent, Rejection>> =
        batch.events.into_iter().map(|e| e.validate(batch.sent_at, meta.received_at, &config.limits)).collect();
    // A later copy of a valid event's id is refused; the first one stands.
    let repeated: Vec<usize> = {
        let mut seen = HashSet::with_capacity(verdicts.len());
        let ids = verdicts.iter().enumerate().filter_map(|(i, v)| Some((i, &*v.as_ref().ok()?.event_id)));
        ids.filter(|(_, id)| !seen.insert(*id)).map(|(i, _)| i).collect()
    };
    for i in repeated {
        let id = verdicts[i].as_ref().map(|e| e.event_id.to_string()).unwrap_or_default();
        verdicts[i] = Err(Rejection {
            reason: RejectReason::DuplicateEventId,
            detail: format!("event_id {id:?} appears earlier in this batch"),
        });
    }

    let mut accepted = Vec::with_capacity(verdicts.len());
    let mut bad_rows = Vec::new();
    for (index, (verdict, json)) in verdicts.into_iter().zip(texts).enumerate() {
        match verdict {
            Ok(event) => accepted.push(enrich_with(event, json, &batch.site_id, batch.sent_at, &facts)),
            Err(rejection) => bad_rows.push(BadRow::new(
                &rejection,
                json,
                meta.received_at,
                &batch.site_id,
                index as u32,
                config.source,
            )),
        }
    }
    Ok(Collected { site_id: batch.site_id, accepted, bad_rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_732_262_400_000;

    fn meta() -> RequestMeta {
        RequestMeta {
            received_at: NOW,
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into()),
            ip: Some("198.51.100.4".into()),
            country: Some("FR".into()),
            ..RequestMeta::default()
        }
    }

    fn page_view(id: &str) -> serde_json::Value {
        json!({"event_id": id, "event_type": "page_view", "ts": NOW - 2000, "anonymous_id": "a-1",
               "session_id": "s-1", "page": {"url": "https://shop.example/?utm_source=x", "path": "/"}})
    }

    #[test]
    fn a_mixed_batch_keeps_the_valid_events_and_reports_the_others() {
        let body = json!({"v": 1, "site_id": "shop-1", "sent_at": NOW - 1000, "events": [
            page_view("e-1"),
            {"event_type": "page_view"},
            page_view("e-2"),
            page_view("e-1"),
            "garbage",
        ]});
        let (body, meta) = (body.to_string(), meta());
        let out = collect(body.as_bytes(), &meta, &CollectConfig::new("k", "backend")).unwrap();
        let ids: Vec<_> = out.accepted.iter().map(|e| &*e.event_id).collect();
        assert_eq!(ids, ["e-1", "e-2"]);
        // Skew: the client clock is 1 s behind the server's.
        assert_eq!(out.accepted[0].event_ts, NOW - 1000);
        assert_eq!(out.accepted[0].country.as_deref(), Some("FR"));
        assert_eq!(out.accepted[0].utm_source.as_deref(), Some("x"));
        let reasons: Vec<_> = out.bad_rows.iter().map(|r| (r.index, r.reason.as_str())).collect();
        assert_eq!(reasons, [(1, "missing_event_id"), (3, "duplicate_event_id"), (4, "not_an_object")]);
        assert_eq!(out.bad_rows[1].event_id.as_deref(), Some("e-1"));
        assert_eq!(out.bad_rows[1].anonymous_id.as_deref(), Some("a-1"));
        assert_eq!(out.bad_rows[2].payload, "\"garbage\"");
        assert!(out.bad_rows.iter().all(|r| r.source == "backend" && r.received_at == NOW && r.site_id == "shop-1"));

        let response = out.response();
        assert_eq!((response.accepted, response.rejected), (2, 3));
        assert_eq!(response.errors[0].reason, "missing_event_id");
    }

    #[test]
    fn a_bad_envelope_is_refused_whole() {
        let cfg = CollectConfig::new("k", "backend");
        assert_eq!(collect(b"nope", &meta(), &cfg).unwrap_err().code(), "malformed_json");
        let v2 = json!({"v": 2, "site_id": "s", "events": [page_view("e-1")]});
        assert_eq!(collect(v2.to_string().as_bytes(), &meta(), &cfg).unwrap_err().code(), "unsupported_version");
    }

    #[test]
    fn an_empty_batch_is_fine() {
        let meta = meta();
        let out = collect(br#"{"v":1,"site_id":"s","events":[]}"#, &meta, &CollectConfig::new("k", "edge")).unwrap();
        assert_eq!(out.response(), CollectResponse { accepted: 0, rejected: 0, errors: vec![] });
    }
}
