//! Validation: the batch envelope, then each event on its own, so that one
//! bad event becomes a bad row while the rest of the batch is accepted.
//!
//! Events are checked from `serde_json::Value` by hand rather than by serde
//! derive: each rule gives its own [`RejectReason`] and a precise detail,
//! which is what the `rejects` table and the tracker's developers need.

use serde_json::{Map, Value};

use crate::reason::{BatchError, RejectReason};
use crate::time::corrected_event_ts;
use crate::wire::{Context, Event, EventType, Page, Props, WIRE_VERSION};

/// Limits of the collect endpoint. Defaults suit a browser tracker.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest accepted body (bytes); larger gets 413.
    pub max_body_bytes: usize,
    /// Most events one batch may carry.
    pub max_events: usize,
    /// How far in the future (after skew correction) an event may lie, ms.
    pub max_future_ms: i64,
    /// How old (after skew correction) an event may be, ms: the lateness
    /// horizon. Older events are rejected as `too_late`.
    pub horizon_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_events: 500,
            max_future_ms: 60 * 60 * 1000,
            horizon_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// Longest accepted identifier (event, visitor, session, user ids).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted URL or referrer.
pub const MAX_URL_LEN: usize = 2048;
/// Longest accepted other string (title, props).
pub const MAX_TEXT_LEN: usize = 512;
/// Largest accepted serialized size of the unknown props of one event.
pub const MAX_EXTRA_PROPS_BYTES: usize = 4096;

/// A batch envelope that passed the envelope checks; its events are still
/// raw JSON, to be validated one by one.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedBatch {
    pub site_id: String,
    /// Client clock at send time; absent means no skew correction.
    pub sent_at: Option<i64>,
    pub events: Vec<Value>,
}

/// Why one event was refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection { reason, detail: detail.into() }
    }
}

/// Checks the body size and the envelope (`v`, `site_id`, `sent_at`,
/// `events`).
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<ParsedBatch, BatchError> {
    if body.len() > limits.max_body_bytes {
        return Err(BatchError::BodyTooLarge { limit: limits.max_body_bytes });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::MalformedJson(e.to_string()))?;
    let Value::Object(mut envelope) = value else {
        return Err(BatchError::InvalidEnvelope("the body must be a JSON object".into()));
    };
    match envelope.get("v") {
        None => return Err(BatchError::InvalidEnvelope("missing \"v\" (wire version)".into())),
        Some(v) if v.as_i64() == Some(WIRE_VERSION) => {}
        Some(v) => return Err(BatchError::UnsupportedVersion(v.to_string())),
    }
    let site_id = match envelope.get("site_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
        Some(Value::String(_)) => {
            return Err(BatchError::InvalidEnvelope(format!(
                "\"site_id\" must be 1 to {MAX_ID_LEN} characters"
            )))
        }
        Some(_) => return Err(BatchError::InvalidEnvelope("\"site_id\" must be a string".into())),
        None => return Err(BatchError::InvalidEnvelope("missing \"site_id\"".into())),
    };
    let sent_at = match envelope.get("sent_at") {
        None | Some(Value::Null) => None,
        Some(v) => match as_millis(v) {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                return Err(BatchError::InvalidEnvelope(
                    "\"sent_at\" must be a positive integer of milliseconds".into(),
                ))
            }
        },
    };
    let events = match envelope.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(BatchError::InvalidEnvelope("\"events\" must be an array".into())),
        None => return Err(BatchError::InvalidEnvelope("missing \"events\"".into())),
    };
    if events.len() > limits.max_events {
        return Err(BatchError::TooManyEvents { limit: limits.max_events, got: events.len() });
    }
    Ok(ParsedBatch { site_id, sent_at, events })
}

