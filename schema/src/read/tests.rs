//! The reader against its own cases and against serde_json.

use super::*;

fn read(s: &str) -> Json<'_> {
    let mut r = Reader::new(s);
    let v = r.value().unwrap();
    r.finish().unwrap();
    v
}

#[test]
fn strings_are_borrowed_unless_escaped() {
    let e = RawEvent::read(
        r#"{"event_id":"e-1","anonymous_id":"a\u002d1\n","ts":5,"extra":{"x":[1,{"y":"\ud83d\ude00"}]}}"#,
    )
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
    let Shape::Is(p) =
        Reader::new(r#"{"price":9.5,"data-x":{"k":[1]},"tag":"a","price":2}"#).shaped(b'{', PropsFields::read).unwrap()
    else {
        panic!()
    };
    let known: Vec<_> =
        PROPS.iter().zip(&p.known).filter(|(_, v)| !v.is_null()).map(|(prop, v)| (prop.name, v)).collect();
    assert_eq!(known, [("price", &Json::Int(2)), ("tag", &Json::Str("a".into()))]);
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
            "0",
            "-0",
            "7",
            "-12",
            "1732262400000",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551616",
            "59.9",
            "-0.5",
            "1e3",
            "1E-7",
            "2.5e+10",
            "1.7e308",
            "4.9e-324",
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827",
        ])),
        3 | 4 => {
            out.push('"');
            for _ in 0..rng.below(6) {
                out.push_str(rng.pick(&[
                    "a",
                    "event_id",
                    " ",
                    "é",
                    "😀",
                    "\\\"",
                    "\\\\",
                    "\\/",
                    "\\b",
                    "\\f",
                    "\\n",
                    "\\r",
                    "\\t",
                    "\\u0041",
                    "\\u00e9",
                    "\\u20AC",
                    "\\ud83d\\ude00",
                    "\\u0000",
                    "<>&",
                    "utm_source=x",
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
                let key = rng.pick(&[
                    "\"event_id\"",
                    "\"props\"",
                    "\"page\"",
                    "\"v\"",
                    "\"events\"",
                    "\"k\\u0065y\"",
                    "\"x\"",
                ]);
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
            b"{", b"}", b"[", b"]", b"\"", b",", b":", b"\\", b"\\u", b"\\ud800", b"\\udc00", b"0", b"-", b".", b"e",
            b"+", b"n", b"t", b"\x00", b"\x1f", b"\xff", b"\xc3", b" ", b"1e999",
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
            (Ok(e), Ok(g)) => {
                assert!(same(e, g), "{:?}: serde_json {e} but the reader {g}", String::from_utf8_lossy(&input));
            }
            (Err(_), Err(())) => {}
            _ => panic!("{:?}: serde_json {expected:?}, the reader {got:?}", String::from_utf8_lossy(&input)),
        }
        // ...and as a batch, where most of it is checked and skipped.
        assert_eq!(read_batch(&input, 500).is_ok(), expected.is_ok(), "{:?}", String::from_utf8_lossy(&input));
        if expected.is_ok() {
            valid += 1;
        } else {
            broken += 1;
        }
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
