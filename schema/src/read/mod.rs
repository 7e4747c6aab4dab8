//! Reading a batch in one pass, without building a JSON tree.
//!
//! The rules need only each field's kind and scalar, and the collector
//! must keep every event's exact text, so a batch is read once, front to
//! back: each event into [`EventFields`] (strings borrowed from the body
//! unless they carry escapes) together with the span of its text.
//!
//! The JSON reader under it (`reader.rs`) is written by hand on purpose, where
//! elsewhere a crate replaced hand-written code: it is the hot path of the
//! collect core, in the Cloudflare Worker (whose CPU time per request and
//! script size are both capped) and in the backend's `/v1/batch`. The earlier
//! way, `serde_json::Value`s, cost a map and a string allocation per key and
//! per value plus a second serialization for the raw copy, and was most of
//! the collect core's time; serde with borrowed fields still needed two
//! passes (one to split the array into raw events, one to read them), and
//! the faster JSON crates (simd-json, sonic-rs) are built around x86 and ARM
//! SIMD, which the Worker's wasm32 build does not enable.
//!
//! The reader accepts exactly the JSON that `serde_json` accepts (RFC 8259,
//! nesting below 128 levels, no lone surrogates, numbers within `f64`) and
//! reads the same values: `tests.rs` holds it to `serde_json::Value` on
//! valid and broken input alike, and `edge-worker/tests/json_reader.rs`
//! does so with proptest on whole batches and random edits of them.
//! Reading never judges: every rule is left to [`crate::validate`].

use std::borrow::Cow;
use std::fmt;

mod reader;

use reader::Reader;

use crate::props::{PROPS, PROP_COUNT};

/// The deepest nesting read: where `serde_json` stops too.
const MAX_DEPTH: u32 = 127;

/// Input that is not JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError {
    pub message: &'static str,
    /// Byte offset where reading stopped.
    pub at: usize,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

impl std::error::Error for ReadError {}

type Result<T> = std::result::Result<T, ReadError>;

/// One JSON value, as much of it as the rules need: a container is only
/// its kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Json<'a> {
    /// Also what an absent field reads as: the event rules treat both alike.
    #[default]
    Null,
    Bool(bool),
    /// A number written without fraction or exponent that fits `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Json<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The kind, as error details name it ("a string").
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::Float(_) => "a number",
            Json::Str(_) => "a string",
            Json::Array => "an array",
            Json::Object => "an object",
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Json::Int(i) => Some(i as f64),
            Json::Float(f) => Some(f),
            _ => None,
        }
    }

    /// An integer, or a float with no fraction (some JavaScript serializers
    /// write `1.7e12`); floats beyond 2^53 are not exact and are refused.
    pub fn as_integer(&self) -> Option<i64> {
        match *self {
            Json::Int(i) => Some(i),
            Json::Float(f) => (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64),
            _ => None,
        }
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(i) => write!(f, "{i}"),
            Json::Float(x) => write!(f, "{x}"),
            Json::Str(s) => write!(f, "{}", serde_json::Value::from(s.as_ref())),
            Json::Array => f.write_str("an array"),
            Json::Object => f.write_str("an object"),
        }
    }
}

/// A value that should be a container `T`: read into it, or kept as the
/// kind it had instead, so the rule that wanted it can say what it got.
#[derive(Debug, Default)]
pub enum Shape<T> {
    /// Null or absent.
    #[default]
    Null,
    Is(T),
    Other(&'static str),
}

/// The JSON text of one value from a batch, read.
#[derive(Debug)]
pub struct RawEvent<'a> {
    /// The event exactly as it was sent.
    pub json: &'a str,
    pub(crate) fields: Shape<EventFields<'a>>,
}

impl<'a> RawEvent<'a> {
    /// Reads one event's text on its own (a batch reads its events itself).
    pub fn read(json: &'a str) -> Result<RawEvent<'a>> {
        let mut r = Reader::new(json);
        let fields = r.shaped(b'{', EventFields::read)?;
        r.finish()?;
        Ok(RawEvent { json, fields })
    }

    /// What was read of the event: its fields, or the kind it had instead.
    pub fn fields(&self) -> &Shape<EventFields<'a>> {
        &self.fields
    }
}

/// The envelope of a batch. `None` is an absent field: unlike in events,
/// an absent version and a null one get different answers.
#[derive(Debug, Default)]
pub struct EnvelopeFields<'a> {
    pub v: Option<Json<'a>>,
    pub site_id: Option<Json<'a>>,
    pub sent_at: Option<Json<'a>>,
    pub events: Option<Shape<Vec<RawEvent<'a>>>>,
    /// How many events the batch holds, also past `max_events`.
    pub event_count: usize,
}

