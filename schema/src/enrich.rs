//! Enrichment at the edge: what the server knows and the browser does not.

use std::borrow::Cow;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::props::PROP_COUNT;
use crate::record::{RecordError, RecordReader, RecordWriter, RECORD_V2, RECORD_V2_PROPS, RECORD_VERSION};
use crate::time::{corrected_event_ts, DAY_MS};
use crate::user_agent::{parse_user_agent, UserAgentInfo};
use crate::utm::utm_from_url;
use crate::validate::ValidEvent;
use crate::wire::EventType;

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

/// Where the salt of a UTC day comes from (days since the Unix epoch).
///
/// The backend keeps random salts on disk and deletes each one the day
/// after its own; the Worker reads one from a KV binding when it has one.
pub trait SaltSource: Send + Sync {
    fn salt_of_day(&self, day: i64) -> [u8; 32];
}

/// Salts derived from a long-lived secret and the date: every instance
/// agrees without sharing state, but whoever holds the secret can
/// recompute any past day's salt, and with it test guessed IPs against
/// stored hashes. Only for where no shared store exists.
struct DerivedSalts(Vec<u8>);

impl SaltSource for DerivedSalts {
    fn salt_of_day(&self, day: i64) -> [u8; 32] {
        let mut mac = hmac_sha256(&self.0);
        mac.update(b"ip-salt/");
        mac.update(&day.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// One salt, for a request handled within its day (the Worker, with the
/// day's salt read from its KV binding).
struct OneSalt([u8; 32]);

impl SaltSource for OneSalt {
    fn salt_of_day(&self, _day: i64) -> [u8; 32] {
        self.0
    }
}

/// The daily-rotating salt of the IP hash: the hash of one IP differs
/// from day to day, so visitors cannot be followed across days by IP.
#[derive(Clone)]
pub struct DailySalt {
    source: Arc<dyn SaltSource>,
}

impl DailySalt {
    /// Salts derived from `secret`: anyone holding it can recompute past
    /// days' salts, so prefer [`DailySalt::from_source`] with random salts.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        DailySalt { source: Arc::new(DerivedSalts(secret.into())) }
    }

    /// Salts from a store of random per-day salts.
    pub fn from_source(source: Arc<dyn SaltSource>) -> Self {
        DailySalt { source }
    }

    /// The same salt whatever the day: for one request, with its day's salt.
    pub fn fixed(salt: [u8; 32]) -> Self {
        DailySalt { source: Arc::new(OneSalt(salt)) }
    }

    /// The salt of the UTC day containing `at_ms`.
    pub fn salt_for(&self, at_ms: i64) -> [u8; 32] {
        self.source.salt_of_day(at_ms.div_euclid(DAY_MS))
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

macro_rules! detach {
    (Text, $value:expr) => {
        own_opt($value)
    };
    (Url, $value:expr) => {
        own_opt($value)
    };
    (Number, $value:expr) => {
        $value
    };
    (Integer, $value:expr) => {
        $value
    };
}

macro_rules! enriched_event {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// A valid event with everything the edge added: the record of the
        /// `clickstream-events` topic and the row of Bronze.
        ///
        /// Its strings borrow from the request (and, when decoded, from the stream
        /// record) wherever they can, so the collect core allocates next to
        /// nothing per event; [`EnrichedEvent::into_owned`] detaches one.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct EnrichedEvent<'a> {
            #[serde(borrow)]
            pub event_id: Cow<'a, str>,
            pub event_type: EventType,
            #[serde(borrow)]
            pub site_id: Cow<'a, str>,
            #[serde(borrow)]
            pub anonymous_id: Cow<'a, str>,
            pub user_id: Option<Cow<'a, str>>,
            /// The tracker's session id.
            #[serde(borrow)]
            pub session_id: Cow<'a, str>,
            /// The client's own timestamp, uncorrected (ms).
            pub client_ts: i64,
            /// The batch's `sent_at` (client clock), if sent.
            pub sent_at: Option<i64>,
            /// Edge clock at arrival (ms).
            pub received_at: i64,
            /// `client_ts` corrected for clock skew: the event time windows use (ms).
            pub event_ts: i64,
            #[serde(borrow)]
            pub page_url: Cow<'a, str>,
            #[serde(borrow)]
            pub page_path: Cow<'a, str>,
            #[serde(borrow)]
            pub referrer: Cow<'a, str>,
            #[serde(borrow)]
            pub page_title: Cow<'a, str>,
            $(
                #[doc = $about]
                pub $column: $crate::borrowed_prop_type!($kind),
            )*
            /// Props the contract does not name (for example `data-*` attributes),
            /// as a JSON object string.
            pub props_extra: Option<Cow<'a, str>>,
            #[serde(borrow)]
            pub screen: Cow<'a, str>,
            #[serde(borrow)]
            pub lang: Cow<'a, str>,
            #[serde(borrow)]
            pub tz: Cow<'a, str>,
            pub country: Option<Cow<'a, str>>,
            pub colo: Option<Cow<'a, str>>,
            pub asn: Option<u32>,
            pub tls_version: Option<Cow<'a, str>>,
            /// Keyed hash of the client IP with the day's salt; the IP itself is
            /// never stored.
            pub ip_hash: Option<Cow<'a, str>>,
            pub user_agent: Option<Cow<'a, str>>,
            // The user agent's families are names from a fixed list: borrowed
            // when the edge makes them, so enrichment allocates none of them.
            #[serde(borrow)]
            pub browser: Cow<'a, str>,
            #[serde(borrow)]
            pub os: Cow<'a, str>,
            #[serde(borrow)]
            pub device_type: Cow<'a, str>,
            pub is_bot: bool,
            /// The matched bot signature when `is_bot`.
            pub bot_signature: Option<Cow<'a, str>>,
            pub utm_source: Option<Cow<'a, str>>,
            pub utm_medium: Option<Cow<'a, str>>,
            pub utm_campaign: Option<Cow<'a, str>>,
            pub utm_term: Option<Cow<'a, str>>,
            pub utm_content: Option<Cow<'a, str>>,
            /// The event exactly as received (JSON), so Silver can be rebuilt from
            /// Bronze after a rule change. In the stream record it is embedded as
            /// JSON rather than as an escaped string: readers skip it without
            /// unescaping, and it stays readable in `fluvio consume`.
            #[serde(borrow, with = "embedded_json")]
            pub raw: Cow<'a, str>,
        }

        impl EnrichedEvent<'_> {
            /// The event with every string it borrows copied, free of the request.
            pub fn into_owned(self) -> EnrichedEvent<'static> {
                fn own(s: Cow<str>) -> Cow<'static, str> {
                    Cow::Owned(s.into_owned())
                }
                fn own_opt(s: Option<Cow<str>>) -> Option<Cow<'static, str>> {
                    s.map(own)
                }
                EnrichedEvent {
                    event_id: own(self.event_id),
                    event_type: self.event_type,
                    site_id: own(self.site_id),
                    anonymous_id: own(self.anonymous_id),
                    user_id: own_opt(self.user_id),
                    session_id: own(self.session_id),
                    client_ts: self.client_ts,
                    sent_at: self.sent_at,
                    received_at: self.received_at,
                    event_ts: self.event_ts,
                    page_url: own(self.page_url),
                    page_path: own(self.page_path),
                    referrer: own(self.referrer),
                    page_title: own(self.page_title),
                    $( $column: detach!($kind, self.$column), )*
                    props_extra: own_opt(self.props_extra),
                    screen: own(self.screen),
                    lang: own(self.lang),
                    tz: own(self.tz),
                    country: own_opt(self.country),
                    colo: own_opt(self.colo),
                    asn: self.asn,
                    tls_version: own_opt(self.tls_version),
                    ip_hash: own_opt(self.ip_hash),
                    user_agent: own_opt(self.user_agent),
                    browser: own(self.browser),
                    os: own(self.os),
                    device_type: own(self.device_type),
                    is_bot: self.is_bot,
                    bot_signature: own_opt(self.bot_signature),
                    utm_source: own_opt(self.utm_source),
                    utm_medium: own_opt(self.utm_medium),
                    utm_campaign: own_opt(self.utm_campaign),
                    utm_term: own_opt(self.utm_term),
                    utm_content: own_opt(self.utm_content),
                    raw: own(self.raw),
                }
            }
        }

        impl<'a> EnrichedEvent<'a> {
            /// The event as a stream record: [`crate::record`]'s binary form.
            pub fn to_record(&self, out: &mut Vec<u8>) {
                let mut w = RecordWriter(out);
                w.u8(RECORD_VERSION);
                w.str(&self.event_id);
                w.u8(self.event_type as u8);
                w.str(&self.site_id);
                w.str(&self.anonymous_id);
                w.opt(self.user_id.as_deref(), $crate::record::RecordWriter::str);
                w.str(&self.session_id);
                w.i64(self.client_ts);
                w.opt(self.sent_at, $crate::record::RecordWriter::i64);
                w.i64(self.received_at);
                w.i64(self.event_ts);
                w.str(&self.page_url);
                w.str(&self.page_path);
                w.str(&self.referrer);
                w.str(&self.page_title);
                // How many props follow: a prop appended to the contract
                // needs no new version, and a reader finds older records'
                // later props absent.
                w.u8(PROP_COUNT as u8);
                $( $crate::write_prop!($kind, w, self.$column); )*
                for text in [&self.props_extra] {
                    w.opt(text.as_deref(), $crate::record::RecordWriter::str);
                }
                for text in [&self.screen, &self.lang, &self.tz] {
                    w.str(text);
                }
                for text in [&self.country, &self.colo] {
                    w.opt(text.as_deref(), $crate::record::RecordWriter::str);
                }
                w.opt(self.asn, $crate::record::RecordWriter::u32);
                for text in [&self.tls_version, &self.ip_hash, &self.user_agent] {
                    w.opt(text.as_deref(), $crate::record::RecordWriter::str);
                }
                for text in [&self.browser, &self.os, &self.device_type] {
                    w.str(text);
                }
                w.bool(self.is_bot);
                for text in [
                    &self.bot_signature,
                    &self.utm_source,
                    &self.utm_medium,
                    &self.utm_campaign,
                    &self.utm_term,
                    &self.utm_content,
                ] {
                    w.opt(text.as_deref(), $crate::record::RecordWriter::str);
                }
                w.str(&self.raw);
            }

            /// Reads a stream record: the binary form, or JSON (the records
            /// of logs written before it). Strings borrow from `bytes`.
            pub fn from_record(bytes: &'a [u8]) -> Result<EnrichedEvent<'a>, RecordError> {
                match bytes.first() {
                    Some(b'{') => serde_json::from_slice(bytes).map_err(|e| RecordError(format!("JSON record: {e}"))),
                    Some(&version @ (RECORD_V2 | RECORD_VERSION)) => {
                        let mut r = RecordReader::new(&bytes[1..]);
                        let event = Self::read_fields(&mut r, version)?;
                        r.finish()?;
                        Ok(event)
                    }
                    Some(other) => Err(RecordError(format!("unknown record format {other}"))),
                    None => Err(RecordError("empty record".into())),
                }
            }

            fn read_fields(r: &mut RecordReader<'a>, version: u8) -> Result<EnrichedEvent<'a>, RecordError> {
                let event_id = r.str()?;
                let kind = r.u8()?;
                let mut props_left: usize;
                let event_type = *EventType::ALL
                    .get(usize::from(kind))
                    .ok_or_else(|| RecordError(format!("unknown event type {kind}")))?;
                let event = EnrichedEvent {
                    event_id,
                    event_type,
                    site_id: r.str()?,
                    anonymous_id: r.str()?,
                    user_id: r.opt($crate::record::RecordReader::str)?,
                    session_id: r.str()?,
                    client_ts: r.i64()?,
                    sent_at: r.opt($crate::record::RecordReader::i64)?,
                    received_at: r.i64()?,
                    event_ts: r.i64()?,
                    page_url: r.str()?,
                    page_path: r.str()?,
                    referrer: r.str()?,
                    page_title: {
                        let title = r.str()?;
                        // Version 2 wrote the twelve props it knew, without a count.
                        props_left = if version == RECORD_V2 { RECORD_V2_PROPS } else { usize::from(r.u8()?) };
                        if props_left > PROP_COUNT {
                            return Err(RecordError(format!(
                                "the record has {props_left} props, this version knows {PROP_COUNT}: written by a newer version"
                            )));
                        }
                        title
                    },
                    $( $column: if props_left > 0 {
                        props_left -= 1;
                        $crate::read_prop!($kind, r)
                    } else {
                        None
                    }, )*
                    props_extra: r.opt($crate::record::RecordReader::str)?,
                    screen: r.str()?,
                    lang: r.str()?,
                    tz: r.str()?,
                    country: r.opt($crate::record::RecordReader::str)?,
                    colo: r.opt($crate::record::RecordReader::str)?,
                    asn: r.opt($crate::record::RecordReader::u32)?,
                    tls_version: r.opt($crate::record::RecordReader::str)?,
                    ip_hash: r.opt($crate::record::RecordReader::str)?,
                    user_agent: r.opt($crate::record::RecordReader::str)?,
                    browser: r.str()?,
                    os: r.str()?,
                    device_type: r.str()?,
                    is_bot: r.bool()?,
                    bot_signature: r.opt($crate::record::RecordReader::str)?,
                    utm_source: r.opt($crate::record::RecordReader::str)?,
                    utm_medium: r.opt($crate::record::RecordReader::str)?,
                    utm_campaign: r.opt($crate::record::RecordReader::str)?,
                    utm_term: r.opt($crate::record::RecordReader::str)?,
                    utm_content: r.opt($crate::record::RecordReader::str)?,
                    raw: r.str()?,
                };
                Ok(event)
            }
        }
    };
}
crate::with_props!(enriched_event);