/// Checks one event against every rule and returns it typed.
///
/// `received_at` is the server clock; with `sent_at` it gives the skew
/// correction used for the time rules.
pub fn validate_event(
    value: &Value,
    sent_at: Option<i64>,
    received_at: i64,
    limits: &Limits,
) -> Result<Event, Rejection> {
    let Value::Object(obj) = value else {
        return Err(Rejection::new(RejectReason::NotAnObject, "the event must be a JSON object"));
    };

    let event_id = match obj.get("event_id") {
        None | Some(Value::Null) => {
            return Err(Rejection::new(RejectReason::MissingEventId, "missing event_id"))
        }
        Some(Value::String(id)) if is_valid_id(id) => id.clone(),
        Some(_) => {
            return Err(Rejection::new(
                RejectReason::InvalidEventId,
                format!("event_id must be 1 to {MAX_ID_LEN} visible ASCII characters"),
            ))
        }
    };

    let event_type = match obj.get("event_type") {
        None | Some(Value::Null) => {
            return Err(Rejection::new(RejectReason::MissingEventType, "missing event_type"))
        }
        Some(Value::String(name)) => EventType::parse(name).ok_or_else(|| {
            Rejection::new(RejectReason::UnknownEventType, format!("unknown event_type {name:?}"))
        })?,
        Some(other) => {
            return Err(Rejection::new(
                RejectReason::UnknownEventType,
                format!("event_type must be a string, got {}", json_type(other)),
            ))
        }
    };

    let ts = match obj.get("ts") {
        None | Some(Value::Null) => {
            return Err(Rejection::new(RejectReason::MissingTimestamp, "missing ts"))
        }
        Some(v) => match as_millis(v) {
            Some(ms) if ms > 0 => ms,
            _ => {
                return Err(Rejection::new(
                    RejectReason::InvalidTimestamp,
                    format!("ts must be a positive integer of milliseconds, got {v}"),
                ))
            }
        },
    };

    let anonymous_id = required_id(obj, "anonymous_id", RejectReason::MissingAnonymousId)?;
    let session_id = required_id(obj, "session_id", RejectReason::MissingSessionId)?;
    let user_id = match obj.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(bounded(s, "user_id", MAX_ID_LEN)?.to_string()),
        Some(other) => return Err(field_type("user_id", "a string or null", other)),
    };

    let page = parse_page(obj.get("page"))?;
    let context = parse_context(obj.get("context"))?;
    let props = parse_props(obj.get("props"))?;

    check_type_rules(event_type, &page, &props, user_id.as_deref())?;

    let event_ts = corrected_event_ts(ts, sent_at, received_at);
    if event_ts > received_at + limits.max_future_ms {
        return Err(Rejection::new(
            RejectReason::TimestampInFuture,
            format!(
                "event time is {} s ahead of the server clock (after skew correction)",
                (event_ts - received_at) / 1000
            ),
        ));
    }
    if event_ts < received_at - limits.horizon_ms {
        return Err(Rejection::new(
            RejectReason::TooLate,
            format!(
                "event time is {} h old; the lateness horizon is {} h",
                (received_at - event_ts) / 3_600_000,
                limits.horizon_ms / 3_600_000
            ),
        ));
    }

    Ok(Event { event_id, event_type, ts, anonymous_id, user_id, session_id, page, props, context })
}

/// Per-type rules: which props each event type requires, and value ranges.
fn check_type_rules(
    event_type: EventType,
    page: &Page,
    props: &Props,
    user_id: Option<&str>,
) -> Result<(), Rejection> {
    let required: &[(&str, bool)] = match event_type {
        EventType::PageView => {
            if page.url.is_empty() && page.path.is_empty() {
                return Err(Rejection::new(
                    RejectReason::MissingPage,
                    "page_view needs page.url or page.path",
                ));
            }
            &[]
        }
        EventType::Click => &[("tag", props.tag.is_some())],
        EventType::Search => &[("query", props.query.is_some())],
        EventType::AddToCart | EventType::RemoveFromCart => &[
            ("product_id", props.product_id.is_some()),
            ("price", props.price.is_some()),
            ("quantity", props.quantity.is_some()),
            ("currency", props.currency.is_some()),
        ],
        EventType::BeginCheckout => &[],
        EventType::Purchase => &[
            ("order_id", props.order_id.is_some()),
            ("product_id", props.product_id.is_some()),
            ("price", props.price.is_some()),
            ("quantity", props.quantity.is_some()),
            ("revenue", props.revenue.is_some()),
            ("currency", props.currency.is_some()),
        ],
        EventType::Identify => {
            if user_id.is_none() {
                return Err(Rejection::new(
                    RejectReason::MissingUserId,
                    "identify needs a non-empty user_id",
                ));
            }
            &[]
        }
        EventType::Custom => &[("name", props.name.is_some())],
    };
    if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
        return Err(Rejection::new(
            RejectReason::MissingProp,
            format!("{} needs props.{name}", event_type.as_str()),
        ));
    }

    for (name, amount) in [("price", props.price), ("revenue", props.revenue)] {
        if let Some(amount) = amount {
            if !amount.is_finite() || amount < 0.0 {
                return Err(Rejection::new(
                    RejectReason::InvalidPropValue,
                    format!("props.{name} must be a non-negative number, got {amount}"),
                ));
            }
        }
    }
    if let Some(quantity) = props.quantity {
        if quantity < 1 {
            return Err(Rejection::new(
                RejectReason::InvalidPropValue,
                format!("props.quantity must be at least 1, got {quantity}"),
            ));
        }
    }
    if let Some(currency) = &props.currency {
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Rejection::new(
                RejectReason::InvalidPropValue,
                format!("props.currency must be an ISO 4217 code like \"EUR\", got {currency:?}"),
            ));
        }
    }
    Ok(())
}

