//! Validation: the batch envelope, then each event on its own, so that one
//! bad event becomes a bad row while the rest of the batch is accepted.
//!
//! Events are checked field by field (read by [`crate::read`]) rather than
//! by serde derive: each rule gives its own [`RejectReason`] and a precise
//! detail, which is what the `rejects` table and the tracker's developers
//! need.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::props::{PROPS, PROP_COUNT};
use crate::read::{read_batch, ContextFields, EventFields, Json, PageFields, PropsFields, RawEvent, Shape};
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
/// The most a `page_leave` may report as engaged time: a day, in ms.
pub const MAX_ENGAGED_MS: i64 = 24 * 3600 * 1000;

/// A batch envelope that passed the envelope checks; its events are read
/// but not yet judged: each is validated on its own.
#[derive(Debug)]
pub struct ParsedBatch<'a> {
    pub site_id: Cow<'a, str>,
    /// Client clock at send time; absent means no skew correction.
    pub sent_at: Option<i64>,
    pub events: Vec<RawEvent<'a>>,
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

/// A valid event, its strings borrowed from the batch wherever they needed
/// no unescaping: what enrichment takes. Copying every field out of the
/// body was most of what validation cost. [`Event`] is its owned form.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: EventType,
    /// Client clock, ms since the Unix epoch.
    pub ts: i64,
    pub anonymous_id: Cow<'a, str>,
    pub user_id: Option<Cow<'a, str>>,
    pub session_id: Cow<'a, str>,
    pub page_url: Cow<'a, str>,
    pub page_path: Cow<'a, str>,
    pub referrer: Cow<'a, str>,
    pub page_title: Cow<'a, str>,
    pub props: ValidProps<'a>,
    pub screen: Cow<'a, str>,
    pub lang: Cow<'a, str>,
    pub tz: Cow<'a, str>,
}

/// Where validation puts one prop's value, and its bound.
enum Slot<'s, 'a> {
    Text(&'s mut Option<Cow<'a, str>>, usize),
    Number(&'s mut Option<f64>),
    Integer(&'s mut Option<i64>),
}

macro_rules! slot {
    (Text, $field:expr) => {
        Slot::Text($field, MAX_TEXT_LEN)
    };
    (Url, $field:expr) => {
        Slot::Text($field, MAX_URL_LEN)
    };
    (Number, $field:expr) => {
        Slot::Number($field)
    };
    (Integer, $field:expr) => {
        Slot::Integer($field)
    };
}

macro_rules! owned {
    (Text, $value:expr) => {
        $value.map(Cow::into_owned)
    };
    (Url, $value:expr) => {
        $value.map(Cow::into_owned)
    };
    (Number, $value:expr) => {
        $value
    };
    (Integer, $value:expr) => {
        $value
    };
}

macro_rules! valid_props {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// The props of a [`ValidEvent`]; see [`Props`] for what each one is.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct ValidProps<'a> {
            $( pub $wire: $crate::borrowed_prop_type!($kind), )*
            /// Props the contract does not name, null ones left out.
            pub extra: BTreeMap<String, Value>,
        }

        impl<'a> ValidProps<'a> {
            /// Each prop's slot, in the order of [`PROPS`].
            fn slots(&mut self) -> [Slot<'_, 'a>; PROP_COUNT] {
                [$( slot!($kind, &mut self.$wire) ),*]
            }

            /// The props with their strings copied out of the batch.
            pub fn into_props(self) -> Props {
                Props { $( $wire: owned!($kind, self.$wire), )* extra: self.extra }
            }
        }
    };
}
crate::with_props!(valid_props);

impl ValidEvent<'_> {
    /// The event with its strings copied out of the batch.
    pub fn into_event(self) -> Event {
        let own = |s: Cow<str>| s.into_owned();
        let own_opt = |s: Option<Cow<str>>| s.map(Cow::into_owned);
        Event {
            event_id: own(self.event_id),
            event_type: self.event_type,
            ts: self.ts,
            anonymous_id: own(self.anonymous_id),
            user_id: own_opt(self.user_id),
            session_id: own(self.session_id),
            page: Page {
                url: own(self.page_url),
                path: own(self.page_path),
                referrer: own(self.referrer),
                title: own(self.page_title),
            },
            props: self.props.into_props(),
            context: Context { screen: own(self.screen), lang: own(self.lang), tz: own(self.tz) },
        }
    }
}