/// Serde for a field holding a JSON text: written as the JSON itself,
/// read back from either that (borrowed) or a JSON string (older records).
mod embedded_json {
    use std::borrow::Cow;

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

    pub fn deserialize<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
        let json = <&'de RawValue>::deserialize(d)?;
        if json.get().starts_with('"') {
            serde_json::from_str::<String>(json.get()).map(Cow::Owned).map_err(D::Error::custom)
        } else {
            Ok(Cow::Borrowed(json.get()))
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
    country: Option<Cow<'a, str>>,
}

impl<'a> RequestFacts<'a> {
    pub fn new(meta: &'a RequestMeta, site_id: &str, salt: &DailySalt) -> RequestFacts<'a> {
        let ip_hash =
            meta.ip.as_deref().filter(|ip| !ip.trim().is_empty()).map(|ip| salt.hash_ip(ip, site_id, meta.received_at));
        RequestFacts {
            meta,
            ua: parse_user_agent(meta.user_agent.as_deref()),
            ip_hash,
            country: normalize_country(meta.country.as_deref()),
        }
    }
}

/// Adds the edge's knowledge to a validated event; `raw` is its text.
pub fn enrich<'a>(
    event: ValidEvent<'a>,
    raw: &'a str,
    site_id: &'a str,
    sent_at: Option<i64>,
    meta: &'a RequestMeta,
    salt: &DailySalt,
) -> EnrichedEvent<'a> {
    enrich_with(event, raw, &Cow::Borrowed(site_id), sent_at, &RequestFacts::new(meta, site_id, salt))
}

