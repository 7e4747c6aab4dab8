//! What the Worker decides, in plain Rust so it is tested natively: its
//! configuration from `wrangler.toml`'s `[vars]` and secrets, which origins
//! may post for a site, the per-visitor rate limit, the signed request to
//! the backend's `/ingest`, and what the tracker is answered. `worker.rs`
//! only moves these between the Workers runtime and here.

use std::collections::HashMap;

use clickstream_schema::signing::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use clickstream_schema::IngestBatch;
use serde::Deserialize;

use crate::{CollectConfig, Collected};

/// Seconds the tracker is told to wait when the backend cannot take a batch.
pub const BACKEND_RETRY_AFTER_S: u32 = 5;

/// The Worker's settings.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// The backend's `/ingest` (`BACKEND_INGEST_URL`).
    pub ingest_url: String,
    /// Shared with `clickstream serve --ingest-secret` (secret `INGEST_SECRET`).
    pub ingest_secret: Vec<u8>,
    pub collect: CollectConfig,
    pub origins: AllowedOrigins,
    /// Requests per minute one visitor (client IP) may make to one
    /// isolate (`RATE_LIMIT_PER_MINUTE`, 120; 0 turns it off).
    pub rate_per_minute: u32,
}

impl EdgeConfig {
    /// From the Worker's vars and secrets (`var` looks up either). The
    /// error names what is missing or wrong, for the operator's log.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<EdgeConfig, String> {
        let required = |name: &str| var(name).filter(|v| !v.is_empty()).ok_or(format!("{name} is not set"));
        let ingest_url = required("BACKEND_INGEST_URL")?;
        let ingest_secret = required("INGEST_SECRET")?.into_bytes();
        let mut collect = CollectConfig::new(required("IP_SALT_SECRET")?, "edge");
        if let Some(max) = var("MAX_BODY_BYTES") {
            collect.limits.max_body_bytes = max.trim().parse().map_err(|_| format!("MAX_BODY_BYTES: not a number: {max:?}"))?;
        }
        let origins = match var("ALLOWED_ORIGINS") {
            Some(json) => AllowedOrigins::parse(&json)?,
            None => AllowedOrigins::any(),
        };
        let rate_per_minute = match var("RATE_LIMIT_PER_MINUTE") {
            Some(n) => n.trim().parse().map_err(|_| format!("RATE_LIMIT_PER_MINUTE: not a number: {n:?}"))?,
            None => 120,
        };
        Ok(EdgeConfig { ingest_url, ingest_secret, collect, origins, rate_per_minute })
    }
}

/// Which page origins may post batches for which site:
/// `ALLOWED_ORIGINS = '{"shop-1": ["https://shop.example"], "*": ["*"]}'`.
/// A site not listed falls under `"*"`; without `"*"` it is refused. `"*"`
/// as an origin allows any. Requests without an `Origin` header do not come
/// from a page's script (servers, the traffic generator) and are not
/// judged by it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AllowedOrigins(HashMap<String, Vec<String>>);

impl AllowedOrigins {
    pub fn any() -> AllowedOrigins {
        AllowedOrigins(HashMap::from([("*".to_string(), vec!["*".to_string()])]))
    }

    pub fn parse(json: &str) -> Result<AllowedOrigins, String> {
        serde_json::from_str(json).map_err(|e| format!("ALLOWED_ORIGINS: {e} (expected {{\"site id\": [\"https://origin\", ...]}})"))
    }

    /// May a page at `origin` post events of `site_id`?
    pub fn allows(&self, site_id: &str, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        let listed = self.0.get(site_id).or_else(|| self.0.get("*"));
        listed.is_some_and(|origins| origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin)))
    }

    /// Preflights carry no body, so no site: an origin allowed for any site passes.
    pub fn allows_any_site(&self, origin: &str) -> bool {
        self.0.values().flatten().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// A token bucket per visitor, in one isolate's memory. Cloudflare runs
/// many isolates (per data centre, and more under load), each with its own
/// buckets and none shared: this stops one client flooding the isolate it
/// reaches, not a distributed flood, which is the job of Cloudflare's own
/// rate limiting rules in front of the Worker.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<String, (f64, i64)>,
}

