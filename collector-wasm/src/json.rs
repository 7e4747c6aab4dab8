//! The contract's event, written as JSON by hand, on purpose: the tracker
//! must stay within 20 KB gzipped (wasm and loader together, measured by
//! scripts/build-tracker.sh and collector-wasm/e2e/size.test.mjs), and
//! serde_json's writer and its float formatting cost more than half of
//! that budget once compiled to wasm; this writer is a few hundred bytes.
//! The tests hold it to serde_json's output byte for byte, so the wire form
//! cannot drift from the contract's types.

use clickstream_schema::{Event, Props};

use crate::props::Extra;

/// The event's JSON; `extra` holds its extra props (`e.props.extra` is
/// not read: see [`crate::props`]).
pub fn event(e: &Event, extra: &Extra) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"event_id\":");
    string(&mut out, &e.event_id);
    out.push_str(",\"event_type\":");
    string(&mut out, e.event_type.as_str());
    out.push_str(",\"ts\":");
    int(&mut out, e.ts);
    out.push_str(",\"anonymous_id\":");
    string(&mut out, &e.anonymous_id);
    out.push_str(",\"user_id\":");
    match &e.user_id {
        Some(id) => string(&mut out, id),
        None => out.push_str("null"),
    }
    out.push_str(",\"session_id\":");
    string(&mut out, &e.session_id);
    out.push_str(",\"page\":");
    let p = &e.page;
    object(&mut out, [("url", &p.url), ("path", &p.path), ("referrer", &p.referrer), ("title", &p.title)]);
    out.push_str(",\"props\":");
    props(&mut out, &e.props, extra);
    out.push_str(",\"context\":");
    let c = &e.context;
    object(&mut out, [("screen", &c.screen), ("lang", &c.lang), ("tz", &c.tz)]);
    out.push('}');
    out
}

/// An object of strings, empty ones left out (as the contract's serde does).
fn object<const N: usize>(out: &mut String, fields: [(&str, &String); N]) {
    let mut first = true;
    out.push('{');
    for (name, value) in fields.into_iter().filter(|(_, v)| !v.is_empty()) {
        key(out, name, &mut first);
        string(out, value);
    }
    out.push('}');
}

fn key(out: &mut String, name: &str, first: &mut bool) {
    if !*first {
        out.push(',');
    }
    *first = false;
    string(out, name);
    out.push(':');
}

/// Optional props in the contract's order (`clickstream_schema::props`),
/// absent ones left out. A prop added there must be added here too: the
/// test below names every field of `Props`, so it stops compiling until it is.
fn props(out: &mut String, p: &Props, extra: &Extra) {
    let mut first = true;
    out.push('{');
    let text = |out: &mut String, first: &mut bool, name: &str, value: &Option<String>| {
        if let Some(v) = value {
            key(out, name, first);
            string(out, v);
        }
    };
    text(out, &mut first, "product_id", &p.product_id);
    text(out, &mut first, "category", &p.category);
    if let Some(v) = p.price {
        key(out, "price", &mut first);
        float(out, v);
    }
    if let Some(v) = p.quantity {
        key(out, "quantity", &mut first);
        int(out, v);
    }
    if let Some(v) = p.revenue {
        key(out, "revenue", &mut first);
        float(out, v);
    }
    text(out, &mut first, "currency", &p.currency);
    for (name, value) in [
        ("query", &p.query),
        ("order_id", &p.order_id),
        ("tag", &p.tag),
        ("text", &p.text),
        ("href", &p.href),
        ("name", &p.name),
    ] {
        text(out, &mut first, name, value);
    }
    if !extra.members().is_empty() {
        if !first {
            out.push(',');
        }
        out.push_str(extra.members());
    }
    out.push('}');
}

/// A JSON string, escaped as serde_json escapes.
pub fn string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JS number: an integer when it is one.
pub fn number(out: &mut String, n: f64) {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        int(out, n as i64);
    } else {
        float(out, n);
    }
}

