//! What the Worker decides, in plain Rust so it is tested natively: its
//! configuration from `wrangler.toml`'s `[vars]` and secrets, the salt of
//! the IP hash, which origins may post for a site, the per-visitor rate
//! limit, the signed request to the backend's `/ingest`, and what the
//! tracker is answered. `worker.rs` only moves these between the Workers
//! runtime and here.
//!
//! The IP hash is keyed by a salt that changes every UTC day. Two sources:
//!
//! - With a KV namespace bound as [`IP_SALTS_BINDING`], each day's salt is
//!   32 random bytes kept in it under [`salt_key`] and deleted at the end of
//!   the next day ([`salt_ttl_s`]). Once it is gone nobody, not even whoever
//!   holds the Worker's secrets or the namespace, can recompute that day's
//!   hashes or test guessed IPs against them. [`todays_salt`] reads it once
//!   a day per isolate and creates it on the day's first request.
//! - Without the binding, salts derive from the secret `IP_SALT_SECRET` and
//!   the date: nothing to store, but whoever holds the secret can recompute
//!   the salt of any past day, hence test guessed IPs (there are only 2^32
//!   IPv4 addresses) against stored hashes for as long as they are kept.

use std::cell::RefCell;
use std::collections::HashMap;

use clickstream_schema::ingest::{encode_ingest, INGEST_RECORDS_TYPE};
use clickstream_schema::signing::{sign, signed_message, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use clickstream_schema::time::{utc_date_string, DAY_MS, MINUTE_MS};
use clickstream_schema::{DailySalt, Limits};
use serde::Deserialize;

use crate::fluvio::{Endpoint, FluvioTarget};
use crate::{CollectConfig, Collected};

/// Seconds the tracker is told to wait when the backend cannot take a batch.
pub const BACKEND_RETRY_AFTER_S: u32 = 5;

/// The Worker's settings.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    pub delivery: Delivery,
    pub limits: Limits,
    pub ip_salts: IpSalts,
    pub origins: AllowedOrigins,
    /// Requests per minute one visitor (client IP) may make to one
    /// isolate (`RATE_LIMIT_PER_MINUTE`, 120; 0 turns it off).
    pub rate_per_minute: u32,
}

/// Where accepted batches go.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// Signed to the backend's `/ingest`, which appends them to its stream:
    /// for a cluster the edge cannot reach, or the embedded log.
    Ingest {
        /// `BACKEND_INGEST_URL`.
        url: String,
        /// Shared with `clickstream serve --ingest-secret` (secret `INGEST_SECRET`).
        secret: Vec<u8>,
    },
    /// Produced to the Fluvio cluster by the Worker itself (`FLUVIO_SC`).
    Fluvio(FluvioTarget),
}

/// The longest a produce may take by default (`FLUVIO_TIMEOUT_MS`): the
/// tracker's request waits for it.
pub const FLUVIO_TIMEOUT_MS: u32 = 2000;

impl Delivery {
    fn from_vars(set: impl Fn(&str) -> Option<String>) -> Result<Delivery, String> {
        let Some(sc) = set("FLUVIO_SC") else {
            let required = |name: &str| set(name).ok_or(format!("{name} is not set"));
            return Ok(Delivery::Ingest {
                url: required("BACKEND_INGEST_URL")?,
                secret: required("INGEST_SECRET")?.into_bytes(),
            });
        };
        if set("BACKEND_INGEST_URL").is_some() {
            return Err("FLUVIO_SC and BACKEND_INGEST_URL are both set: the Worker either produces to Fluvio \
                        itself (FLUVIO_SC) or forwards to the backend's /ingest (BACKEND_INGEST_URL); remove one"
                .into());
        }
        let sc = Endpoint::parse(&sc).map_err(|e| format!("FLUVIO_SC: {e}"))?;
        let tls = match set("FLUVIO_TLS").as_deref().map(str::trim) {
            None | Some("off") => false,
            Some("on") => true,
            Some(other) => return Err(format!("FLUVIO_TLS: {other:?} is neither \"on\" nor \"off\"")),
        };
        let timeout_ms = match set("FLUVIO_TIMEOUT_MS") {
            None => FLUVIO_TIMEOUT_MS,
            Some(ms) => ms
                .trim()
                .parse()
                .ok()
                .filter(|ms| (100..=30_000).contains(ms))
                .ok_or(format!("FLUVIO_TIMEOUT_MS: {ms:?} is not a number of milliseconds from 100 to 30000"))?,
        };
        let topic_prefix = set("FLUVIO_TOPIC_PREFIX").unwrap_or_default();
        Ok(Delivery::Fluvio(FluvioTarget { sc, tls, topic_prefix, timeout_ms }))
    }
}