/// Most visitors remembered by one isolate; beyond it, full buckets are forgotten.
const MAX_VISITORS: usize = 10_000;

impl RateLimiter {
    /// `Ok` when `visitor` may make a request at `now_ms`, else the seconds
    /// until it may.
    pub fn check(&mut self, visitor: &str, per_minute: u32, now_ms: i64) -> Result<(), u32> {
        if per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(per_minute);
        let per_ms = capacity / 60_000.0;
        if self.buckets.len() >= MAX_VISITORS && !self.buckets.contains_key(visitor) {
            self.buckets.retain(|_, (tokens, at)| *tokens + (now_ms - *at) as f64 * per_ms < capacity);
        }
        let (tokens, at) = self.buckets.entry(visitor.to_string()).or_insert((capacity, now_ms));
        *tokens = (*tokens + (now_ms - *at).max(0) as f64 * per_ms).min(capacity);
        *at = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_ms / 1000.0).ceil() as u32)
        }
    }
}

/// The signed request to `/ingest`: its JSON body and headers.
pub struct IngestRequest {
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

/// `nonce`: random, different for every forward (see [`IngestBatch::nonce`]).
pub fn ingest_request(collected: &Collected, secret: &[u8], now_ms: i64, nonce: String) -> IngestRequest {
    let batch = IngestBatch { events: collected.accepted.clone(), bad_rows: collected.bad_rows.clone(), nonce: Some(nonce) };
    let body = serde_json::to_string(&batch).unwrap_or_default();
    let signature = sign(secret, now_ms, body.as_bytes());
    IngestRequest {
        headers: vec![
            ("content-type", "application/json".into()),
            (TIMESTAMP_HEADER, now_ms.to_string()),
            (SIGNATURE_HEADER, signature),
        ],
        body,
    }
}

/// An answer for the tracker: status, JSON body, and `Retry-After` if any.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub retry_after_s: Option<u32>,
}

impl Answer {
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer { status, body: serde_json::json!({ "error": code, "message": message.into() }), retry_after_s: None }
    }
}

