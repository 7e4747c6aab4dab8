//! UTM campaign parameters from a page URL.

/// The five UTM parameters; absent ones are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

/// Reads `utm_*` from the URL's query string (the fragment is ignored).
/// Values are percent-decoded, `+` is a space, empty values count as absent,
/// and the first occurrence of a repeated parameter wins.
pub fn utm_from_url(url: &str) -> Utm {
    let mut utm = Utm::default();
    for (key, value) in query_pairs(url) {
        let slot = match key.as_str() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_term" => &mut utm.term,
            "utm_content" => &mut utm.content,
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    utm
}

/// The decoded `key=value` pairs of a URL's query string.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let without_fragment = url.split('#').next().unwrap_or("");
    let Some((_, query)) = without_fragment.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
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
    }

    #[test]
    fn bad_escapes_are_kept_not_refused() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
