//! Reading a batch in one pass, without building a JSON tree.
//!
//! The rules need only each field's kind and scalar, and the collector
//! must keep every event's exact text, so a batch is read once, front to
//! back: each event into [`EventFields`] (strings borrowed from the body
//! unless they carry escapes) together with the span of its text. The
//! earlier way, `serde_json::Value`s, cost a map and a string allocation per
//! key and per value plus a second serialization for the raw copy, and was
//! most of the collect core's time; serde with borrowed fields still needed
//! two passes (one to split the array into raw events, one to read them).
//!
//! The reader accepts exactly the JSON that `serde_json` accepts (RFC 8259,
//! nesting below 128 levels, no lone surrogates, numbers within `f64`): a
//! test holds it to `serde_json::Value` on valid and broken input alike.
//! Reading never judges: every rule is left to [`crate::validate`].

use std::borrow::Cow;
use std::fmt;

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
    let text = std::str::from_utf8(body)
        .map_err(|e| ReadError { message: "invalid UTF-8", at: e.valid_up_to() })?;
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

/// The props the contract names.
pub const KNOWN_PROPS: [&str; 12] = [
    "product_id", "category", "price", "quantity", "currency", "revenue", "order_id", "query", "tag",
    "text", "href", "name",
];

/// `props` of an event: the props the contract names, and every other
/// prop as its JSON text.
#[derive(Debug, Default)]
pub struct PropsFields<'a> {
    /// Values of [`KNOWN_PROPS`], in that order; null when absent.
    pub known: [Json<'a>; KNOWN_PROPS.len()],
    /// Props the contract does not name (`data-*` attributes and the like).
    pub extra: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> PropsFields<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut props = PropsFields::default();
        r.object(|r, key| {
            // The last of a repeated key wins, as in `serde_json::Value`.
            if let Some(i) = KNOWN_PROPS.iter().position(|k| *k == key) {
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

/// A cursor over JSON text that checks what it passes.
struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader { text, bytes: text.as_bytes(), pos: 0, depth: 0 }
    }

    fn fail<T>(&self, message: &'static str) -> Result<T> {
        Err(ReadError { message, at: self.pos })
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Result<u8> {
        // JSON's whitespace is all below '!': one comparison for the usual
        // case of a batch without any.
        match self.bytes.get(self.pos) {
            Some(&b) if b > b' ' => Ok(b),
            _ => self.peek_past_whitespace(),
        }
    }

    #[cold]
    fn peek_past_whitespace(&mut self) -> Result<u8> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.fail("unexpected end of input"),
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.skip_ws();
        if self.pos < self.bytes.len() {
            return self.fail("trailing characters");
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("nesting too deep");
        }
        self.pos += 1;
        Ok(())
    }

    /// Reads an object, handing each key to `entry`, which must read its value.
    fn object(&mut self, mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>) -> Result<()> {
        self.enter()?;
        if self.peek()? == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek()? != b'"' {
                return self.fail("expected a key");
            }
            let key = self.string()?;
            if self.peek()? != b':' {
                return self.fail("expected ':'");
            }
            self.pos += 1;
            entry(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.fail("expected ',' or '}'"),
            }
        }
    }

    /// Reads an array, calling `element` to read each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.enter()?;
        if self.peek()? == b']' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.fail("expected ',' or ']'"),
            }
        }
    }

    /// A value that should be the container opened by `open` (`{` or `[`).
    fn shaped<T>(&mut self, open: u8, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<Shape<T>> {
        let next = self.peek()?;
        if next == open {
            return Ok(Shape::Is(read(self)?));
        }
        match self.value()? {
            Json::Null => Ok(Shape::Null),
            other => Ok(Shape::Other(other.kind())),
        }
    }

    /// Any value; a container is checked and reported by its kind only.
    fn value(&mut self) -> Result<Json<'a>> {
        match self.peek()? {
            b'"' => Ok(Json::Str(self.string()?)),
            b'{' => self.object(|r, _| r.skip()).map(|()| Json::Object),
            b'[' => self.array(|r| r.skip()).map(|()| Json::Array),
            b't' => self.literal(b"true").map(|()| Json::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Json::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.fail("expected a value"),
        }
    }

    /// Checks and passes over any value.
    fn skip(&mut self) -> Result<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            _ => self.value().map(drop),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.fail("expected a value")
        }
    }

    fn number(&mut self) -> Result<Json<'a>> {
        let start = self.pos;
        let digits = |r: &mut Self| {
            let from = r.pos;
            while r.bytes.get(r.pos).is_some_and(u8::is_ascii_digit) {
                r.pos += 1;
            }
            r.pos > from
        };
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.fail("invalid number"),
        }
        let mut integer = true;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            integer = false;
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        let text = &self.text[start..self.pos];
        if integer {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::Int(i));
            }
        }
        // Rare here (prices): serde_json's own conversion keeps the values
        // identical to what `serde_json::Value` reads, out-of-range included.
        match serde_json::from_str::<f64>(text) {
            Ok(x) => Ok(Json::Float(x)),
            Err(_) => Err(ReadError { message: "number out of range", at: start }),
        }
    }

    /// A string, borrowed from the text unless it has escapes.
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        let end = self.plain_run();
        if self.bytes.get(end) == Some(&b'"') {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        let mut out = String::new();
        self.pos = end;
        self.rest_of_string(start, Some(&mut out))?;
        Ok(Cow::Owned(out))
    }

    fn skip_string(&mut self) -> Result<()> {
        self.pos += 1;
        let start = self.pos;
        self.pos = self.plain_run();
        self.rest_of_string(start, None)
    }

    /// From `self.pos` inside a string (the text since `from` not yet
    /// copied) to past its closing quote, decoding escapes into `out`.
    #[cold]
    fn rest_of_string(&mut self, mut from: usize, mut out: Option<&mut String>) -> Result<()> {
        loop {
            match self.bytes.get(self.pos) {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    if let Some(out) = out.as_deref_mut() {
                        out.push_str(&self.text[from..self.pos]);
                    }
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    if let Some(out) = out.as_deref_mut() {
                        out.push_str(&self.text[from..self.pos]);
                    }
                    self.pos += 1;
                    let c = self.escape()?;
                    if let Some(out) = out.as_deref_mut() {
                        out.push(c);
                    }
                    from = self.pos;
                    self.pos = self.plain_run();
                }
                Some(_) => return self.fail("control character in string"),
            }
        }
    }

    /// The end of the run of ordinary string bytes from `self.pos`: the
    /// position of the next quote, backslash or control character (or the
    /// end). Eight bytes at a time, since strings are most of a batch.
    #[inline]
    fn plain_run(&self) -> usize {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        let (bytes, mut i) = (self.bytes, self.pos);
        while let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let quote = w ^ (ONES * b'"' as u64);
            let backslash = w ^ (ONES * b'\\' as u64);
            // A byte is flagged if it is zero after the XOR (that byte was
            // the quote or the backslash) or below 0x20; the lowest flag is
            // exact, which is all this needs.
            let flags = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (w.wrapping_sub(ONES * 0x20) & !w))
                & HIGH;
            if flags != 0 {
                return i + (flags.trailing_zeros() / 8) as usize;
            }
            i += 8;
        }
        while i < bytes.len() && !matches!(bytes[i], b'"' | b'\\' | 0..=0x1f) {
            i += 1;
        }
        i
    }

    /// An escape, just after its backslash.
    fn escape(&mut self) -> Result<char> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return self.fail("unterminated string");
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return self.fail("lone surrogate in \\u escape");
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return self.fail("lone surrogate in \\u escape");
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return self.fail("lone surrogate in \\u escape"),
                    unit => unit,
                };
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return self.fail("invalid \\u escape"),
                }
            }
            _ => return self.fail("invalid escape"),
        })
    }

    fn hex4(&mut self) -> Result<u32> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.fail("invalid \\u escape");
        };
        let mut unit = 0;
        for &d in digits {
            let Some(v) = (d as char).to_digit(16) else {
                return self.fail("invalid \\u escape");
            };
            unit = unit << 4 | v;
        }
        self.pos += 4;
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Json<'_> {
        let mut r = Reader::new(s);
        let v = r.value().unwrap();
        r.finish().unwrap();
        v
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let e = RawEvent::read(r#"{"event_id":"e-1","anonymous_id":"a\u002d1\n","ts":5,"extra":{"x":[1,{"y":"\ud83d\ude00"}]}}"#)
            .unwrap();
        let Shape::Is(e) = e.fields else { panic!("an object") };
        assert!(matches!(e.event_id, Json::Str(Cow::Borrowed("e-1"))));
        assert!(matches!(&e.anonymous_id, Json::Str(Cow::Owned(s)) if s == "a-1\n"));
        assert_eq!(e.ts, Json::Int(5));
        assert!(e.session_id.is_null(), "absent reads as null");
        assert_eq!(read(r#""\ud83d\ude00 \"q\" \\ \/""#), Json::Str("😀 \"q\" \\ /".into()));
    }

    #[test]
    fn kinds_and_numbers() {
        assert_eq!(read("[1,[2]]"), Json::Array);
        assert_eq!(read(r#" { "a" : { "b" : 1 } } "#), Json::Object);
        assert_eq!(read("true").kind(), "a boolean");
        assert_eq!(read("-3").as_integer(), Some(-3));
        assert_eq!(read("1.7e12").as_integer(), Some(1_700_000_000_000));
        assert_eq!(read("1.5").as_integer(), None);
        assert_eq!(read("18446744073709551615").as_integer(), None, "beyond i64");
        assert_eq!(read("2").as_f64(), Some(2.0));
        assert_eq!(read(r#""say \"hi\"""#).to_string(), r#""say \"hi\"""#);
    }

    #[test]
    fn broken_json_is_refused_where_it_breaks() {
        for (text, message) in [
            ("", "unexpected end of input"),
            ("[1,]", "expected a value"),
            ("{\"a\" 1}", "expected ':'"),
            ("{'a':1}", "expected a key"),
            ("01", "trailing characters"),
            ("1.", "invalid number"),
            ("-", "invalid number"),
            ("1e999", "number out of range"),
            ("\"a\tb\"", "control character in string"),
            ("\"\\x\"", "invalid escape"),
            ("\"\\ud800\"", "lone surrogate in \\u escape"),
            ("\"abc", "unterminated string"),
            ("nul", "expected a value"),
        ] {
            let mut r = Reader::new(text);
            let got = r.value().and_then(|_| r.finish());
            assert_eq!(got.map_err(|e| e.message), Err(message), "{text:?}");
        }
        let deep = "[".repeat(200);
        assert_eq!(Reader::new(&deep).value().unwrap_err().message, "nesting too deep");
    }

    #[test]
    fn a_container_of_the_wrong_shape_keeps_its_kind() {
        fn shape(s: &str) -> Shape<PageFields<'_>> {
            Reader::new(s).shaped(b'{', PageFields::read).unwrap()
        }
        assert!(matches!(shape("null"), Shape::Null));
        assert!(matches!(shape("[1]"), Shape::Other("an array")));
        assert!(matches!(shape(r#""home""#), Shape::Other("a string")));
        let Shape::Is(page) = shape(r#"{"url":"u","url":"v"}"#) else { panic!() };
        assert_eq!(page.url, Json::Str("v".into()), "the last of a repeated key wins");
    }

    #[test]
    fn a_batch_keeps_each_events_exact_text() {
        let body = br#"{"v":1,"events":[ {"a" : 1}, 2 ,{"event_id":"x"}],"site_id":"s"}"#;
        let Shape::Is(b) = read_batch(body, 500).unwrap() else { panic!() };
        let Some(Shape::Is(events)) = b.events else { panic!() };
        assert_eq!(events.iter().map(|e| e.json).collect::<Vec<_>>(), [r#"{"a" : 1}"#, "2", r#"{"event_id":"x"}"#]);
        assert!(matches!(events[1].fields, Shape::Other("a number")));
        assert_eq!(b.site_id, Some(Json::Str("s".into())));
        // Past the limit, events are counted and checked, not kept.
        let Shape::Is(b) = read_batch(br#"{"events":[{},{},{}]}"#, 2).unwrap() else { panic!() };
        assert_eq!((b.event_count, b.events.map(|e| matches!(e, Shape::Is(v) if v.len() == 2))), (3, Some(true)));
        assert!(read_batch(br#"{"events":[{},{},{]}"#, 2).is_err());
        assert_eq!(read_batch(b"{\"v\":\"\xff\"}", 2).unwrap_err().message, "invalid UTF-8");
    }

    #[test]
    fn props_keep_known_names_and_the_rest_as_text() {
        let Shape::Is(p) = Reader::new(r#"{"price":9.5,"data-x":{"k":[1]},"tag":"a","price":2}"#)
            .shaped(b'{', PropsFields::read)
            .unwrap()
        else {
            panic!()
        };
        let known: Vec<_> = KNOWN_PROPS.iter().zip(&p.known).filter(|(_, v)| !v.is_null()).collect();
        assert_eq!(known, [(&"price", &Json::Int(2)), (&"tag", &Json::Str("a".into()))]);
        assert_eq!(p.extra.len(), 1);
        assert_eq!((p.extra[0].0.as_ref(), p.extra[0].1), ("data-x", r#"{"k":[1]}"#));
    }

    /// The reader's own primitives assembled into a `serde_json::Value`, to
    /// compare with what serde_json reads from the same text.
    fn tree(r: &mut Reader) -> Result<serde_json::Value> {
        use serde_json::Value;
        Ok(match r.peek()? {
            b'{' => {
                let mut map = serde_json::Map::new();
                r.object(|r, key| {
                    map.insert(key.into_owned(), tree(r)?);
                    Ok(())
                })?;
                Value::Object(map)
            }
            b'[' => {
                let mut items = Vec::new();
                r.array(|r| {
                    items.push(tree(r)?);
                    Ok(())
                })?;
                Value::Array(items)
            }
            _ => match r.value()? {
                Json::Null => Value::Null,
                Json::Bool(b) => Value::Bool(b),
                Json::Int(i) => Value::from(i),
                Json::Float(x) => Value::from(x),
                Json::Str(s) => Value::String(s.into_owned()),
                Json::Array | Json::Object => unreachable!("containers are read above"),
            },
        })
    }

    /// Equal as JSON: numbers by value (serde_json keeps integers beyond
    /// `i64` as `u64`, the reader as floats).
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// Random JSON text, written by hand so that it has what serializers
    /// never write: whitespace everywhere, escapes of every kind, exponents.
    fn random_json(rng: &mut Rng, depth: u32, out: &mut String) {
        let ws = |rng: &mut Rng, out: &mut String| out.push_str(rng.pick(&["", "", " ", "\n\t", "\r\n  "]));
        ws(rng, out);
        match rng.below(if depth > 4 { 5 } else { 7 }) {
            0 => out.push_str(rng.pick(&["null", "true", "false"])),
            1 | 2 => out.push_str(rng.pick(&[
                "0", "-0", "7", "-12", "1732262400000", "9223372036854775807", "-9223372036854775808",
                "9223372036854775808", "18446744073709551616", "59.9", "-0.5", "1e3", "1E-7", "2.5e+10",
                "1.7e308", "4.9e-324", "123456789012345678901234567890", "0.1000000000000000055511151231257827",
            ])),
            3 | 4 => {
                out.push('"');
                for _ in 0..rng.below(6) {
                    out.push_str(rng.pick(&[
                        "a", "event_id", " ", "é", "😀", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
                        "\\u0041", "\\u00e9", "\\u20AC", "\\ud83d\\ude00", "\\u0000", "<>&", "utm_source=x",
                    ]));
                }
                out.push('"');
            }
            5 => {
                out.push('[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(rng, depth + 1, out);
                }
                ws(rng, out);
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.below(5) {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(rng, out);
                    let key = rng.pick(&["\"event_id\"", "\"props\"", "\"page\"", "\"v\"", "\"events\"", "\"k\\u0065y\"", "\"x\""]);
                    out.push_str(key);
                    ws(rng, out);
                    out.push(':');
                    random_json(rng, depth + 1, out);
                }
                ws(rng, out);
                out.push('}');
            }
        }
        ws(rng, out);
    }

    /// One random edit of the kind that breaks JSON.
    fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            let junk: &[u8] = rng.pick(&[
                b"{", b"}", b"[", b"]", b"\"", b",", b":", b"\\", b"\\u", b"\\ud800", b"\\udc00", b"0", b"-", b".",
                b"e", b"+", b"n", b"t", b"\x00", b"\x1f", b"\xff", b"\xc3", b" ", b"1e999",
            ]);
            match rng.below(3) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 if at < bytes.len() => {
                    bytes.splice(at..at + 1, junk.iter().copied());
                }
                _ => {
                    bytes.splice(at..at, junk.iter().copied());
                }
            }
        }
        bytes
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_what_it_refuses() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut valid, mut broken) = (0, 0);
        for case in 0..20_000 {
            let mut text = String::new();
            random_json(&mut rng, 0, &mut text);
            let input = if case % 2 == 0 { text.clone().into_bytes() } else { mutate(&mut rng, &text) };
            let expected = serde_json::from_slice::<serde_json::Value>(&input);
            // As a whole value, through the primitives...
            let got = std::str::from_utf8(&input).map_err(drop).and_then(|text| {
                let mut r = Reader::new(text);
                let v = tree(&mut r).map_err(drop)?;
                r.finish().map_err(drop)?;
                Ok(v)
            });
            match (&expected, &got) {
                (Ok(e), Ok(g)) => assert!(same(e, g), "{:?}: serde_json {e} but the reader {g}", String::from_utf8_lossy(&input)),
                (Err(_), Err(())) => {}
                _ => panic!("{:?}: serde_json {expected:?}, the reader {got:?}", String::from_utf8_lossy(&input)),
            }
            // ...and as a batch, where most of it is checked and skipped.
            assert_eq!(read_batch(&input, 500).is_ok(), expected.is_ok(), "{:?}", String::from_utf8_lossy(&input));
            if expected.is_ok() { valid += 1 } else { broken += 1 }
        }
        assert!(valid > 5_000 && broken > 5_000, "both kinds are exercised: {valid} valid, {broken} broken");
    }

    #[test]
    fn nesting_stops_where_serde_json_stops() {
        for depth in [126, 127, 128, 129] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let expected = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            assert_eq!(Reader::new(&text).value().is_ok(), expected, "depth {depth}");
        }
    }
}
