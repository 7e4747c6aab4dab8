//! The edge's JSON reader (`clickstream_schema::read`) against serde_json,
//! on generated input: whole batches with random field values written in
//! every way JSON allows, random edits of them, JSON-ish token soup and
//! plain random bytes.
//!
//! The reader is hand-written for speed, so it is held to its contract: it
//! never panics, it accepts exactly what serde_json accepts, and what it
//! reads (the envelope's fields, each event's fields and exact text, the
//! props it names and the text of those it does not) is what serde_json
//! reads from the same bytes. Its own unit tests (schema/src/read/tests.rs)
//! cover the same ground with a fixed generator; this one shrinks a failure
//! to a small input.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use clickstream_schema::props::PROPS;
use clickstream_schema::read::{read_batch, EnvelopeFields, EventFields, IdFields, Json, PropsFields, RawEvent, Shape};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{Map, Value};

// --- What is generated ------------------------------------------------------

/// A JSON document as it will be written: objects keep their key order and
/// may repeat a key, which `serde_json::Value` cannot hold.
#[derive(Clone, Debug)]
enum Doc {
    Scalar(Value),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

const EVENT_SCALARS: [&str; 6] = ["event_id", "event_type", "ts", "anonymous_id", "user_id", "session_id"];
const PAGE_FIELDS: [&str; 4] = ["url", "path", "referrer", "title"];
const CONTEXT_FIELDS: [&str; 3] = ["screen", "lang", "tz"];
const OTHER_PROPS: [&str; 3] = ["data-x", "plan", "price "];

fn text() -> impl Strategy<Value = String> {
    let special =
        select(vec!['"', '\\', '/', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '€', '😀', '\u{2028}']);
    prop::collection::vec(prop_oneof![3 => any::<char>(), 2 => special, 2 => Just('a')], 0..10)
        .prop_map(String::from_iter)
}

fn number() -> impl Strategy<Value = Value> {
    let finite = prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO;
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-100i64..100).prop_map(Value::from),
        (1_600_000_000_000i64..1_900_000_000_000).prop_map(Value::from),
        finite.prop_map(Value::from),
        select(vec![0.5, -0.0, 59.9, 1e-7, 1.7e308, 4.9e-324, 9.0e15]).prop_map(Value::from),
    ]
}

fn scalar() -> impl Strategy<Value = Doc> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), text().prop_map(Value::String),]
        .prop_map(Doc::Scalar)
}

fn key(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![4 => select(names).prop_map(str::to_string), 1 => text()]
}

/// Any value, nested a little.
fn doc() -> impl Strategy<Value = Doc> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Doc::Array),
            prop::collection::vec((key(&EVENT_SCALARS), inner), 0..4).prop_map(Doc::Object),
        ]
    })
}

/// An object of the named fields (some missing, some repeated, a few
/// others), each holding any value.
fn fields(names: &'static [&'static str]) -> impl Strategy<Value = Doc> {
    prop::collection::vec((key(names), doc()), 0..names.len() + 2).prop_map(Doc::Object)
}

/// What should be an object of the named fields: mostly one.
fn shaped(names: &'static [&'static str]) -> impl Strategy<Value = Doc> {
    prop_oneof![4 => fields(names), 1 => doc()]
}

fn props() -> impl Strategy<Value = Doc> {
    let names: &'static [&'static str] =
        Box::leak(PROPS.iter().map(|p| p.name).chain(OTHER_PROPS).collect::<Vec<_>>().into_boxed_slice());
    shaped(names)
}

fn event() -> impl Strategy<Value = Doc> {
    let entry = prop_oneof![
        6 => (select(EVENT_SCALARS.as_slice()).prop_map(str::to_string), doc()),
        2 => shaped(&PAGE_FIELDS).prop_map(|d| ("page".to_string(), d)),
        3 => props().prop_map(|d| ("props".to_string(), d)),
        1 => shaped(&CONTEXT_FIELDS).prop_map(|d| ("context".to_string(), d)),
        1 => (text(), doc()),
    ];
    prop_oneof![9 => prop::collection::vec(entry, 0..12).prop_map(Doc::Object), 1 => doc()]
}

