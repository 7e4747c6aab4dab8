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
/// from the URL unless they needed decoding (form_urlencoded only copies
/// what it decodes, and this runs for every event).
pub fn utm_from_url(url: &str) -> Utm<'_> {
    let mut utm = Utm::default();
    for (key, value) in form_urlencoded::parse(query(url).as_bytes()) {
        let slot = match key.as_ref() {
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
    form_urlencoded::parse(query(url).as_bytes()).into_owned().collect()
}

/// The query string of a URL: after the first `?`, before the fragment.
fn query(url: &str) -> &str {
    let before_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    before_fragment.split_once('?').map_or("", |(_, query)| query)
}

/// Decodes `%XX` escapes and `+` in one query-string component; invalid
/// escapes are kept as they are, and invalid UTF-8 is replaced rather than
/// refused (a campaign name is not worth losing an event over).
pub fn percent_decode(input: &str) -> String {
    // form_urlencoded splits on `&` and `=`; escaped, they come back as
    // themselves. An escape starts with `%`, which is not a hex digit, so it
    // cannot complete an escape left unfinished before it.
    let escaped = input.replace('&', "%26").replace('=', "%3D");
    form_urlencoded::parse(escaped.as_bytes()).next().map(|(text, _)| text.into_owned()).unwrap_or_default()
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
        assert_eq!(
            query_pairs("/p?a=1+2&b&=c"),
            [("a".into(), "1 2".into()), ("b".into(), "".into()), ("".into(), "c".into())]
        );
    }

    #[test]
    fn bad_escapes_are_kept_not_refused() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