/// Reads a batch body. Events beyond `max_events` are checked as JSON and
/// counted, not kept, so an oversized batch costs no memory.
pub fn read_batch(body: &[u8], max_events: usize) -> Result<Shape<EnvelopeFields<'_>>> {
    let text = std::str::from_utf8(body).map_err(|e| ReadError { message: "invalid UTF-8", at: e.valid_up_to() })?;
    let mut r = Reader::new(text);
    let envelope = r.shaped(b'{', |r| {
        let mut b = EnvelopeFields::default();
        r.object(|r, key| {
            match key.as_ref() {
                "v" => b.v = Some(r.value()?),
                "site_id" => b.site_id = Some(r.value()?),
                "sent_at" => b.sent_at = Some(r.value()?),
                "events" => {
                    b.event_count = 0;
                    let count = &mut b.event_count;
                    b.events = Some(r.shaped(b'[', |r| {
                        let mut events = Vec::with_capacity(64.min(max_events));
                        r.array(|r| {
                            *count += 1;
                            if events.len() == max_events {
                                return r.skip();
                            }
                            r.skip_ws();
                            let start = r.pos;
                            let fields = r.shaped(b'{', EventFields::read)?;
                            events.push(RawEvent { json: &r.text[start..r.pos], fields });
                            Ok(())
                        })?;
                        Ok(events)
                    })?);
                }
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(b)
    })?;
    r.finish()?;
    Ok(envelope)
}

/// Declares a struct of [`Json`] fields read from an object: the named keys
/// are kept (the last of a repeated key wins, as in `serde_json::Value`),
/// others are checked and skipped.
macro_rules! json_fields {
    ($(#[$doc:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name<'a> {
            $(pub $field: Json<'a>,)*
        }

        impl<'a> $name<'a> {
            fn read(r: &mut Reader<'a>) -> Result<Self> {
                let mut fields = $name::default();
                r.object(|r, key| {
                    match key.as_ref() {
                        $(stringify!($field) => fields.$field = r.value()?,)*
                        _ => r.skip()?,
                    }
                    Ok(())
                })?;
                Ok(fields)
            }
        }
    };
}

json_fields!(
    /// `page` of an event.
    PageFields { url, path, referrer, title }
);
json_fields!(
    /// `context` of an event.
    ContextFields { screen, lang, tz }
);
json_fields!(
    /// The two ids a bad row keeps from its payload when it has them.
    IdFields { event_id, anonymous_id }
);

impl<'a> IdFields<'a> {
    /// The ids of an event's text, where it is an object that has them.
    pub fn of(json: &'a str) -> IdFields<'a> {
        let mut r = Reader::new(json);
        match r.shaped(b'{', IdFields::read) {
            Ok(Shape::Is(ids)) => ids,
            _ => IdFields::default(),
        }
    }
}

/// The top level of an event.
#[derive(Debug, Default)]
pub struct EventFields<'a> {
    pub event_id: Json<'a>,
    pub event_type: Json<'a>,
    pub ts: Json<'a>,
    pub anonymous_id: Json<'a>,
    pub user_id: Json<'a>,
    pub session_id: Json<'a>,
    pub page: Shape<PageFields<'a>>,
    pub props: Shape<PropsFields<'a>>,
    pub context: Shape<ContextFields<'a>>,
}

impl<'a> EventFields<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut e = EventFields::default();
        r.object(|r, key| {
            match key.as_ref() {
                "event_id" => e.event_id = r.value()?,
                "event_type" => e.event_type = r.value()?,
                "ts" => e.ts = r.value()?,
                "anonymous_id" => e.anonymous_id = r.value()?,
                "user_id" => e.user_id = r.value()?,
                "session_id" => e.session_id = r.value()?,
                "page" => e.page = r.shaped(b'{', PageFields::read)?,
                "props" => e.props = r.shaped(b'{', PropsFields::read)?,
                "context" => e.context = r.shaped(b'{', ContextFields::read)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(e)
    }
}

/// `props` of an event: the props the contract names, and every other
/// prop as its JSON text.
#[derive(Debug, Default)]
pub struct PropsFields<'a> {
    /// Values of the props the contract names ([`PROPS`]), in that order;
    /// null when absent.
    pub known: [Json<'a>; PROP_COUNT],
    /// Props the contract does not name (`data-*` attributes and the like).
    pub extra: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> PropsFields<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut props = PropsFields::default();
        r.object(|r, key| {
            // The last of a repeated key wins, as in `serde_json::Value`.
            if let Some(i) = PROPS.iter().position(|p| p.name == key) {
                props.known[i] = r.value()?;
            } else {
                r.skip_ws();
                let start = r.pos;
                r.skip()?;
                let text = &r.text[start..r.pos];
                props.extra.retain(|(k, _)| *k != key);
                props.extra.push((key, text));
            }
            Ok(())
        })?;
        Ok(props)
    }
}

#[cfg(test)]
mod tests;
