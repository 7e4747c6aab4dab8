//! Enrichment at the edge: what the server knows and the browser does not.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::time::{corrected_event_ts, DAY_MS};
use crate::user_agent::{parse_user_agent, UserAgentInfo};
use crate::utm::utm_from_url;
use crate::wire::{Event, EventType};

/// What the request tells about the visitor, taken from the connection and
/// the edge's metadata, never from the body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestMeta {
    /// Server clock at arrival, ms since the Unix epoch.
    pub received_at: i64,
    pub user_agent: Option<String>,
    /// The client IP; only its keyed hash is kept.
    pub ip: Option<String>,
    /// ISO 3166 alpha-2 country from the edge (Cloudflare's `cf.country`).
    pub country: Option<String>,
    /// Edge data centre (Cloudflare colo), when run at the edge.
    pub colo: Option<String>,
    /// Autonomous system number of the client network, when known.
    pub asn: Option<u32>,
    pub tls_version: Option<String>,
}

/// The daily-rotating salt of the IP hash.
///
/// The salt of a day is derived from a secret and the UTC date, so every
/// edge instance and the backend agree without sharing state, and the hash
/// of one IP differs from day to day: visitors cannot be followed across
/// days by IP. Rotating the secret makes earlier hashes unlinkable too.
#[derive(Clone)]
pub struct DailySalt {
    secret: Vec<u8>,
}

impl DailySalt {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        DailySalt { secret: secret.into() }
    }

    /// The salt of the UTC day containing `at_ms`.
    pub fn salt_for(&self, at_ms: i64) -> [u8; 32] {
        let day = at_ms.div_euclid(DAY_MS);
        let mut mac = hmac_sha256(&self.secret);
        mac.update(b"ip-salt/");
        mac.update(&day.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Keyed hash of an IP for one site on the day of `at_ms`: 32 hex chars.
    pub fn hash_ip(&self, ip: &str, site_id: &str, at_ms: i64) -> String {
        let mut mac = hmac_sha256(&self.salt_for(at_ms));
        mac.update(site_id.as_bytes());
        mac.update(b"/");
        mac.update(ip.trim().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

impl std::fmt::Debug for DailySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DailySalt(<secret>)")
    }
}

fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// A valid event with everything the edge added: the record of the
/// `clickstream-events` topic and the row of Bronze.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    pub event_id: String,
    pub event_type: EventType,
    pub site_id: String,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    /// The tracker's session id.
    pub session_id: String,
    /// The client's own timestamp, uncorrected (ms).
    pub client_ts: i64,
    /// The batch's `sent_at` (client clock), if sent.
    pub sent_at: Option<i64>,
    /// Edge clock at arrival (ms).
    pub received_at: i64,
    /// `client_ts` corrected for clock skew: the event time windows use (ms).
    pub event_ts: i64,
    pub page_url: String,
    pub page_path: String,
    pub referrer: String,
    pub page_title: String,
    pub product_id: Option<String>,
    pub category: Option<String>,
    pub price: Option<f64>,
    pub quantity: Option<i64>,
    pub revenue: Option<f64>,
    pub currency: Option<String>,
    pub search_query: Option<String>,
    pub order_id: Option<String>,
    pub click_tag: Option<String>,
    pub click_text: Option<String>,
    pub click_href: Option<String>,
    pub custom_name: Option<String>,
    /// Props the contract does not name (for example `data-*` attributes),
    /// as a JSON object string.
    pub props_extra: Option<String>,
    pub screen: String,
    pub lang: String,
    pub tz: String,
    pub country: Option<String>,
    pub colo: Option<String>,
    pub asn: Option<u32>,
    pub tls_version: Option<String>,
    /// Keyed hash of the client IP with the day's salt; the IP itself is
    /// never stored.
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub browser: String,
    pub os: String,
    pub device_type: String,
    pub is_bot: bool,
    /// The matched bot signature when `is_bot`.
    pub bot_signature: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// The event exactly as received (JSON), so Silver can be rebuilt from
    /// Bronze after a rule change. In the stream record it is embedded as
    /// JSON rather than as an escaped string: readers skip it without
    /// unescaping, and it stays readable in `fluvio consume`.
    #[serde(with = "embedded_json")]
    pub raw: String,
}

/// Serde for a field holding a JSON text: written as the JSON itself,
/// read back from either that or a JSON string (older records).
mod embedded_json {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(text) {
            Ok(json) => json.serialize(s),
            // Not JSON (only possible if built by hand): keep it as text.
            Err(_) => s.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let json = Box::<RawValue>::deserialize(d)?;
        if json.get().starts_with('"') {
            serde_json::from_str::<String>(json.get()).map_err(D::Error::custom)
        } else {
            Ok(Box::<str>::from(json).into_string())
        }
    }
}

/// What enrichment takes from one request: its metadata, with the user
/// agent parsed and the IP hashed (two HMACs) once, since every event of a
/// batch shares them; done per event, the two were about a fifth of the
/// collect core's time in its bench.
pub struct RequestFacts<'a> {
    meta: &'a RequestMeta,
    ua: UserAgentInfo,
    ip_hash: Option<String>,
    country: Option<String>,
}