/// Checks the body size and the envelope (`v`, `site_id`, `sent_at`,
/// `events`).
pub fn parse_batch<'a>(body: &'a [u8], limits: &Limits) -> Result<ParsedBatch<'a>, BatchError> {
    if body.len() > limits.max_body_bytes {
        return Err(BatchError::BodyTooLarge { limit: limits.max_body_bytes });
    }
    let envelope = read_batch(body, limits.max_events).map_err(|e| BatchError::MalformedJson(e.to_string()))?;
    let Shape::Is(envelope) = envelope else {
        return Err(BatchError::InvalidEnvelope("the body must be a JSON object".into()));
    };
    match envelope.v {
        None => return Err(BatchError::InvalidEnvelope("missing \"v\" (wire version)".into())),
        Some(Json::Int(WIRE_VERSION)) => {}
        Some(v) => return Err(BatchError::UnsupportedVersion(v.to_string())),
    }
    let site_id = match envelope.site_id {
        Some(Json::Str(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s,
        Some(Json::Str(_)) => {
            return Err(BatchError::InvalidEnvelope(format!("\"site_id\" must be 1 to {MAX_ID_LEN} characters")))
        }
        Some(_) => return Err(BatchError::InvalidEnvelope("\"site_id\" must be a string".into())),
        None => return Err(BatchError::InvalidEnvelope("missing \"site_id\"".into())),
    };
    let sent_at = match envelope.sent_at {
        None | Some(Json::Null) => None,
        Some(v) => match v.as_integer() {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                return Err(BatchError::InvalidEnvelope(
                    "\"sent_at\" must be a positive integer of milliseconds".into(),
                ))
            }
        },
    };
    let events = match envelope.events {
        Some(Shape::Is(events)) => events,
        Some(_) => return Err(BatchError::InvalidEnvelope("\"events\" must be an array".into())),
        None => return Err(BatchError::InvalidEnvelope("missing \"events\"".into())),
    };
    if envelope.event_count > limits.max_events {
        return Err(BatchError::TooManyEvents { limit: limits.max_events, got: envelope.event_count });
    }
    Ok(ParsedBatch { site_id, sent_at, events })
}

/// Checks one event (its JSON text) against every rule and returns it typed.
///
/// `received_at` is the server clock; with `sent_at` it gives the skew
/// correction used for the time rules.
pub fn validate_event(json: &str, sent_at: Option<i64>, received_at: i64, limits: &Limits) -> Result<Event, Rejection> {
    match RawEvent::read(json) {
        Ok(event) => event.validate(sent_at, received_at, limits).map(ValidEvent::into_event),
        Err(e) => Err(Rejection::new(RejectReason::NotAnObject, format!("the event is not JSON: {e}"))),
    }
}

impl<'a> RawEvent<'a> {
    /// [`validate_event`] for an event of a parsed batch, borrowing from it.
    pub fn validate(
        self,
        sent_at: Option<i64>,
        received_at: i64,
        limits: &Limits,
    ) -> Result<ValidEvent<'a>, Rejection> {
        let Shape::Is(fields) = self.fields else {
            return Err(Rejection::new(RejectReason::NotAnObject, "the event must be a JSON object"));
        };
        check_event(fields, sent_at, received_at, limits)
    }
}