pub fn int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    uint(out, n.unsigned_abs());
}

fn uint(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(*d as char);
    }
}

/// A decimal that reads back as exactly `x`; the shortest one (serde_json's
/// form) whenever one of at most 15 or so digits exists. For `n < 2^53`
/// and `d <= 17`, `n / 10^d` is one correctly rounded division: exactly the
/// double a JSON parser makes of the decimal `n × 10^-d`, so the first `d`
/// whose candidate divides back to `x` gives the shortest form. Prices,
/// revenues and quantities always find one; other values get 17 exact
/// significant digits.
pub fn float(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null"); // as serde_json writes NaN and infinities
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    let x = x.abs();
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if x.fract() == 0.0 && x < 1e16 {
        uint(out, x as u64);
        out.push_str(".0");
        return;
    }
    let mut scale = 1.0;
    for d in 1..=17 {
        scale *= 10.0;
        let n = (x * scale).round();
        if n >= EXACT {
            break;
        }
        for candidate in [n, n - 1.0, n + 1.0] {
            if candidate >= 0.0 && candidate / scale == x {
                let mut digits = String::new();
                uint(&mut digits, candidate as u64);
                while digits.len() <= d {
                    digits.insert(0, '0');
                }
                let point = digits.len() - d;
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
                return;
            }
        }
    }
    if !seventeen_digits(out, x) {
        scientific(out, x);
    }
}

/// `x` (below 2^53) to 17 significant digits, which always read back
/// exactly, computed exactly from its binary form: x = m × 2^e, digits =
/// round(m × 10^k / 2^-e). Returns false where that overflows 128 bits.
fn seventeen_digits(out: &mut String, x: f64) -> bool {
    let bits = x.to_bits();
    let (m, e) = (u128::from((bits & ((1 << 52) - 1)) | (1 << 52)), ((bits >> 52) & 0x7ff) as i32 - 1075);
    if (bits >> 52) & 0x7ff == 0 || e >= 0 || -e > 120 {
        return false;
    }
    let shift = (-e) as u32;
    let (mut k, mut v) = (0u32, m >> shift);
    while v < 10_000_000_000_000_000 {
        k += 1;
        if k > 22 {
            return false;
        }
        v = (m * 10u128.pow(k) + (1 << (shift - 1))) >> shift;
    }
    let mut digits = String::new();
    uint(&mut digits, v as u64);
    let k = k as usize;
    while digits.len() <= k {
        digits.insert(0, '0');
    }
    let point = digits.len() - k;
    let fraction = digits[point..].trim_end_matches('0');
    out.push_str(&digits[..point]);
    out.push('.');
    out.push_str(if fraction.is_empty() { "0" } else { fraction });
    true
}