impl<'a> RequestFacts<'a> {
    pub fn new(meta: &'a RequestMeta, site_id: &str, salt: &DailySalt) -> RequestFacts<'a> {
        let ip_hash = meta
            .ip
            .as_deref()
            .filter(|ip| !ip.trim().is_empty())
            .map(|ip| salt.hash_ip(ip, site_id, meta.received_at));
        RequestFacts {
            meta,
            ua: parse_user_agent(meta.user_agent.as_deref()),
            ip_hash,
            country: normalize_country(meta.country.as_deref()),
        }
    }
}

/// Adds the edge's knowledge to a validated event.
pub fn enrich(
    event: Event,
    raw: String,
    site_id: &str,
    sent_at: Option<i64>,
    meta: &RequestMeta,
    salt: &DailySalt,
) -> EnrichedEvent {
    enrich_with(event, raw, site_id, sent_at, &RequestFacts::new(meta, site_id, salt))
}

/// [`enrich`], with the request's facts worked out once for its batch.
pub fn enrich_with(event: Event, raw: String, site_id: &str, sent_at: Option<i64>, facts: &RequestFacts) -> EnrichedEvent {
    let (meta, ua) = (facts.meta, &facts.ua);
    let utm = utm_from_url(&event.page.url);
    let event_ts = corrected_event_ts(event.ts, sent_at, meta.received_at);
    let ip_hash = facts.ip_hash.clone();
    let props = event.props;
    let props_extra = (!props.extra.is_empty())
        .then(|| serde_json::to_string(&props.extra).unwrap_or_default());
    EnrichedEvent {
        event_id: event.event_id,
        event_type: event.event_type,
        site_id: site_id.to_string(),
        anonymous_id: event.anonymous_id,
        user_id: event.user_id,
        session_id: event.session_id,
        client_ts: event.ts,
        sent_at,
        received_at: meta.received_at,
        event_ts,
        page_url: event.page.url,
        page_path: event.page.path,
        referrer: event.page.referrer,
        page_title: event.page.title,
        product_id: props.product_id,
        category: props.category,
        price: props.price,
        quantity: props.quantity,
        revenue: props.revenue,
        currency: props.currency,
        search_query: props.query,
        order_id: props.order_id,
        click_tag: props.tag,
        click_text: props.text,
        click_href: props.href,
        custom_name: props.name,
        props_extra,
        screen: event.context.screen,
        lang: event.context.lang,
        tz: event.context.tz,
        country: facts.country.clone(),
        colo: meta.colo.clone(),
        asn: meta.asn,
        tls_version: meta.tls_version.clone(),
        ip_hash,
        user_agent: meta.user_agent.clone(),
        browser: ua.browser.to_string(),
        os: ua.os.to_string(),
        device_type: ua.device_type.to_string(),
        is_bot: ua.bot.is_some(),
        bot_signature: ua.bot.map(str::to_string),
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        utm_term: utm.term,
        utm_content: utm.content,
        raw,
    }
}

/// Two ASCII letters, upper-cased; Cloudflare's "XX" (unknown) and "T1"
/// (Tor) and anything else become `None`.
fn normalize_country(country: Option<&str>) -> Option<String> {
    let c = country?.trim();
    if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) && !c.eq_ignore_ascii_case("xx") {
        Some(c.to_ascii_uppercase())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{validate_event, Limits};

    const NOW: i64 = 1_732_262_400_000; // 2024-11-22T08:00:00Z

    fn meta() -> RequestMeta {
        RequestMeta {
            received_at: NOW,
            user_agent: Some("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1".into()),
            ip: Some("203.0.113.7".into()),
            country: Some("de".into()),
            ..RequestMeta::default()
        }
    }

    fn event(json: serde_json::Value, sent_at: Option<i64>) -> EnrichedEvent {
        let ev = validate_event(&json, sent_at, NOW, &Limits::default()).unwrap();
        enrich(ev, json.to_string(), "shop-1", sent_at, &meta(), &DailySalt::new("secret"))
    }

    fn add_to_cart() -> serde_json::Value {
        serde_json::json!({
            "event_id": "e-1", "event_type": "add_to_cart", "ts": NOW - 61_000,
            "anonymous_id": "a-1", "session_id": "s-1",
            "page": {"url": "https://shop.example/p/42?utm_source=newsletter&utm_medium=email&utm_campaign=bf&gclid=x", "path": "/p/42"},
            "props": {"product_id": "p-42", "category": "shoes", "price": 59.9, "quantity": 2, "currency": "EUR", "data-position": 3},
            "context": {"screen": "390x844", "lang": "de-DE", "tz": "Europe/Berlin"}
        })
    }

    #[test]
    fn stream_record_embeds_the_raw_event_as_json_and_round_trips() {
        let e = event(add_to_cart(), Some(NOW));
        let record = serde_json::to_string(&e).unwrap();
        assert!(record.contains(r#""raw":{"#), "raw should be embedded JSON: {record}");
        let back: EnrichedEvent = serde_json::from_str(&record).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.raw, add_to_cart().to_string());

        // Records that carry raw as an escaped string still decode.
        let mut old: serde_json::Value = serde_json::from_str(&record).unwrap();
        old["raw"] = serde_json::Value::String(e.raw.clone());
        let back: EnrichedEvent = serde_json::from_value(old).unwrap();
        assert_eq!(back.raw, e.raw);

        // A hand-built raw that is not JSON stays text.
        let odd = EnrichedEvent { raw: "not json {".into(), ..e };
        let back: EnrichedEvent = serde_json::from_str(&serde_json::to_string(&odd).unwrap()).unwrap();
        assert_eq!(back.raw, "not json {");
    }

    #[test]
    fn event_time_is_corrected_for_client_clock_skew() {
        // The client clock runs 5 minutes fast: sent_at is 5 min ahead of
        // the server's arrival time, so the event moves 5 min back.
        let e = event(add_to_cart(), Some(NOW + 300_000));
        assert_eq!(e.client_ts, NOW - 61_000);
        assert_eq!(e.event_ts, NOW - 61_000 - 300_000);
        assert_eq!(e.received_at, NOW);
        assert_eq!(e.sent_at, Some(NOW + 300_000));
        // No sent_at: no correction.
        assert_eq!(event(add_to_cart(), None).event_ts, NOW - 61_000);
    }

    #[test]
    fn props_utm_user_agent_and_country() {
        let e = event(add_to_cart(), Some(NOW));
        assert_eq!(e.event_type, EventType::AddToCart);
        assert_eq!(e.product_id.as_deref(), Some("p-42"));
        assert_eq!(e.price, Some(59.9));
        assert_eq!(e.quantity, Some(2));
        assert_eq!(e.props_extra.as_deref(), Some(r#"{"data-position":3}"#));
        assert_eq!(e.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(e.utm_medium.as_deref(), Some("email"));
        assert_eq!(e.utm_campaign.as_deref(), Some("bf"));
        assert_eq!(e.utm_term, None);
        assert_eq!((e.browser.as_str(), e.os.as_str(), e.device_type.as_str()), ("Safari", "iOS", "mobile"));
        assert!(!e.is_bot);
        assert_eq!(e.country.as_deref(), Some("DE"));
        assert_eq!(e.screen, "390x844");
        assert_eq!(e.raw, add_to_cart().to_string());
    }

    #[test]
    fn bots_are_flagged_not_dropped() {
        let ev = validate_event(&add_to_cart(), None, NOW, &Limits::default()).unwrap();
        let bot_meta = RequestMeta {
            user_agent: Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".into()),
            ..meta()
        };
        let e = enrich(ev, String::new(), "shop-1", None, &bot_meta, &DailySalt::new("k"));
        assert!(e.is_bot);
        assert_eq!(e.bot_signature.as_deref(), Some("Googlebot"));
        assert_eq!(e.device_type, "bot");
    }

    #[test]
    fn ip_is_hashed_with_a_salt_that_rotates_daily() {
        let salt = DailySalt::new("secret");
        let e = event(add_to_cart(), None);
        let hash = e.ip_hash.clone().unwrap();
        assert_eq!(hash.len(), 32);
        assert!(!format!("{e:?}").contains("203.0.113.7"), "the IP must not be stored");
        // Same day, same site, same IP: same hash (visitors are countable).
        assert_eq!(salt.hash_ip("203.0.113.7", "shop-1", NOW + 3_600_000), hash);
        // Next day: another hash. Another site or another secret: another hash.
        assert_ne!(salt.hash_ip("203.0.113.7", "shop-1", NOW + DAY_MS), hash);
        assert_ne!(salt.hash_ip("203.0.113.7", "shop-2", NOW), hash);
        assert_ne!(DailySalt::new("other").hash_ip("203.0.113.7", "shop-1", NOW), hash);
        assert_ne!(salt.salt_for(NOW), salt.salt_for(NOW + DAY_MS));
        assert_eq!(salt.salt_for(NOW), salt.salt_for(NOW - NOW.rem_euclid(DAY_MS)));
    }

    #[test]
    fn unknown_countries_and_missing_ip() {
        assert_eq!(normalize_country(Some("XX")), None);
        assert_eq!(normalize_country(Some("T1")), None);
        assert_eq!(normalize_country(Some("usa")), None);
        assert_eq!(normalize_country(Some(" fr ")), Some("FR".into()));
        let ev = validate_event(&add_to_cart(), None, NOW, &Limits::default()).unwrap();
        let no_ip = RequestMeta { ip: None, ..meta() };
        assert_eq!(enrich(ev, String::new(), "shop-1", None, &no_ip, &DailySalt::new("k")).ip_hash, None);
    }
}