/// What the tracker hears once the backend answered `/ingest` (`None`:
/// it could not be reached). Only a 2xx means the events are durable; any
/// other outcome is a 503 the tracker retries, and the backend's dedup by
/// event id makes the retry harmless.
pub fn answer_after_ingest(collected: &Collected, backend_status: Option<u16>) -> Answer {
    match backend_status {
        Some(200..=299) => Answer { status: 200, body: serde_json::to_value(collected.response()).unwrap_or_default(), retry_after_s: None },
        other => {
            let why = match other {
                Some(status) => format!("the backend answered {status}"),
                None => "the backend could not be reached".to_string(),
            };
            Answer { retry_after_s: Some(BACKEND_RETRY_AFTER_S), ..Answer::error(503, "backend_unavailable", why) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_schema::signing::verify;
    use clickstream_schema::RequestMeta;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] =
        [("BACKEND_INGEST_URL", "http://127.0.0.1:8080/ingest"), ("INGEST_SECRET", "s3"), ("IP_SALT_SECRET", "salt")];

    #[test]
    fn configuration_needs_the_backend_and_both_secrets_and_says_what_is_wrong() {
        let config = EdgeConfig::from_vars(vars(&BASE)).unwrap();
        assert_eq!((config.rate_per_minute, config.collect.source), (120, "edge"));
        assert!(config.origins.allows("any-site", Some("https://anywhere.example")));
        assert_eq!(EdgeConfig::from_vars(vars(&BASE[..2])).unwrap_err(), "IP_SALT_SECRET is not set");
        let bad = [BASE[0], BASE[1], BASE[2], ("ALLOWED_ORIGINS", "[1]")];
        assert!(EdgeConfig::from_vars(vars(&bad)).unwrap_err().starts_with("ALLOWED_ORIGINS:"));
        let bad = [BASE[0], BASE[1], BASE[2], ("RATE_LIMIT_PER_MINUTE", "lots")];
        assert!(EdgeConfig::from_vars(vars(&bad)).unwrap_err().contains("not a number"));
    }

    #[test]
    fn origins_are_allowed_per_site() {
        let origins = AllowedOrigins::parse(r#"{"shop-1": ["https://shop.example"], "blog": ["*"]}"#).unwrap();
        assert!(origins.allows("shop-1", Some("https://shop.example")));
        assert!(origins.allows("shop-1", Some("HTTPS://SHOP.EXAMPLE")));
        assert!(!origins.allows("shop-1", Some("https://evil.example")));
        assert!(origins.allows("blog", Some("https://evil.example")));
        assert!(!origins.allows("unlisted", Some("https://shop.example")), "no \"*\" entry: unknown sites are refused");
        assert!(origins.allows("shop-1", None), "no Origin: not a page's script");
        assert!(origins.allows_any_site("https://shop.example"));
        let strict = AllowedOrigins::parse(r#"{"shop-1": ["https://shop.example"]}"#).unwrap();
        assert!(!strict.allows_any_site("https://evil.example"));
    }

    #[test]
    fn a_visitor_gets_its_rate_and_then_waits() {
        let mut limiter = RateLimiter::default();
        let t0 = 1_732_262_400_000;
        for _ in 0..3 {
            assert_eq!(limiter.check("198.51.100.4", 3, t0), Ok(()));
        }
        assert_eq!(limiter.check("198.51.100.4", 3, t0), Err(20), "one token every 20 s");
        assert_eq!(limiter.check("203.0.113.9", 3, t0), Ok(()), "another visitor has its own bucket");
        assert_eq!(limiter.check("198.51.100.4", 3, t0 + 20_000), Ok(()));
        assert_eq!(limiter.check("198.51.100.4", 0, t0), Ok(()), "0: no limit");
    }

    #[test]
    fn the_ingest_request_is_signed_and_answers_follow_the_backend() {
        let body = br#"{"v":1,"site_id":"shop-1","sent_at":1732262399000,"events":[
            {"event_id":"e-1","event_type":"page_view","ts":1732262398000,"anonymous_id":"a-1","session_id":"s-1","page":{"url":"https://shop.example/","path":"/"}},
            {"event_type":"page_view"}]}"#;
        let meta = RequestMeta { received_at: 1_732_262_400_000, ..RequestMeta::default() };
        let collected = crate::collect(body, &meta, &CollectConfig::new("salt", "edge")).unwrap();
        let request = ingest_request(&collected, b"s3", 1_732_262_400_000, "n-1".into());
        let again = ingest_request(&collected, b"s3", 1_732_262_400_000, "n-2".into());
        assert_ne!(request.headers[2], again.headers[2], "the same body in the same ms: another signature");
        let header = |name: &str| request.headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_str());
        assert_eq!(verify(b"s3", header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), request.body.as_bytes(), 1_732_262_400_500), Ok(()));
        let sent: IngestBatch = serde_json::from_str(&request.body).unwrap();
        assert_eq!((sent.events.len(), sent.bad_rows.len()), (1, 1));
        assert_eq!(sent.bad_rows[0].source, "edge");

        let ok = answer_after_ingest(&collected, Some(200));
        assert_eq!((ok.status, ok.body["accepted"].as_u64(), ok.body["rejected"].as_u64()), (200, Some(1), Some(1)));
        for outcome in [None, Some(503), Some(401)] {
            let answer = answer_after_ingest(&collected, outcome);
            assert_eq!((answer.status, answer.retry_after_s), (503, Some(BACKEND_RETRY_AFTER_S)), "{outcome:?}");
            assert_eq!(answer.body["error"], "backend_unavailable");
        }
    }
}