/// Where the salt of the IP hash comes from (see the module's docs).
#[derive(Clone, Debug)]
pub enum IpSalts {
    /// A random salt per day in the KV namespace bound as [`IP_SALTS_BINDING`].
    Kv,
    /// Derived from the secret `IP_SALT_SECRET` and the date.
    Derived(DailySalt),
}

impl EdgeConfig {
    /// From the Worker's vars and secrets (`var` looks up either);
    /// `salts_in_kv`: whether the [`IP_SALTS_BINDING`] KV namespace is
    /// bound, which makes `IP_SALT_SECRET` unneeded (and unused). The error
    /// names what is missing or wrong, for the operator's log.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, salts_in_kv: bool) -> Result<EdgeConfig, String> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let delivery = Delivery::from_vars(set)?;
        let ip_salts = match (salts_in_kv, set("IP_SALT_SECRET")) {
            (true, _) => IpSalts::Kv,
            (false, Some(secret)) => IpSalts::Derived(DailySalt::new(secret)),
            (false, None) => {
                return Err(format!(
                    "IP_SALT_SECRET is not set and no KV namespace is bound as {IP_SALTS_BINDING}: \
                     one of them must give the IP-hash salts (the KV namespace is better, see wrangler.toml)"
                ))
            }
        };
        let mut limits = Limits::default();
        if let Some(max) = var("MAX_BODY_BYTES") {
            limits.max_body_bytes = max.trim().parse().map_err(|_| format!("MAX_BODY_BYTES: not a number: {max:?}"))?;
        }
        let origins = match var("ALLOWED_ORIGINS") {
            Some(json) => AllowedOrigins::parse(&json)?,
            None => AllowedOrigins::any(),
        };
        let rate_per_minute = match var("RATE_LIMIT_PER_MINUTE") {
            Some(n) => n.trim().parse().map_err(|_| format!("RATE_LIMIT_PER_MINUTE: not a number: {n:?}"))?,
            None => 120,
        };
        Ok(EdgeConfig { delivery, limits, ip_salts, origins, rate_per_minute })
    }

    /// How the collect core judges a request hashed with `ip_salt`.
    pub fn collect_config(&self, ip_salt: DailySalt) -> CollectConfig {
        CollectConfig { limits: self.limits.clone(), ip_salt, source: "edge" }
    }
}

/// The optional KV namespace of the random daily IP-hash salts.
pub const IP_SALTS_BINDING: &str = "IP_SALTS";

/// How long after an isolate first takes a day's salt it reads the salt
/// again, once. Two isolates that start the day together may both find no
/// salt and write their own; KV keeps the last write, and, being eventually
/// consistent, shows it everywhere within about a minute. Until an isolate
/// reads it again it may hash with the salt that lost, so for this long the
/// same visitor can get two hashes: an accepted cost of not locking.
pub const SALT_SETTLE_MS: i64 = 2 * MINUTE_MS;

/// KV key of the salt of the UTC day containing `now_ms`: `salt:2026-12-02`.
pub fn salt_key(now_ms: i64) -> String {
    format!("salt:{}", utc_date_string(now_ms))
}

/// Seconds a salt written at `now_ms` is kept: to the end of the next UTC
/// day, between one and two days. Its own day uses it; the next day is
/// slack for requests that straddle midnight and for KV's expiry, which is
/// not instant; after it, the salt is gone, and the day's hashes with it.
pub fn salt_ttl_s(now_ms: i64) -> u64 {
    let end_of_next_day = (now_ms.div_euclid(DAY_MS) + 2) * DAY_MS;
    ((end_of_next_day - now_ms) / 1000) as u64
}