fn check_event<'a>(
    fields: EventFields<'a>,
    sent_at: Option<i64>,
    received_at: i64,
    limits: &Limits,
) -> Result<ValidEvent<'a>, Rejection> {
    let event_id = match fields.event_id {
        Json::Null => return Err(Rejection::new(RejectReason::MissingEventId, "missing event_id")),
        Json::Str(id) if is_valid_id(&id) => id,
        _ => {
            return Err(Rejection::new(
                RejectReason::InvalidEventId,
                format!("event_id must be 1 to {MAX_ID_LEN} visible ASCII characters"),
            ))
        }
    };

    let event_type = match &fields.event_type {
        Json::Null => return Err(Rejection::new(RejectReason::MissingEventType, "missing event_type")),
        Json::Str(name) => EventType::parse(name)
            .ok_or_else(|| Rejection::new(RejectReason::UnknownEventType, format!("unknown event_type {name:?}")))?,
        other => {
            return Err(Rejection::new(
                RejectReason::UnknownEventType,
                format!("event_type must be a string, got {}", other.kind()),
            ))
        }
    };

    let ts = match &fields.ts {
        Json::Null => return Err(Rejection::new(RejectReason::MissingTimestamp, "missing ts")),
        v => match v.as_integer() {
            Some(ms) if ms > 0 => ms,
            _ => {
                return Err(Rejection::new(
                    RejectReason::InvalidTimestamp,
                    format!("ts must be a positive integer of milliseconds, got {v}"),
                ))
            }
        },
    };

    let anonymous_id = required_id(fields.anonymous_id, "anonymous_id", RejectReason::MissingAnonymousId)?;
    let session_id = required_id(fields.session_id, "session_id", RejectReason::MissingSessionId)?;
    let user_id = match fields.user_id {
        Json::Null => None,
        Json::Str(s) if s.is_empty() => None,
        Json::Str(s) => Some(bounded(s, "user_id", MAX_ID_LEN)?),
        other => return Err(field_type("user_id", "a string or null", &other)),
    };

    let page = match fields.page {
        Shape::Null => PageFields::default(),
        Shape::Is(page) => page,
        Shape::Other(kind) => return Err(wrong_type("page", "an object", kind)),
    };
    let page_url = optional_string(page.url, "page.url", MAX_URL_LEN)?;
    let page_path = optional_string(page.path, "page.path", MAX_URL_LEN)?;
    let referrer = optional_string(page.referrer, "page.referrer", MAX_URL_LEN)?;
    let page_title = optional_string(page.title, "page.title", MAX_TEXT_LEN)?;
    let context = match fields.context {
        Shape::Null => ContextFields::default(),
        Shape::Is(context) => context,
        Shape::Other(kind) => return Err(wrong_type("context", "an object", kind)),
    };
    let screen = optional_string(context.screen, "context.screen", MAX_ID_LEN)?;
    let lang = optional_string(context.lang, "context.lang", MAX_ID_LEN)?;
    let tz = optional_string(context.tz, "context.tz", MAX_ID_LEN)?;
    let props = parse_props(fields.props)?;

    let event = ValidEvent {
        event_id,
        event_type,
        ts,
        anonymous_id,
        user_id,
        session_id,
        page_url,
        page_path,
        referrer,
        page_title,
        props,
        screen,
        lang,
        tz,
    };
    check_type_rules(&event)?;

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
    Ok(event)
}

