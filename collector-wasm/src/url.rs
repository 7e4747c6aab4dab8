//! What of a URL the tracker sends. Query strings often carry emails,
//! tokens and order numbers, so by default only the `utm_*` parameters
//! (which attribution needs) survive, and of the ad platforms' click ids
//! only their names (a click id says the visit was paid; its value
//! identifies the click, which analytics has no use for); the fragment
//! only when hash changes are page views.

/// `url` with its query reduced to `utm_*` parameters and the names of
/// ad click ids (all of it with `keep_query`), and its fragment dropped
/// unless `keep_hash`.
pub fn clean_url(url: &str, keep_query: bool, keep_hash: bool) -> String {
    let (rest, hash) = match find(url, b"#") {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let (base, query) = match find(rest, b"?") {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(base);
    let mut first = true;
    for pair in split(query, b'&').filter(|p| !p.is_empty()) {
        let name = &pair[..find(pair, b"=").unwrap_or(pair.len())];
        // Ad click ids (gclid, dclid, fbclid, ttclid, twclid, msclkid: the
        // backend's `gold::sources::CLICK_IDS`) by their common ending, which
        // costs the size budget less than a list of names.
        let kept = if keep_query || pair.starts_with("utm_") {
            pair
        } else if name.ends_with("clid") || name.ends_with("clkid") {
            name
        } else {
            continue;
        };
        out.push(if first { '?' } else { '&' });
        out.push_str(kept);
        first = false;
    }
    if keep_hash {
        out.push_str(hash);
    }
    out
}

/// Where the first of the ASCII bytes `any` is in `s`. (`str::find` with
/// char patterns brings searchers the size budget can do without.)
pub(crate) fn find(s: &str, any: &[u8]) -> Option<usize> {
    s.bytes().position(|b| any.contains(&b))
}

/// The parts of `s` between the ASCII byte `sep`, as `str::split` gives
/// them, without its char searcher (see [`find`]).
pub(crate) fn split(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.bytes().position(|b| b == sep) {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// The path of an absolute or root-relative URL (`/` when it has none).
pub fn path_of(url: &str) -> &str {
    // Skip `scheme://host`: the path starts at the first `/`, `?` or `#` after it.
    let rest = match find(url, b":").map(|i| &url[i + 1..]).filter(|rest| rest.starts_with("//")) {
        Some(rest) => find(&rest[2..], b"/?#").map_or("", |j| &rest[2 + j..]),
        None => url,
    };
    let end = find(rest, b"?#").unwrap_or(rest.len());
    if end == 0 {
        "/"
    } else {
        &rest[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both! {
        fn only_utm_parameters_survive_by_default() {
            let url = "https://shop.example/p/42?email=a@b.c&utm_source=news&token=x&utm_campaign=fall#reviews";
            assert_eq!(clean_url(url, false, false), "https://shop.example/p/42?utm_source=news&utm_campaign=fall");
            assert_eq!(clean_url(url, true, false), "https://shop.example/p/42?email=a@b.c&utm_source=news&token=x&utm_campaign=fall");
            assert_eq!(clean_url(url, false, true), "https://shop.example/p/42?utm_source=news&utm_campaign=fall#reviews");
            assert_eq!(clean_url("https://shop.example/?q=secret", false, false), "https://shop.example/");
        }

        fn click_ids_keep_their_name_not_their_value() {
            let url = "https://shop.example/p/42?gclid=Cj0KCQ-secret&email=a@b.c&fbclid&utm_source=ads&gclidx=1";
            assert_eq!(clean_url(url, false, false), "https://shop.example/p/42?gclid&fbclid&utm_source=ads");
            assert_eq!(clean_url("https://shop.example/?msclkid=abc", false, false), "https://shop.example/?msclkid");
        }

        fn split_is_str_split_on_one_byte() {
            for s in ["", "a", "a&b", "&a&&b&", "&", "é&ü"] {
                assert_eq!(split(s, b'&').collect::<Vec<_>>(), s.split('&').collect::<Vec<_>>(), "{s}");
            }
        }

        fn the_path_of_a_url() {
            assert_eq!(path_of("https://shop.example/p/42?utm_source=x#a"), "/p/42");
            assert_eq!(path_of("https://shop.example"), "/");
            assert_eq!(path_of("https://shop.example?x=1"), "/");
            assert_eq!(path_of("/search?q=boots"), "/search");
        }
    }
}
