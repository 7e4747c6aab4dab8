//! Click autocapture: what a click on a link, a button or a `data-track`
//! element tells. Never the value of a form field: only its tag. The
//! element's `data-*` attributes, which the site put there to be read, come
//! as props (see [`crate::props::from_pairs`]).

use clickstream_schema::Props;

/// Longest captured element text, in characters.
pub const MAX_TEXT_CHARS: usize = 100;

/// The click event's typed props, added to those of the element's `data-*`.
pub fn click_props(mut props: Props, tag: &str, text: &str, href: Option<&str>, keep_query: bool) -> Props {
    let tag = tag.to_ascii_lowercase();
    let is_field = matches!(tag.as_str(), "input" | "textarea" | "select");
    let text = if is_field { String::new() } else { bounded_text(text, MAX_TEXT_CHARS) };
    props.text = (!text.is_empty()).then_some(text);
    props.href = href.filter(|h| !h.is_empty()).map(|h| crate::url::clean_url(h, keep_query, true));
    props.tag = Some(tag);
    props
}

/// Whitespace runs collapsed to one space, trimmed, at most `max` characters.
pub fn bounded_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() >= max * 4 {
            break; // enough to cut from; a huge textContent is not copied whole
        }
    }
    match out.char_indices().nth(max) {
        Some((cut, _)) => out[..cut].trim_end().to_string(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both! {
        fn a_link_click_has_tag_text_and_href() {
            let props = click_props(
                Props::default(),
                "A",
                "\n   Ridge   Runner\n  trail shoe  ",
                Some("https://shop.example/p/1?ref=mail&utm_source=news"),
                false,
            );
            assert_eq!(props.tag.as_deref(), Some("a"));
            assert_eq!(props.text.as_deref(), Some("Ridge Runner trail shoe"));
            assert_eq!(props.href.as_deref(), Some("https://shop.example/p/1?utm_source=news"));
        }

        fn a_form_field_never_gives_its_text() {
            let props = click_props(Props::default(), "INPUT", "hunter2", None, false);
            assert_eq!(props.text, None);
            assert_eq!(props.tag.as_deref(), Some("input"));
            assert_eq!(props.href, None);
        }

        fn text_is_bounded_on_a_character_boundary() {
            let long = "é".repeat(500);
            let text = bounded_text(&long, MAX_TEXT_CHARS);
            assert_eq!(text.chars().count(), MAX_TEXT_CHARS);
            assert_eq!(bounded_text("  a  b ", 10), "a b");
        }
    }
}