/// Far outside any shop's numbers: 15 significant digits, cut rather than
/// rounded so that the largest doubles stay in range, and an exponent.
fn scientific(out: &mut String, x: f64) {
    let (mut exp, mut m) = (0i32, x);
    while m >= 1e15 {
        m /= 10.0;
        exp += 1;
    }
    while m < 1e14 && m > 0.0 {
        m *= 10.0;
        exp -= 1;
    }
    uint(out, m.trunc() as u64);
    out.push('e');
    if exp < 0 {
        out.push('-');
    }
    uint(out, u64::from(exp.unsigned_abs()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::props::PropValue;
    use clickstream_schema::{Context, EventType, Page};
    use serde_json::json;

    fn sample(props: Props, user_id: Option<&str>) -> Event {
        Event {
            event_id: "7d0e6f1c-8a1b-4c2d-9e3f-0a1b2c3d4e5f".into(),
            event_type: EventType::AddToCart,
            ts: 1_732_262_399_000,
            anonymous_id: "a-\"quoted\"\\slash".into(),
            user_id: user_id.map(String::from),
            session_id: "s-1".into(),
            page: Page {
                url: "https://shop.example/p/42?utm_source=x".into(),
                path: "/p/42".into(),
                title: "Süße\tTöne\u{1}\u{1f}😀".into(),
                ..Page::default()
            },
            props,
            context: Context { screen: "1920x1080".into(), lang: "en-US".into(), tz: String::new() },
        }
    }

    crate::both! {
        fn events_are_written_exactly_as_serde_json_writes_them() {
            // The contract writes extra props in name order; given in that
            // order, the tracker's text is the same.
            let mut extra = std::collections::BTreeMap::new();
            let mut members = Extra::default();
            let values = [
                ("nested", json!({"a": -2, "b": [1, null, true, "x"]}), PropValue::Json(r#"{"a":-2,"b":[1,null,true,"x"]}"#.into())),
                ("plan", json!("pro"), PropValue::Text("pro".into())),
                ("ratio", json!(0.25), PropValue::Number(0.25)),
                ("seats", json!(3), PropValue::Number(3.0)),
            ];
            for (name, value, given) in values {
                extra.insert(name.to_string(), value);
                members.push(name, &given);
            }
            // Every prop set: a prop the contract gains fails to compile
            // here, and then fails this comparison until the writer has it.
            let full = Props {
                product_id: Some("p-42".into()),
                category: Some("shoes".into()),
                price: Some(59.9),
                quantity: Some(2),
                currency: Some("EUR".into()),
                revenue: Some(119.8),
                order_id: Some("o-1".into()),
                query: Some("trail \"runner\"".into()),
                tag: Some("a".into()),
                text: Some("Buy\nnow".into()),
                href: Some("https://shop.example/".into()),
                name: Some("custom".into()),
                // A page_leave's two props never come typed to this writer:
                // the loader passes them as plain members (extra props,
                // the same JSON on the wire, which the collector reads as
                // the typed props), which saves the tracker's bytes.
                engaged_ms: None,
                scroll_depth: None,
                extra,
            };
            for (props, members, user) in [(full, members, Some("u-1")), (Props::default(), Extra::default(), None)] {
                let e = sample(props, user);
                assert_eq!(event(&e, &members), serde_json::to_string(&e).unwrap());
            }
        }

        fn floats_are_the_shortest_form_serde_json_also_writes() {
            let prices = [0.01, 0.1, 0.3, 1.5, 5.0, 19.99, 59.9, 99.95, 119.8, 1234.56, 0.125, 7.0e-3, 12345678.9];
            for x in prices {
                let mut mine = String::new();
                float(&mut mine, x);
                assert_eq!(mine, serde_json::to_string(&x).unwrap(), "{x}");
            }
            // Every cent amount up to 2,000.00 and a spread of thirds and sevenths.
            for cents in 0..200_000u32 {
                let x = f64::from(cents) / 100.0;
                let mut mine = String::new();
                float(&mut mine, x);
                assert_eq!(mine.parse::<f64>().unwrap(), x, "{mine}");
                assert_eq!(mine, serde_json::to_string(&x).unwrap());
            }
            for i in 1..2_000 {
                let x = f64::from(i) / 3.0 + f64::from(i) / 7.0;
                let mut mine = String::new();
                float(&mut mine, x);
                assert_eq!(mine.parse::<f64>().unwrap(), x, "{mine}");
            }
        }

        fn extreme_floats_are_still_valid_json_numbers_close_to_the_value() {
            for x in [1e-20, 3.3e-9, 1.7976931348623157e308, 2.5e19, 1e15 + 0.5, -0.5, -0.0] {
                let mut mine = String::new();
                float(&mut mine, x);
                let back: f64 = serde_json::from_str(&mine).unwrap();
                assert!((back - x).abs() <= x.abs() * 1e-13, "{x} -> {mine}");
            }
            let mut nan = String::new();
            float(&mut nan, f64::NAN);
            assert_eq!(nan, "null");
        }
    }
}