fn batch() -> impl Strategy<Value = Doc> {
    let events = prop_oneof![9 => prop::collection::vec(event(), 0..6).prop_map(Doc::Array), 1 => doc()];
    let entry = prop_oneof![
        2 => prop_oneof![3 => Just(Doc::Scalar(Value::from(1))), 1 => doc()].prop_map(|d| ("v".to_string(), d)),
        2 => prop_oneof![text().prop_map(|s| Doc::Scalar(Value::String(s))), doc()].prop_map(|d| ("site_id".to_string(), d)),
        2 => prop_oneof![number().prop_map(Doc::Scalar), doc()].prop_map(|d| ("sent_at".to_string(), d)),
        1 => events.clone().prop_map(|d| ("events".to_string(), d)),
        1 => (text(), doc()),
    ];
    // Mostly an object with events somewhere among the other fields.
    let envelope = (
        prop::collection::vec(entry.clone(), 0..4),
        prop::option::weighted(0.9, events),
        prop::collection::vec(entry, 0..3),
    )
        .prop_map(|(before, events, after)| {
            Doc::Object(before.into_iter().chain(events.map(|e| ("events".to_string(), e))).chain(after).collect())
        });
    prop_oneof![19 => envelope, 1 => doc()]
}

/// Mostly no limit in reach; sometimes one that the events pass.
fn max_events() -> impl Strategy<Value = usize> {
    prop_oneof![Just(500), 0usize..4]
}

/// The choices serializers never make (whitespace, escapes, number forms),
/// drawn by proptest; the plain choice once they run out.
struct Style(std::vec::IntoIter<u8>);

impl Style {
    fn pick(&mut self, n: u8) -> u8 {
        self.0.next().unwrap_or(0) % n
    }
}

/// Writes `doc` as JSON in the given style.
fn write(doc: &Doc, style: &mut Style, out: &mut String) {
    let ws = |choice: u8, out: &mut String| {
        out.push_str(["", " ", "\n", "\t", "\r\n  "].get(choice as usize).unwrap_or(&""));
    };
    ws(style.pick(12), out);
    match doc {
        Doc::Scalar(Value::String(s)) => write_string(s, style, out),
        Doc::Scalar(Value::Number(n)) => {
            out.push_str(&n.to_string());
            if n.is_i64() || n.is_u64() {
                out.push_str(["", "", "", ".0", "e0", "E+0", ".000e-0"][style.pick(7) as usize]);
            }
        }
        Doc::Scalar(v) => out.push_str(&v.to_string()),
        Doc::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, style, out);
            }
            ws(style.pick(8), out);
            out.push(']');
        }
        Doc::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(style.pick(8), out);
                write_string(key, style, out);
                ws(style.pick(8), out);
                out.push(':');
                write(value, style, out);
            }
            ws(style.pick(8), out);
            out.push('}');
        }
    }
    ws(style.pick(12), out);
}

