//! The cursor under the batch reader: JSON text checked byte by byte as it
//! is passed, with strings borrowed from the text unless they carry
//! escapes. Only what [`super`] needs is here; every rule is elsewhere.

use std::borrow::Cow;

use super::{Json, ReadError, Result, Shape, MAX_DEPTH};

/// A cursor over JSON text that checks what it passes.
pub(super) struct Reader<'a> {
    pub(super) text: &'a str,
    bytes: &'a [u8],
    pub(super) pos: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Reader { text, bytes: text.as_bytes(), pos: 0, depth: 0 }
    }

    fn fail<T>(&self, message: &'static str) -> Result<T> {
        Err(ReadError { message, at: self.pos })
    }

    #[inline]
    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    #[inline]
    pub(super) fn peek(&mut self) -> Result<u8> {
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

    pub(super) fn finish(&mut self) -> Result<()> {
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
    pub(super) fn object(&mut self, mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>) -> Result<()> {
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
    pub(super) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
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
    pub(super) fn shaped<T>(&mut self, open: u8, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<Shape<T>> {
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
    pub(super) fn value(&mut self) -> Result<Json<'a>> {
        match self.peek()? {
            b'"' => Ok(Json::Str(self.string()?)),
            b'{' => self.object(|r, _| r.skip()).map(|()| Json::Object),
            b'[' => self.array(Reader::skip).map(|()| Json::Array),
            b't' => self.literal(b"true").map(|()| Json::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Json::Bool(false)),
            b'n' => self.literal(b"null").map(|()| Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.fail("expected a value"),
        }
    }

    /// Checks and passes over any value.
    pub(super) fn skip(&mut self) -> Result<()> {
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
            let quote = w ^ (ONES * u64::from(b'"'));
            let backslash = w ^ (ONES * u64::from(b'\\'));
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