/// [`enrich`], with the request's facts worked out once for its batch.
pub fn enrich_with<'a>(
    event: ValidEvent<'a>,
    raw: &'a str,
    site_id: &Cow<'a, str>,
    sent_at: Option<i64>,
    facts: &RequestFacts<'a>,
) -> EnrichedEvent<'a> {
    let (meta, ua) = (facts.meta, &facts.ua);
    let event_ts = corrected_event_ts(event.ts, sent_at, meta.received_at);
    // The UTM values borrow from the URL where it borrows from the body.
    let utm = match &event.page_url {
        Cow::Borrowed(url) => utm_from_url(url),
        Cow::Owned(url) => utm_from_url(url).into_owned(),
    };
    let props = event.props;
    let props_extra =
        (!props.extra.is_empty()).then(|| Cow::Owned(serde_json::to_string(&props.extra).unwrap_or_default()));
    let text = |s: Option<&'a str>| s.map(Cow::Borrowed);
    EnrichedEvent {
        event_id: event.event_id,
        event_type: event.event_type,
        site_id: site_id.clone(),
        anonymous_id: event.anonymous_id,
        user_id: event.user_id,
        session_id: event.session_id,
        client_ts: event.ts,
        sent_at,
        received_at: meta.received_at,
        event_ts,
        page_url: event.page_url,
        page_path: event.page_path,
        referrer: event.referrer,
        page_title: event.page_title,
        // The one place a new prop must be added by hand (with_props!
        // cannot build part of a struct literal): the compiler names it.
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
        engaged_ms: props.engaged_ms,
        scroll_depth: props.scroll_depth,
        props_extra,
        screen: event.screen,
        lang: event.lang,
        tz: event.tz,
        country: facts.country.clone(),
        colo: text(meta.colo.as_deref()),
        asn: meta.asn,
        tls_version: text(meta.tls_version.as_deref()),
        ip_hash: facts.ip_hash.clone().map(Cow::Owned),
        user_agent: text(meta.user_agent.as_deref()),
        browser: Cow::Borrowed(ua.browser),
        os: Cow::Borrowed(ua.os),
        device_type: Cow::Borrowed(ua.device_type),
        is_bot: ua.bot.is_some(),
        bot_signature: ua.bot.map(Cow::Borrowed),
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        utm_term: utm.term,
        utm_content: utm.content,
        raw: Cow::Borrowed(raw),
    }
}