/// Per-type rules: which props each event type requires, and value ranges.
fn check_type_rules(event: &ValidEvent) -> Result<(), Rejection> {
    let (event_type, props) = (event.event_type, &event.props);
    let required: &[(&str, bool)] = match event_type {
        EventType::PageView => {
            if event.page_url.is_empty() && event.page_path.is_empty() {
                return Err(Rejection::new(RejectReason::MissingPage, "page_view needs page.url or page.path"));
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
            if event.user_id.is_none() {
                return Err(Rejection::new(RejectReason::MissingUserId, "identify needs a non-empty user_id"));
            }
            &[]
        }
        EventType::Custom => &[("name", props.name.is_some())],
        EventType::PageLeave => &[("engaged_ms", props.engaged_ms.is_some())],
    };
    if let Some((name, _)) = required.iter().find(|(_, present)| !present) {
        return Err(Rejection::new(RejectReason::MissingProp, format!("{} needs props.{name}", event_type.as_str())));
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
    // A report covers at most a day of a page being visible; more is a
    // broken clock or a forged event, and would swamp the averages.
    if let Some(ms) = props.engaged_ms {
        if !(0..=MAX_ENGAGED_MS).contains(&ms) {
            return Err(Rejection::new(
                RejectReason::InvalidPropValue,
                format!("props.engaged_ms must be between 0 and {MAX_ENGAGED_MS} (a day), got {ms}"),
            ));
        }
    }
    if let Some(depth) = props.scroll_depth {
        if !(0..=100).contains(&depth) {
            return Err(Rejection::new(
                RejectReason::InvalidPropValue,
                format!("props.scroll_depth is a percent, from 0 to 100, got {depth}"),
            ));
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

fn parse_props<'a>(value: Shape<PropsFields<'a>>) -> Result<ValidProps<'a>, Rejection> {
    let fields = match value {
        Shape::Null => return Ok(ValidProps::default()),
        Shape::Is(fields) => fields,
        Shape::Other(kind) => return Err(wrong_type("props", "an object", kind)),
    };
    let mut props = ValidProps::default();
    for ((prop, value), slot) in PROPS.iter().zip(fields.known).zip(props.slots()) {
        if value.is_null() {
            continue;
        }
        let key = prop.name;
        match slot {
            Slot::Number(slot) => *slot = Some(prop_number(key, &value)?),
            Slot::Integer(slot) => {
                *slot = Some(value.as_integer().ok_or_else(|| {
                    Rejection::new(
                        RejectReason::InvalidPropType,
                        format!("props.{key} must be an integer, got {}", value.kind()),
                    )
                })?);
            }
            Slot::Text(slot, limit) => {
                let Json::Str(text) = value else {
                    return Err(Rejection::new(
                        RejectReason::InvalidPropType,
                        format!("props.{key} must be a string, got {}", value.kind()),
                    ));
                };
                let text = bounded(text, key, limit).map_err(|mut r| {
                    r.detail = format!("props.{}", r.detail);
                    r
                })?;
                // An empty required string is as good as a missing one.
                if !text.is_empty() {
                    *slot = Some(text);
                }
            }
        }
    }
    for (key, json) in fields.extra {
        if json == "null" {
            continue;
        }
        // Only props the contract does not name become a tree, and only here.
        let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
        props.extra.insert(key.into_owned(), value);
    }
    if !props.extra.is_empty() {
        let size = serde_json::to_string(&props.extra).map_or(usize::MAX, |s| s.len());
        if size > MAX_EXTRA_PROPS_BYTES {
            return Err(Rejection::new(
                RejectReason::FieldTooLong,
                format!("custom props take {size} bytes; at most {MAX_EXTRA_PROPS_BYTES} are allowed"),
            ));
        }
    }
    Ok(props)
}

fn prop_number(key: &str, value: &Json) -> Result<f64, Rejection> {
    value.as_f64().ok_or_else(|| {
        Rejection::new(RejectReason::InvalidPropType, format!("props.{key} must be a number, got {}", value.kind()))
    })
}

fn required_id<'a>(value: Json<'a>, field: &str, missing: RejectReason) -> Result<Cow<'a, str>, Rejection> {
    match value {
        Json::Null => Err(Rejection::new(missing, format!("missing {field}"))),
        Json::Str(s) if s.is_empty() => Err(Rejection::new(missing, format!("{field} is empty"))),
        Json::Str(s) => bounded(s, field, MAX_ID_LEN),
        other => Err(field_type(field, "a string", &other)),
    }
}

fn optional_string<'a>(value: Json<'a>, path: &str, limit: usize) -> Result<Cow<'a, str>, Rejection> {
    match value {
        Json::Null => Ok(Cow::Borrowed("")),
        Json::Str(s) => bounded(s, path, limit),
        other => Err(field_type(path, "a string", &other)),
    }
}

/// The string, if it has at most `limit` characters.
fn bounded<'a>(s: Cow<'a, str>, field: &str, limit: usize) -> Result<Cow<'a, str>, Rejection> {
    // Bytes bound characters from above: count them only when it matters.
    if s.len() > limit && s.chars().count() > limit {
        return Err(Rejection::new(RejectReason::FieldTooLong, format!("{field} is longer than {limit} characters")));
    }
    Ok(s)
}

fn field_type(field: &str, expected: &str, got: &Json) -> Rejection {
    wrong_type(field, expected, got.kind())
}

fn wrong_type(field: &str, expected: &str, got: &str) -> Rejection {
    Rejection::new(RejectReason::InvalidFieldType, format!("{field} must be {expected}, got {got}"))
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}