/// A salt as stored in KV: 64 lowercase hex digits.
pub fn salt_text(salt: &[u8; 32]) -> String {
    salt.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored salt back to its 32 bytes, or what is wrong with it.
pub fn parse_salt(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.len() != 64 {
        return Err(format!("a salt is 64 hex digits, this one has {} characters", text.len()));
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut salt = [0; 32];
    for (byte, pair) in salt.iter_mut().zip(text.as_bytes().chunks(2)) {
        let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
            return Err("a salt is 64 hex digits, this one has other characters".into());
        };
        *byte = high << 4 | low;
    }
    if salt == [0; 32] {
        return Err("an all-zero salt is no salt".into());
    }
    Ok(salt)
}

/// The salts' KV namespace, as [`todays_salt`] sees it.
// The Worker is single-threaded: its futures are not `Send`, nor need be.
#[allow(async_fn_in_trait)]
pub trait SaltStore {
    async fn read(&self, key: &str) -> Result<Option<String>, String>;
    async fn write(&self, key: &str, value: &str, ttl_s: u64) -> Result<(), String>;
}

/// One isolate's salt of the day, so that KV is read once a day (and once
/// more, [`SALT_SETTLE_MS`] later) rather than on every request.
#[derive(Debug, Default)]
pub struct SaltCache {
    held: Option<HeldSalt>,
}

#[derive(Debug)]
struct HeldSalt {
    day: i64,
    salt: [u8; 32],
    /// When to read KV again, once: `None` once it has been.
    recheck_at: Option<i64>,
}

impl SaltCache {
    /// The salt to hash with at `now_ms` without asking KV: `None` on a new
    /// day and when the held one is due to be read again.
    pub fn current(&self, now_ms: i64) -> Option<[u8; 32]> {
        let held = self.held.as_ref().filter(|h| h.day == now_ms.div_euclid(DAY_MS))?;
        held.recheck_at.is_none_or(|at| now_ms < at).then_some(held.salt)
    }

    /// The salt held for the day of `now_ms`, even when due to be read
    /// again: what goes back into KV if KV lost it, so that this isolate's
    /// hashes do not change within the day.
    pub fn held_today(&self, now_ms: i64) -> Option<[u8; 32]> {
        self.held.as_ref().filter(|h| h.day == now_ms.div_euclid(DAY_MS)).map(|h| h.salt)
    }

    /// Holds `salt`, as KV had it at `now_ms`. A day's first salt is read
    /// again after [`SALT_SETTLE_MS`]; what that read gives is kept for the
    /// rest of the day.
    pub fn hold(&mut self, now_ms: i64, salt: [u8; 32]) {
        let day = now_ms.div_euclid(DAY_MS);
        let recheck_at = match &self.held {
            Some(held) if held.day == day => held.recheck_at.filter(|at| now_ms < *at),
            _ => Some(now_ms + SALT_SETTLE_MS),
        };
        self.held = Some(HeldSalt { day, salt, recheck_at });
    }
}

/// The salt of today, and what was wrong with the stored one if it had to
/// be replaced, for the operator's log.
#[derive(Debug, PartialEq)]
pub struct TodaysSalt {
    pub salt: [u8; 32],
    pub replaced: Option<String>,
}

/// The salt of the UTC day of `now_ms`: the one `cache` holds, or else the
/// one in `store`; if there is none (the day's first request) or it is
/// malformed, a new one from `new_salt` (a CSPRNG) is written, then read
/// back once: another isolate may have written its own in the same moment,
/// and KV keeps the last write. `cache` is borrowed only between awaits, as
/// other requests of the isolate run meanwhile.
pub async fn todays_salt(
    store: &impl SaltStore,
    cache: &RefCell<SaltCache>,
    now_ms: i64,
    new_salt: impl FnOnce() -> Result<[u8; 32], String>,
) -> Result<TodaysSalt, String> {
    if let Some(salt) = cache.borrow().current(now_ms) {
        return Ok(TodaysSalt { salt, replaced: None });
    }
    let key = salt_key(now_ms);
    let replaced = match store.read(&key).await?.as_deref().map(parse_salt) {
        Some(Ok(salt)) => {
            cache.borrow_mut().hold(now_ms, salt);
            return Ok(TodaysSalt { salt, replaced: None });
        }
        Some(Err(problem)) => Some(format!("{key}: {problem}; replaced by a new salt")),
        None => None,
    };
    let ours = match cache.borrow().held_today(now_ms) {
        Some(salt) => salt,
        None => new_salt()?,
    };
    let written = store.write(&key, &salt_text(&ours), salt_ttl_s(now_ms)).await;
    // A failed write may be another isolate's winning one (KV takes one
    // write a second per key): what KV holds now decides.
    let salt = match (store.read(&key).await.map(|s| s.as_deref().map(parse_salt)), written) {
        (Ok(Some(Ok(theirs_or_ours))), _) => theirs_or_ours,
        (_, Err(problem)) => return Err(problem),
        (_, Ok(())) => ours,
    };
    cache.borrow_mut().hold(now_ms, salt);
    Ok(TodaysSalt { salt, replaced })
}

/// What the tracker hears when today's salt cannot be had from KV: a 503
/// it retries, rather than events hashed with another salt.
pub fn salt_unavailable(problem: &str) -> Answer {
    let message = format!("the IP-hash salt is unavailable: {problem}");
    Answer { retry_after_s: Some(BACKEND_RETRY_AFTER_S), ..Answer::error(503, "salt_unavailable", message) }
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
        serde_json::from_str(json)
            .map_err(|e| format!("ALLOWED_ORIGINS: {e} (expected {{\"site id\": [\"https://origin\", ...]}})"))
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
        self.take(visitor, 1, per_minute, now_ms)
    }

    /// Like [`RateLimiter::check`] for a request that costs `cost` tokens
    /// (a site's batch of events, say). A cost above the bucket's capacity
    /// takes the whole bucket, so it waits rather than never passing.
    pub fn take(&mut self, visitor: &str, cost: u32, per_minute: u32, now_ms: i64) -> Result<(), u32> {
        if per_minute == 0 {
            return Ok(());
        }
        let cost = f64::from(cost.clamp(1, per_minute));
        let capacity = f64::from(per_minute);
        let per_ms = capacity / 60_000.0;
        if self.buckets.len() >= MAX_VISITORS && !self.buckets.contains_key(visitor) {
            self.buckets.retain(|_, (tokens, at)| *tokens + (now_ms - *at) as f64 * per_ms < capacity);
            if self.buckets.len() >= MAX_VISITORS {
                // A flood from more addresses than this: memory stays
                // bounded, at the price of forgetting who was limited.
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry(visitor.to_string()).or_insert((capacity, now_ms));
        *tokens = (*tokens + (now_ms - *at).max(0) as f64 * per_ms).min(capacity);
        *at = now_ms;
        if *tokens >= cost {
            *tokens -= cost;
            Ok(())
        } else {
            Err(((cost - *tokens) / per_ms / 1000.0).ceil().max(1.0) as u32)
        }
    }
}

/// A request to `/ingest`: its body and the time it is signed at.
pub struct IngestRequest {
    pub body: Vec<u8>,
    pub timestamp_ms: i64,
}

impl IngestRequest {
    /// `nonce`: random, different for every forward (see [`clickstream_schema::IngestBatch::nonce`]).
    /// The body is binary ([`clickstream_schema::ingest`]): each event as the
    /// stream record the backend appends as is, so neither side writes or
    /// parses the events' JSON on the way.
    pub fn new(collected: &Collected, now_ms: i64, nonce: &str) -> IngestRequest {
        IngestRequest { body: encode_ingest(&collected.accepted, &collected.bad_rows, nonce), timestamp_ms: now_ms }
    }

    /// What the signature covers (for a signer outside this crate: the
    /// Worker's is Web Crypto's, native code where a Worker pays for CPU).
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.timestamp_ms, &self.body)
    }

    /// The headers to send, with `signature` as
    /// [`clickstream_schema::signing::signature_header`] writes it.
    pub fn headers(&self, signature: String) -> [(&'static str, String); 3] {
        [
            ("content-type", INGEST_RECORDS_TYPE.into()),
            (TIMESTAMP_HEADER, self.timestamp_ms.to_string()),
            (SIGNATURE_HEADER, signature),
        ]
    }

    /// The headers, signed here with `secret`.
    pub fn signed_headers(&self, secret: &[u8]) -> [(&'static str, String); 3] {
        self.headers(sign(secret, self.timestamp_ms, &self.body))
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
    let outcome = match backend_status {
        Some(200..=299) => Ok(()),
        Some(status) => Err(format!("the backend answered {status}")),
        None => Err("the backend could not be reached".to_string()),
    };
    answer_after_delivery(collected, outcome, "backend_unavailable")
}

/// What the tracker hears once the Worker produced to Fluvio: 200 only
/// when Fluvio acknowledged every record, else 503 with `Retry-After`, as
/// `/ingest` answers.
pub fn answer_after_produce(collected: &Collected, outcome: Result<(), String>) -> Answer {
    answer_after_delivery(collected, outcome, "stream_unavailable")
}

fn answer_after_delivery(collected: &Collected, outcome: Result<(), String>, code: &str) -> Answer {
    match outcome {
        Ok(()) => Answer {
            status: 200,
            body: serde_json::to_value(collected.response()).unwrap_or_default(),
            retry_after_s: None,
        },
        Err(why) => Answer { retry_after_s: Some(BACKEND_RETRY_AFTER_S), ..Answer::error(503, code, why) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_schema::ingest::decode_ingest;
    use clickstream_schema::signing::verify;
    use clickstream_schema::RequestMeta;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] =
        [("BACKEND_INGEST_URL", "http://127.0.0.1:8080/ingest"), ("INGEST_SECRET", "s3"), ("IP_SALT_SECRET", "salt")];

    #[test]
    fn configuration_needs_the_backend_and_a_salt_source_and_says_what_is_wrong() {
        let config = EdgeConfig::from_vars(vars(&BASE), false).unwrap();
        assert_eq!(config.rate_per_minute, 120);
        assert_eq!(config.collect_config(DailySalt::fixed([1; 32])).source, "edge");
        assert!(matches!(config.ip_salts, IpSalts::Derived(_)));
        assert!(config.origins.allows("any-site", Some("https://anywhere.example")));
        assert_eq!(EdgeConfig::from_vars(vars(&BASE[..1]), true).unwrap_err(), "INGEST_SECRET is not set");
        let bad = [BASE[0], BASE[1], BASE[2], ("ALLOWED_ORIGINS", "[1]")];
        assert!(EdgeConfig::from_vars(vars(&bad), false).unwrap_err().starts_with("ALLOWED_ORIGINS:"));
        let bad = [BASE[0], BASE[1], BASE[2], ("RATE_LIMIT_PER_MINUTE", "lots")];
        assert!(EdgeConfig::from_vars(vars(&bad), false).unwrap_err().contains("not a number"));
    }

    #[test]
    fn the_salts_come_from_kv_when_bound_else_from_the_secret_else_nowhere() {
        let no_secret = &BASE[..2];
        let config = EdgeConfig::from_vars(vars(no_secret), true).unwrap();
        assert!(matches!(config.ip_salts, IpSalts::Kv), "the KV namespace makes IP_SALT_SECRET unneeded");
        let config = EdgeConfig::from_vars(vars(&BASE), true).unwrap();
        assert!(matches!(config.ip_salts, IpSalts::Kv), "and, when both are there, wins over it");
        let neither = EdgeConfig::from_vars(vars(no_secret), false).unwrap_err();
        assert!(neither.starts_with("IP_SALT_SECRET is not set and no KV namespace is bound as IP_SALTS"), "{neither}");
        let empty = [BASE[0], BASE[1], ("IP_SALT_SECRET", "")];
        assert_eq!(EdgeConfig::from_vars(vars(&empty), false).unwrap_err(), neither, "empty is not set");
    }

    // 2024-11-22T08:00:00Z.
    const DAY_8AM: i64 = 1_732_262_400_000;

    #[test]
    fn a_days_salt_has_its_key_and_lives_to_the_end_of_the_next_day() {
        assert_eq!(salt_key(DAY_8AM), "salt:2024-11-22");
        let midnight = DAY_8AM - 8 * 3_600_000;
        assert_eq!(salt_key(midnight), "salt:2024-11-22");
        assert_eq!(salt_key(midnight - 1), "salt:2024-11-21");
        assert_eq!(salt_ttl_s(midnight), 2 * 86_400, "written at 00:00: two whole days");
        assert_eq!(salt_ttl_s(DAY_8AM), 40 * 3_600, "written at 08:00: gone at 00:00 two days on");
        assert_eq!(salt_ttl_s(midnight + 86_400_000 - 1), 86_400, "written at 23:59:59.999: the next day");
        assert!(
            (0..=86_400_000 - 1).step_by(3_599_999).all(|t| salt_ttl_s(midnight + t) >= 60),
            "KV's least TTL is 60 s"
        );
    }

    #[test]
    fn a_stored_salt_is_64_hex_digits_and_anything_else_is_refused_with_why() {
        let salt: [u8; 32] = std::array::from_fn(|i| (i * 8 + 1) as u8);
        let text = salt_text(&salt);
        assert_eq!(&text[..8], "01091119");
        assert_eq!(parse_salt(&text), Ok(salt));
        assert_eq!(parse_salt(&text.to_uppercase()), Ok(salt));
        assert_eq!(parse_salt(&format!("{text}\n")), Ok(salt), "a trailing newline from `wrangler kv key put`");
        assert!(parse_salt(&text[..62]).unwrap_err().contains("has 62 characters"));
        assert!(parse_salt("").unwrap_err().contains("has 0 characters"));
        let signed = format!("+f{}", &text[2..]);
        assert!(parse_salt(&signed).unwrap_err().contains("other characters"), "from_str_radix would take \"+f\"");
        let accented = format!("é{}", &text[2..]);
        assert!(parse_salt(&accented).unwrap_err().contains("other characters"));
        assert_eq!(parse_salt(&"0".repeat(64)).unwrap_err(), "an all-zero salt is no salt");
    }

    /// A KV namespace in memory: key to (value, ttl), with the calls counted.
    #[derive(Default)]
    struct MemoryKv {
        entries: RefCell<HashMap<String, (String, u64)>>,
        reads: std::cell::Cell<u32>,
        writes: std::cell::Cell<u32>,
        on_write: Option<AlsoWrites>,
        refuse_writes: bool,
    }

    /// What "another isolate" does right after each write.
    type AlsoWrites = Box<dyn Fn(&MemoryKv)>;

    impl SaltStore for MemoryKv {
        async fn read(&self, key: &str) -> Result<Option<String>, String> {
            self.reads.set(self.reads.get() + 1);
            Ok(self.entries.borrow().get(key).map(|(value, _)| value.clone()))
        }

        async fn write(&self, key: &str, value: &str, ttl_s: u64) -> Result<(), String> {
            self.writes.set(self.writes.get() + 1);
            if !self.refuse_writes {
                self.entries.borrow_mut().insert(key.into(), (value.into(), ttl_s));
            }
            if let Some(also) = &self.on_write {
                also(self);
            }
            match self.refuse_writes {
                true => Err("429: one write a second per key".into()),
                false => Ok(()),
            }
        }
    }

    impl MemoryKv {
        fn put(&self, key: &str, value: &str) {
            self.entries.borrow_mut().insert(key.into(), (value.into(), 60));
        }
    }

    /// Runs a future whose every await is ready at once, as [`MemoryKv`]'s are.
    fn now_or_never<T>(future: impl std::future::Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(future).poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("MemoryKv never waits"),
        }
    }

    fn salt_of(cache: &RefCell<SaltCache>, kv: &MemoryKv, now: i64, new: [u8; 32]) -> Result<TodaysSalt, String> {
        now_or_never(todays_salt(kv, cache, now, || Ok(new)))
    }

    #[test]
    fn the_days_first_request_writes_a_random_salt_and_the_isolate_then_reads_kv_twice_that_day() {
        let (kv, cache) = (MemoryKv::default(), RefCell::default());
        let got = salt_of(&cache, &kv, DAY_8AM, [7; 32]).unwrap();
        assert_eq!(got, TodaysSalt { salt: [7; 32], replaced: None });
        assert_eq!(kv.entries.borrow()["salt:2024-11-22"], (salt_text(&[7; 32]), 40 * 3_600));
        assert_eq!((kv.reads.get(), kv.writes.get()), (2, 1), "read, write, read back");
        for later in [1, 60_000, SALT_SETTLE_MS - 1] {
            assert_eq!(salt_of(&cache, &kv, DAY_8AM + later, [8; 32]).unwrap().salt, [7; 32]);
        }
        assert_eq!(kv.reads.get(), 2, "held: no KV call per request");
        for later in [SALT_SETTLE_MS, SALT_SETTLE_MS + 1, 15 * 3_600_000] {
            assert_eq!(salt_of(&cache, &kv, DAY_8AM + later, [8; 32]).unwrap().salt, [7; 32]);
        }
        assert_eq!((kv.reads.get(), kv.writes.get()), (3, 1), "read once more after it settled, then never");

        let another_isolate = RefCell::default();
        assert_eq!(salt_of(&another_isolate, &kv, DAY_8AM + 5, [9; 32]).unwrap().salt, [7; 32], "found, not made");
        assert_eq!(kv.writes.get(), 1);

        let tomorrow = DAY_8AM + 86_400_000;
        assert_eq!(salt_of(&cache, &kv, tomorrow, [8; 32]).unwrap().salt, [8; 32], "a new day, a new salt");
        assert_eq!(kv.entries.borrow().len(), 2, "yesterday's expires by itself");
    }

    #[test]
    fn two_isolates_that_race_end_on_the_salt_kv_kept() {
        // B's write lands between A's write and A's read-back: A takes B's.
        let kv = MemoryKv {
            on_write: Some(Box::new(|kv: &MemoryKv| {
                if kv.writes.get() == 1 {
                    kv.put("salt:2024-11-22", &salt_text(&[2; 32]));
                }
            })),
            ..MemoryKv::default()
        };
        assert_eq!(salt_of(&RefCell::default(), &kv, DAY_8AM, [1; 32]).unwrap().salt, [2; 32]);

        // B's write lands after A read back its own: A hashes with its own
        // until it reads again, SALT_SETTLE_MS later, then with KV's.
        let (kv, a) = (MemoryKv::default(), RefCell::default());
        assert_eq!(salt_of(&a, &kv, DAY_8AM, [1; 32]).unwrap().salt, [1; 32]);
        kv.put("salt:2024-11-22", &salt_text(&[2; 32]));
        assert_eq!(salt_of(&a, &kv, DAY_8AM + 1_000, [3; 32]).unwrap().salt, [1; 32]);
        assert_eq!(salt_of(&a, &kv, DAY_8AM + SALT_SETTLE_MS, [3; 32]).unwrap().salt, [2; 32]);
        assert_eq!(salt_of(&a, &kv, DAY_8AM + 3_600_000, [3; 32]).unwrap().salt, [2; 32]);

        // A's write refused (KV takes one write a second per key) as B's
        // landed: B's is taken; with nothing in KV, the refusal is the error.
        let kv = MemoryKv {
            refuse_writes: true,
            on_write: Some(Box::new(|kv: &MemoryKv| kv.put("salt:2024-11-22", &salt_text(&[2; 32])))),
            ..MemoryKv::default()
        };
        assert_eq!(salt_of(&RefCell::default(), &kv, DAY_8AM, [1; 32]).unwrap().salt, [2; 32]);
        let kv = MemoryKv { refuse_writes: true, ..MemoryKv::default() };
        let cache = RefCell::default();
        assert_eq!(salt_of(&cache, &kv, DAY_8AM, [1; 32]).unwrap_err(), "429: one write a second per key");
        assert_eq!(cache.borrow().held_today(DAY_8AM), None, "nothing held: the next request tries again");
    }

    #[test]
    fn a_malformed_or_lost_salt_is_replaced_and_says_why() {
        let (kv, cache) = (MemoryKv::default(), RefCell::default());
        kv.put("salt:2024-11-22", "not a salt");
        let got = salt_of(&cache, &kv, DAY_8AM, [4; 32]).unwrap();
        assert_eq!(got.salt, [4; 32]);
        assert_eq!(
            got.replaced.as_deref(),
            Some("salt:2024-11-22: a salt is 64 hex digits, this one has 10 characters; replaced by a new salt")
        );
        assert_eq!(kv.entries.borrow()["salt:2024-11-22"].0, salt_text(&[4; 32]));

        // Gone when read again: this isolate puts back the one it hashes
        // with, rather than change its hashes within the day.
        kv.entries.borrow_mut().clear();
        let got = salt_of(&cache, &kv, DAY_8AM + SALT_SETTLE_MS, [5; 32]).unwrap();
        assert_eq!(got, TodaysSalt { salt: [4; 32], replaced: None });
        assert_eq!(kv.entries.borrow()["salt:2024-11-22"].0, salt_text(&[4; 32]));

        let broken = || Err("crypto.getRandomValues failed".to_string());
        let err = now_or_never(todays_salt(&MemoryKv::default(), &RefCell::default(), DAY_8AM, broken)).unwrap_err();
        assert_eq!(err, "crypto.getRandomValues failed", "no weaker randomness instead");
        let answer = salt_unavailable(&err);
        assert_eq!(
            (answer.status, answer.retry_after_s, answer.body["error"].as_str()),
            (503, Some(5), Some("salt_unavailable"))
        );
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
        // A site's bucket of 600 events a minute: a batch of 500 passes, the
        // next 500 waits 40 s for its tokens; 5000 at once takes the whole bucket.
        assert_eq!(limiter.take("shop-1", 500, 600, t0), Ok(()));
        assert_eq!(limiter.take("shop-1", 500, 600, t0), Err(40));
        assert_eq!(limiter.take("shop-1", 5000, 600, t0 + 60_000), Ok(()));
    }

    #[test]
    fn the_ingest_request_is_signed_and_answers_follow_the_backend() {
        let body = br#"{"v":1,"site_id":"shop-1","sent_at":1732262399000,"events":[
            {"event_id":"e-1","event_type":"page_view","ts":1732262398000,"anonymous_id":"a-1","session_id":"s-1","page":{"url":"https://shop.example/","path":"/"}},
            {"event_type":"page_view"}]}"#;
        let meta = RequestMeta { received_at: 1_732_262_400_000, ..RequestMeta::default() };
        let collected = crate::collect(body, &meta, &CollectConfig::new("salt", "edge")).unwrap();
        let request = IngestRequest::new(&collected, 1_732_262_400_000, "n-1");
        let again = IngestRequest::new(&collected, 1_732_262_400_000, "n-2");
        let headers = request.signed_headers(b"s3");
        assert_ne!(headers[2], again.signed_headers(b"s3")[2], "the same body in the same ms: another signature");
        let header = |name: &str| headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_str());
        assert_eq!(request.signed_message(), [b"1732262400000.".as_slice(), &request.body].concat());
        assert_eq!(
            verify(b"s3", header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), &request.body, 1_732_262_400_500),
            Ok(())
        );
        // The backend reads back the records the collector enriched, byte for byte.
        let sent = decode_ingest(&request.body).unwrap();
        assert_eq!((sent.events.len(), sent.bad_rows.len(), sent.nonce.as_ref()), (1, 1, "n-1"));
        assert_eq!(sent.events[0].anonymous_id, "a-1");
        let event = clickstream_schema::EnrichedEvent::from_record(sent.events[0].record).unwrap();
        assert_eq!(event, collected.accepted[0]);
        assert_eq!(sent.bad_rows, collected.bad_rows);
        assert_eq!(sent.bad_rows[0].source, "edge");

        let ok = answer_after_ingest(&collected, Some(200));
        assert_eq!((ok.status, ok.body["accepted"].as_u64(), ok.body["rejected"].as_u64()), (200, Some(1), Some(1)));
        for outcome in [None, Some(503), Some(401)] {
            let answer = answer_after_ingest(&collected, outcome);
            assert_eq!((answer.status, answer.retry_after_s), (503, Some(BACKEND_RETRY_AFTER_S)), "{outcome:?}");
            assert_eq!(answer.body["error"], "backend_unavailable");
        }
        let produced = answer_after_produce(&collected, Ok(()));
        assert_eq!(produced, ok, "the same answer whichever way the batch went");
        let failed = answer_after_produce(&collected, Err("fluvio SPU 127.0.0.1:9010: connecting: refused".into()));
        assert_eq!((failed.status, failed.retry_after_s), (503, Some(BACKEND_RETRY_AFTER_S)));
        assert_eq!(failed.body["error"], "stream_unavailable");
        assert!(failed.body["message"].as_str().unwrap().contains("connecting: refused"));
    }

    #[test]
    fn with_fluvio_sc_the_worker_produces_itself_and_needs_no_backend() {
        let fluvio = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("FLUVIO_SC", "sc.example:9003"), ("IP_SALT_SECRET", "salt")];
            pairs.extend_from_slice(extra);
            EdgeConfig::from_vars(vars(&pairs), false).map(|c| c.delivery)
        };
        let Ok(Delivery::Fluvio(target)) = fluvio(&[]) else { panic!("FLUVIO_SC selects Fluvio") };
        assert_eq!((target.sc.to_string(), target.tls, target.timeout_ms), ("sc.example:9003".into(), false, 2000));
        assert_eq!(target.events_topic(), "clickstream-events");
        let Ok(Delivery::Fluvio(target)) =
            fluvio(&[("FLUVIO_TLS", "on"), ("FLUVIO_TOPIC_PREFIX", "prod-"), ("FLUVIO_TIMEOUT_MS", "500")])
        else {
            panic!("all the vars")
        };
        assert_eq!(
            (target.tls, target.rejects_topic().as_str(), target.timeout_ms),
            (true, "prod-clickstream-rejects", 500)
        );
        let error = |extra: &[(&str, &str)]| fluvio(extra).unwrap_err();
        assert!(error(&[("FLUVIO_TLS", "yes")]).starts_with("FLUVIO_TLS:"));
        assert!(error(&[("FLUVIO_TIMEOUT_MS", "50")]).contains("from 100 to 30000"));
        assert!(error(&[("BACKEND_INGEST_URL", "http://x/ingest")]).contains("both set"));
        let bad_sc = EdgeConfig::from_vars(vars(&[("FLUVIO_SC", "sc"), ("IP_SALT_SECRET", "s")]), false).unwrap_err();
        assert!(bad_sc.starts_with("FLUVIO_SC:"), "{bad_sc}");
        let Ok(Delivery::Ingest { url, secret }) = EdgeConfig::from_vars(vars(&BASE), false).map(|c| c.delivery) else {
            panic!("no FLUVIO_SC: /ingest")
        };
        assert_eq!((url.as_str(), secret.as_slice()), ("http://127.0.0.1:8080/ingest", &b"s3"[..]));
    }
}
