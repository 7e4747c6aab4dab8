//! UTM campaign parameters from a page URL.

use std::borrow::Cow;

/// The five UTM parameters; absent ones are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Utm<'a> {
    pub source: Option<Cow<'a, str>>,
    pub medium: Option<Cow<'a, str>>,
    pub campaign: Option<Cow<'a, str>>,
    pub term: Option<Cow<'a, str>>,
    pub content: Option<Cow<'a, str>>,
}

impl Utm<'_> {
    pub fn into_owned(self) -> Utm<'static> {
        let own = |v: Option<Cow<str>>| v.map(|v| Cow::Owned(v.into_owned()));
        Utm {
            source: own(self.source),
            medium: own(self.medium),
            campaign: own(self.campaign),
            term: own(self.term),
            content: own(self.content),
        }
    }
}

/// Reads `utm_*` from the URL's query string (the fragment is ignored).
/// Values are percent-decoded, `+` is a space, empty values count as absent,
/// and the first occurrence of a repeated parameter wins. Values borrow
/// from the URL unless they needed decoding.
pub fn utm_from_url(url: &str) -> Utm<'_> {
    let mut utm = Utm::default();
    for (key, value) in raw_query_pairs(url) {
        // Decoded only when escaped: most URLs have nothing to decode, and
        // this runs for every event.
        let slot = match decoded(key).as_ref() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_term" => &mut utm.term,
            "utm_content" => &mut utm.content,
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(decoded(value));
        }
    }
    utm
}

/// The decoded `key=value` pairs of a URL's query string.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    raw_query_pairs(url).map(|(k, v)| (percent_decode(k), percent_decode(v))).collect()
}

/// The `key=value` pairs of a URL's query string, still encoded.
fn raw_query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    // Bytes by hand rather than `split`: this runs for every event.
    let bytes = url.as_bytes();
    let start = match bytes.iter().position(|&b| b == b'?' || b == b'#') {
        Some(at) if bytes[at] == b'?' => at + 1,
        _ => bytes.len(),
    };
    let mut at = start;
    std::iter::from_fn(move || loop {
        if at >= bytes.len() || bytes[at] == b'#' {
            return None;
        }
        let (from, mut equals) = (at, None);
        while at < bytes.len() && bytes[at] != b'&' && bytes[at] != b'#' {
            if bytes[at] == b'=' && equals.is_none() {
                equals = Some(at);
            }
            at += 1;
        }
        let end = at;
        if at < bytes.len() && bytes[at] == b'&' {
            at += 1;
        }
        if end > from {
            return Some(match equals {
                Some(eq) => (&url[from..eq], &url[eq + 1..end]),
                None => (&url[from..end], ""),
            });
        }
    })
}

fn decoded(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b == b'%' || b == b'+') {
        Cow::Owned(percent_decode(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are, and
/// invalid UTF-8 is replaced rather than refused (a campaign name is not
/// worth losing an event over).
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_five_parameters_decoded() {
        let utm = utm_from_url(
            "https://shop.example/p/42?utm_source=news%20letter&utm_medium=email&utm_campaign=black+friday&utm_term=shoes&utm_content=hero#top",
        );
        assert_eq!(utm.source.as_deref(), Some("news letter"));
        assert_eq!(utm.medium.as_deref(), Some("email"));
        assert_eq!(utm.campaign.as_deref(), Some("black friday"));
        assert_eq!(utm.term.as_deref(), Some("shoes"));
        assert_eq!(utm.content.as_deref(), Some("hero"));
    }

    #[test]
    fn absent_empty_repeated_and_fragment_parameters() {
        assert_eq!(utm_from_url("https://shop.example/"), Utm::default());
        assert_eq!(utm_from_url("https://shop.example/?utm_source="), Utm::default());
        assert_eq!(utm_from_url("https://shop.example/#?utm_source=x"), Utm::default());
        let utm = utm_from_url("/p?utm_source=a&utm_source=b&x=1");
        assert_eq!(utm.source.as_deref(), Some("a"));
        // An escaped key is still the key.
        assert_eq!(utm_from_url("/p?utm%5Fmedium=cpc").medium.as_deref(), Some("cpc"));
        assert_eq!(query_pairs("/p?a=1+2&b&=c"), [("a".into(), "1 2".into()), ("b".into(), "".into()), ("".into(), "c".into())]);
    }

    #[test]
    fn bad_escapes_are_kept_not_refused() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