fn parse_page(value: Option<&Value>) -> Result<Page, Rejection> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Page::default()),
        Some(Value::Object(obj)) => obj,
        Some(other) => return Err(field_type("page", "an object", other)),
    };
    Ok(Page {
        url: optional_string(obj, "page.url", "url", MAX_URL_LEN)?,
        path: optional_string(obj, "page.path", "path", MAX_URL_LEN)?,
        referrer: optional_string(obj, "page.referrer", "referrer", MAX_URL_LEN)?,
        title: optional_string(obj, "page.title", "title", MAX_TEXT_LEN)?,
    })
}

fn parse_context(value: Option<&Value>) -> Result<Context, Rejection> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Context::default()),
        Some(Value::Object(obj)) => obj,
        Some(other) => return Err(field_type("context", "an object", other)),
    };
    Ok(Context {
        screen: optional_string(obj, "context.screen", "screen", MAX_ID_LEN)?,
        lang: optional_string(obj, "context.lang", "lang", MAX_ID_LEN)?,
        tz: optional_string(obj, "context.tz", "tz", MAX_ID_LEN)?,
    })
}

fn parse_props(value: Option<&Value>) -> Result<Props, Rejection> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(Props::default()),
        Some(Value::Object(obj)) => obj,
        Some(other) => return Err(field_type("props", "an object", other)),
    };
    let mut props = Props::default();
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let slot = match key.as_str() {
            "product_id" => &mut props.product_id,
            "category" => &mut props.category,
            "currency" => &mut props.currency,
            "order_id" => &mut props.order_id,
            "query" => &mut props.query,
            "tag" => &mut props.tag,
            "text" => &mut props.text,
            "href" => &mut props.href,
            "name" => &mut props.name,
            "price" => {
                props.price = Some(prop_number(key, value)?);
                continue;
            }
            "revenue" => {
                props.revenue = Some(prop_number(key, value)?);
                continue;
            }
            "quantity" => {
                props.quantity = Some(as_integer(value).ok_or_else(|| {
                    Rejection::new(
                        RejectReason::InvalidPropType,
                        format!("props.quantity must be an integer, got {}", json_type(value)),
                    )
                })?);
                continue;
            }
            _ => {
                props.extra.insert(key.clone(), value.clone());
                continue;
            }
        };
        let Value::String(text) = value else {
            return Err(Rejection::new(
                RejectReason::InvalidPropType,
                format!("props.{key} must be a string, got {}", json_type(value)),
            ));
        };
        let limit = if key == "href" { MAX_URL_LEN } else { MAX_TEXT_LEN };
        if text.chars().count() > limit {
            return Err(Rejection::new(
                RejectReason::FieldTooLong,
                format!("props.{key} is longer than {limit} characters"),
            ));
        }
        // An empty required string is as good as a missing one.
        if !text.is_empty() {
            *slot = Some(text.clone());
        }
    }
    if !props.extra.is_empty() {
        let size = serde_json::to_string(&props.extra).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > MAX_EXTRA_PROPS_BYTES {
            return Err(Rejection::new(
                RejectReason::FieldTooLong,
                format!("custom props take {size} bytes; at most {MAX_EXTRA_PROPS_BYTES} are allowed"),
            ));
        }
    }
    Ok(props)
}

fn prop_number(key: &str, value: &Value) -> Result<f64, Rejection> {
    value.as_f64().ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidPropType,
            format!("props.{key} must be a number, got {}", json_type(value)),
        )
    })
}

fn required_id(
    obj: &Map<String, Value>,
    field: &str,
    missing: RejectReason,
) -> Result<String, Rejection> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(Rejection::new(missing, format!("missing {field}"))),
        Some(Value::String(s)) if s.is_empty() => {
            Err(Rejection::new(missing, format!("{field} is empty")))
        }
        Some(Value::String(s)) => Ok(bounded(s, field, MAX_ID_LEN)?.to_string()),
        Some(other) => Err(field_type(field, "a string", other)),
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    limit: usize,
) -> Result<String, Rejection> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(bounded(s, path, limit)?.to_string()),
        Some(other) => Err(field_type(path, "a string", other)),
    }
}

fn bounded<'a>(s: &'a str, field: &str, limit: usize) -> Result<&'a str, Rejection> {
    if s.len() > limit && s.chars().count() > limit {
        return Err(Rejection::new(
            RejectReason::FieldTooLong,
            format!("{field} is longer than {limit} characters"),
        ));
    }
    Ok(s)
}

fn field_type(field: &str, expected: &str, got: &Value) -> Rejection {
    Rejection::new(
        RejectReason::InvalidFieldType,
        format!("{field} must be {expected}, got {}", json_type(got)),
    )
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Milliseconds as JSON: an integer, or a float with no fraction (some
/// JavaScript serializers write `1.7e12`).
fn as_millis(value: &Value) -> Option<i64> {
    as_integer(value)
}

fn as_integer(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