/// Two ASCII letters, upper-cased; Cloudflare's "XX" (unknown) and "T1"
/// (Tor) and anything else become `None`.
fn normalize_country(country: Option<&str>) -> Option<Cow<'_, str>> {
    let c = country?.trim();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) || c.eq_ignore_ascii_case("xx") {
        None
    } else if c.bytes().all(|b| b.is_ascii_uppercase()) {
        Some(Cow::Borrowed(c))
    } else {
        Some(Cow::Owned(c.to_ascii_uppercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::RawEvent;
    use crate::validate::Limits;

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

    fn enriched(text: &str, sent_at: Option<i64>, meta: &RequestMeta, salt: &str) -> EnrichedEvent<'static> {
        let ev = RawEvent::read(text).unwrap().validate(sent_at, NOW, &Limits::default()).unwrap();
        enrich(ev, text, "shop-1", sent_at, meta, &DailySalt::new(salt)).into_owned()
    }

    fn event(json: &serde_json::Value, sent_at: Option<i64>) -> EnrichedEvent<'static> {
        enriched(&json.to_string(), sent_at, &meta(), "secret")
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
        let e = event(&add_to_cart(), Some(NOW));
        let record = serde_json::to_string(&e).unwrap();
        assert!(record.contains(r#""raw":{"#), "raw should be embedded JSON: {record}");
        let back: EnrichedEvent = serde_json::from_str(&record).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.raw, add_to_cart().to_string());

        assert!(matches!(back.raw, Cow::Borrowed(_)) && matches!(back.event_id, Cow::Borrowed(_)), "decoding borrows");

        // Records that carry raw as an escaped string still decode.
        let mut old: serde_json::Value = serde_json::from_str(&record).unwrap();
        old["raw"] = serde_json::Value::String(e.raw.to_string());
        let old = old.to_string();
        let back: EnrichedEvent = serde_json::from_str(&old).unwrap();
        assert_eq!(back.raw, e.raw);

        // A hand-built raw that is not JSON stays text.
        let odd = EnrichedEvent { raw: "not json {".into(), ..e };
        let text = serde_json::to_string(&odd).unwrap();
        let back: EnrichedEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back.raw, "not json {");
    }

    #[test]
    fn the_binary_record_round_trips_every_field_borrowing_its_text() {
        let full = event(&add_to_cart(), Some(NOW));
        // Every optional field both set and absent across the two events.
        let sparse = EnrichedEvent {
            user_id: Some("u-1".into()),
            sent_at: None,
            country: None,
            asn: Some(3320),
            props_extra: None,
            ..event(
                &serde_json::json!({"event_id": "e-2", "event_type": "page_view", "ts": NOW,
                "anonymous_id": "a-1", "session_id": "s-1", "page": {"url": "https://shop.example/", "path": "/"}}),
                None,
            )
        };
        for e in [full, sparse] {
            let mut record = Vec::new();
            e.to_record(&mut record);
            assert_eq!(record[0], crate::record::RECORD_VERSION);
            let json = serde_json::to_vec(&e).unwrap();
            assert!(record.len() * 3 < json.len() * 2, "binary {} bytes vs JSON {}", record.len(), json.len());
            let back = EnrichedEvent::from_record(&record).unwrap();
            assert_eq!(back, e);
            assert!(matches!(back.raw, Cow::Borrowed(_)) && matches!(back.page_url, Cow::Borrowed(_)));
            // Logs written before hold JSON records: they still read.
            assert_eq!(EnrichedEvent::from_record(&json).unwrap(), e);
            // A record cut short, or with bytes after its last field, is an error.
            assert!(EnrichedEvent::from_record(&record[..record.len() - 1]).is_err());
            let mut longer = record.clone();
            longer.push(0);
            assert!(EnrichedEvent::from_record(&longer).is_err());
        }
        for t in EventType::ALL {
            assert_eq!(EventType::ALL[t as usize], t, "the record stores an event type as its index");
        }
        assert!(EnrichedEvent::from_record(&[9, 1, 2]).unwrap_err().0.contains("unknown record format 9"));
    }

    #[test]
    fn a_record_written_before_the_props_were_counted_still_reads() {
        // This event's record as the build before `page_leave` wrote it
        // (format 2: twelve props, no count), kept as bytes.
        let v2 = include_bytes!("../tests/fixtures/record-v2.bin");
        assert_eq!(v2[0], crate::record::RECORD_V2);
        let e = event(&add_to_cart(), Some(NOW));
        let back = EnrichedEvent::from_record(v2).unwrap();
        // The raw event's members are in the order serde_json kept them
        // in that build (sorted, or as sent with its preserve_order
        // feature, which the workspace's build turns on): the same JSON.
        let json = |raw: &str| serde_json::from_str::<serde_json::Value>(raw).unwrap();
        assert_eq!(json(&back.raw), json(&e.raw));
        assert_eq!(EnrichedEvent { raw: e.raw.clone(), ..back.clone() }, e);
        assert_eq!((back.engaged_ms, back.scroll_depth), (None, None));

        // Format 3 counts its props: a page_leave's read back, and a
        // record claiming more props than this build knows is refused.
        let leave = EnrichedEvent { engaged_ms: Some(12_500), scroll_depth: Some(75), ..e };
        let mut record = Vec::new();
        leave.to_record(&mut record);
        assert_eq!(EnrichedEvent::from_record(&record).unwrap(), leave);
        let at = record
            .windows(2)
            .position(|w| w == [crate::props::PROP_COUNT as u8, 1])
            .expect("the count, then product_id set");
        record[at] += 1;
        let err = EnrichedEvent::from_record(&record).unwrap_err().0;
        assert!(err.contains("written by a newer version"), "{err}");
    }

    #[test]
    fn event_time_is_corrected_for_client_clock_skew() {
        // The client clock runs 5 minutes fast: sent_at is 5 min ahead of
        // the server's arrival time, so the event moves 5 min back.
        let e = event(&add_to_cart(), Some(NOW + 300_000));
        assert_eq!(e.client_ts, NOW - 61_000);
        assert_eq!(e.event_ts, NOW - 61_000 - 300_000);
        assert_eq!(e.received_at, NOW);
        assert_eq!(e.sent_at, Some(NOW + 300_000));
        // No sent_at: no correction.
        assert_eq!(event(&add_to_cart(), None).event_ts, NOW - 61_000);
    }

    #[test]
    fn props_utm_user_agent_and_country() {
        let e = event(&add_to_cart(), Some(NOW));
        assert_eq!(e.event_type, EventType::AddToCart);
        assert_eq!(e.product_id.as_deref(), Some("p-42"));
        assert_eq!(e.price, Some(59.9));
        assert_eq!(e.quantity, Some(2));
        assert_eq!(e.props_extra.as_deref(), Some(r#"{"data-position":3}"#));
        assert_eq!(e.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(e.utm_medium.as_deref(), Some("email"));
        assert_eq!(e.utm_campaign.as_deref(), Some("bf"));
        assert_eq!(e.utm_term, None);
        assert_eq!((&*e.browser, &*e.os, &*e.device_type), ("Safari", "iOS", "mobile"));
        assert!(!e.is_bot);
        assert_eq!(e.country.as_deref(), Some("DE"));
        assert_eq!(e.screen, "390x844");
        assert_eq!(e.raw, add_to_cart().to_string());
    }

    #[test]
    fn bots_are_flagged_not_dropped() {
        let bot_meta = RequestMeta {
            user_agent: Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".into()),
            ..meta()
        };
        let e = enriched(&add_to_cart().to_string(), None, &bot_meta, "k");
        assert!(e.is_bot);
        assert_eq!(e.bot_signature.as_deref(), Some("Googlebot"));
        assert_eq!(e.device_type, "bot");
    }

    #[test]
    fn ip_is_hashed_with_a_salt_that_rotates_daily() {
        let salt = DailySalt::new("secret");
        let e = event(&add_to_cart(), None);
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
        let one = DailySalt::fixed([7; 32]);
        assert_eq!(one.salt_for(NOW), [7; 32]);
        assert_ne!(one.hash_ip("203.0.113.7", "shop-1", NOW), hash, "another salt, another hash");
    }

    #[test]
    fn unknown_countries_and_missing_ip() {
        assert_eq!(normalize_country(Some("XX")), None);
        assert_eq!(normalize_country(Some("T1")), None);
        assert_eq!(normalize_country(Some("usa")), None);
        assert_eq!(normalize_country(Some(" fr ")), Some("FR".into()));
        let no_ip = RequestMeta { ip: None, ..meta() };
        assert_eq!(enriched(&add_to_cart().to_string(), None, &no_ip, "k").ip_hash, None);
    }
}