fn write_string(s: &str, style: &mut Style, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = matches!(c, '"' | '\\' | '\0'..='\u{1f}');
        match (style.pick(4), short) {
            (0, _) => {
                // \uXXXX, a surrogate pair beyond the basic plane, in either case.
                let mut units = [0; 2];
                for unit in c.encode_utf16(&mut units) {
                    let hex = format!("\\u{unit:04x}");
                    out.push_str(&if style.pick(2) == 0 { hex } else { hex.to_uppercase().replace("\\U", "\\u") });
                }
            }
            (1, Some(short)) => out.push_str(short),
            _ if must_escape => {
                out.push_str(short.map_or_else(|| format!("\\u{:04x}", c as u32), str::to_string).as_str());
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Pieces that break JSON, or nearly do.
const JUNK: [&[u8]; 26] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"0",
    b"-",
    b".",
    b"e",
    b"+",
    b"n",
    b"tru",
    b"\x00",
    b"\x1f",
    b"\xff",
    b"\xc3",
    b"\xf0\x9f",
    b" ",
    b"1e999",
];

/// Applies edits (delete, replace, insert) at positions drawn from `at`.
fn edit(text: &str, edits: &[(Index, u8, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for (at, kind, junk) in edits {
        let at = at.index(bytes.len() + 1);
        match kind % 3 {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => {
                bytes.splice(at..=at, junk.iter().copied());
            }
            _ => {
                bytes.splice(at..at, junk.iter().copied());
            }
        }
    }
    bytes
}

fn junk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => select(JUNK.as_slice()).prop_map(<[u8]>::to_vec), 1 => any::<u8>().prop_map(|b| vec![b])]
}

// --- What is checked --------------------------------------------------------

/// Reads `input` as a batch (and as one event) and holds the reader to
/// serde_json. Panics say what differed.
fn check(input: &[u8], max_events: usize) {
    let shown = String::from_utf8_lossy(input);
    let expected = serde_json::from_slice::<Value>(input);
    let got = read_batch(input, max_events);
    assert_eq!(got.is_ok(), expected.is_ok(), "{shown:?}: serde_json {expected:?}, the reader {got:?}");
    if let (Ok(shape), Ok(value)) = (&got, &expected) {
        check_shape(shape, Some(value), |envelope, map: &Map<String, Value>| {
            check_envelope(envelope, map, max_events);
        });
    }

    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let event = RawEvent::read(text);
    assert_eq!(event.is_ok(), expected.is_ok(), "{shown:?} as one event: {event:?}");
    if let (Ok(event), Ok(value)) = (&event, &expected) {
        assert_eq!(event.json, text);
        check_shape(event.fields(), Some(value), check_event);
    }
    // Only ever given an event's text, which is JSON; anything else must
    // not panic.
    let ids = IdFields::of(text);
    if let Ok(Value::Object(map)) = &expected {
        same(&ids.event_id, map.get("event_id"));
        same(&ids.anonymous_id, map.get("anonymous_id"));
    }
}

fn check_envelope(envelope: &EnvelopeFields, map: &Map<String, Value>, max_events: usize) {
    for (name, field) in [("v", &envelope.v), ("site_id", &envelope.site_id), ("sent_at", &envelope.sent_at)] {
        match field {
            None => assert!(!map.contains_key(name), "{name} read as absent but it is {:?}", map[name]),
            Some(json) => same(json, Some(&map[name])),
        }
    }
    let Some(events) = &envelope.events else {
        assert!(!map.contains_key("events"), "events read as absent");
        return assert_eq!(envelope.event_count, 0);
    };
    let value = &map["events"];
    check_shape(events, Some(value), |kept: &Vec<RawEvent>, items: &[Value]| {
        assert_eq!(envelope.event_count, items.len(), "every event is counted");
        assert_eq!(kept.len(), items.len().min(max_events), "events past the limit are not kept");
        for (event, item) in kept.iter().zip(items) {
            let text: Value = serde_json::from_str(event.json).expect("an event's text is JSON");
            assert_eq!(&text, item, "an event keeps its exact text");
            check_shape(event.fields(), Some(item), check_event);
        }
    });
}

fn check_event(e: &EventFields, map: &Map<String, Value>) {
    let scalars = [&e.event_id, &e.event_type, &e.ts, &e.anonymous_id, &e.user_id, &e.session_id];
    for (name, json) in EVENT_SCALARS.iter().zip(scalars) {
        same(json, map.get(*name));
    }
    check_shape(&e.page, map.get("page"), |page, map: &Map<String, Value>| {
        for (name, json) in PAGE_FIELDS.iter().zip([&page.url, &page.path, &page.referrer, &page.title]) {
            same(json, map.get(*name));
        }
    });
    check_shape(&e.context, map.get("context"), |context, map: &Map<String, Value>| {
        for (name, json) in CONTEXT_FIELDS.iter().zip([&context.screen, &context.lang, &context.tz]) {
            same(json, map.get(*name));
        }
    });
    check_shape(&e.props, map.get("props"), check_props);
}

fn check_props(props: &PropsFields, map: &Map<String, Value>) {
    for (prop, json) in PROPS.iter().zip(&props.known) {
        same(json, map.get(prop.name));
    }
    let mut others: Vec<&str> =
        map.keys().map(String::as_str).filter(|k| !PROPS.iter().any(|p| p.name == *k)).collect();
    let mut extra: Vec<&str> = props.extra.iter().map(|(k, _)| k.as_ref()).collect();
    others.sort_unstable();
    extra.sort_unstable();
    assert_eq!(extra, others, "each other prop once");
    for (key, text) in &props.extra {
        let value: Value = serde_json::from_str(text).expect("a prop's text is JSON");
        assert_eq!(&value, &map[key.as_ref()], "prop {key:?} keeps its text");
    }
}

/// A value read as a container (an object of fields, an array of events):
/// its contents checked by `inner`, or else the kind it had. Absent reads
/// as null.
fn check_shape<T, C: ?Sized>(shape: &Shape<T>, value: Option<&Value>, inner: impl FnOnce(&T, &C))
where
    Value: AsContainer<C>,
{
    let value = value.unwrap_or(&Value::Null);
    match (shape, value.as_container()) {
        (Shape::Is(fields), Some(container)) => inner(fields, container),
        (Shape::Null, None) => assert!(value.is_null(), "read as null but it is {value}"),
        (Shape::Other(kind), None) => assert_eq!(*kind, kind_of(value), "{value}"),
        (Shape::Is(_), None) => panic!("read as the container but it is {value}"),
        (_, Some(_)) => panic!("{value} is the container but was not read as one"),
    }
}

/// The container a [`Shape`] wants: an object of fields or an array of events.
trait AsContainer<C: ?Sized> {
    fn as_container(&self) -> Option<&C>;
}

impl AsContainer<Map<String, Value>> for Value {
    fn as_container(&self) -> Option<&Map<String, Value>> {
        self.as_object()
    }
}

impl AsContainer<[Value]> for Value {
    fn as_container(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the reader read is what serde_json read (absent is null; numbers
/// by value, an integer exactly; containers by kind).
fn same(json: &Json, value: Option<&Value>) {
    let value = value.unwrap_or(&Value::Null);
    let ok = match (json, value) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        (Json::Str(a), Value::String(b)) => a == b,
        (Json::Array, Value::Array(_)) | (Json::Object, Value::Object(_)) => true,
        // serde_json reads `-0` as the float -0.0.
        (Json::Int(i), Value::Number(n)) => n.as_i64() == Some(*i) || (*i == 0 && n.as_f64() == Some(0.0)),
        (Json::Float(x), Value::Number(n)) => n.as_f64() == Some(*x),
        _ => false,
    };
    assert!(ok, "the reader read {json:?} where serde_json read {value}");
}

// --- The properties ---------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn batches_read_as_serde_json_reads_them(
        batch in batch(),
        style in prop::collection::vec(any::<u8>(), 0..512),
        max_events in max_events(),
    ) {
        let mut text = String::new();
        write(&batch, &mut Style(style.into_iter()), &mut text);
        prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "the generator writes JSON: {text:?}");
        check(text.as_bytes(), max_events);
    }

    #[test]
    fn edited_batches_are_refused_or_read_as_serde_json_reads_them(
        batch in batch(),
        style in prop::collection::vec(any::<u8>(), 0..512),
        edits in prop::collection::vec((any::<Index>(), 0u8..3, junk()), 1..4),
        max_events in max_events(),
    ) {
        let mut text = String::new();
        write(&batch, &mut Style(style.into_iter()), &mut text);
        check(&edit(&text, &edits), max_events);
    }

    #[test]
    fn json_ish_token_soup_never_panics_and_agrees(pieces in prop::collection::vec(junk(), 0..24)) {
        check(&pieces.concat(), 4);
    }

    #[test]
    fn any_bytes_never_panic_and_agree(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check(&bytes, 4);
    }
}
