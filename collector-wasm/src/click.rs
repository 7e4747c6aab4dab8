//! Click autocapture: what a click on a link, a button or a `data-track`
//! element tells. Never the value of a form field: only its tag. The
//! element's `data-*` attributes, which the site put there to be read, come
//! as props (see [`crate::props::from_pairs`]).

use clickstream_schema::Props;

/// Longest captured element text, in characters.
pub const MAX_TEXT_CHARS: usize = 100;

/// A click event's props: the glue passes the element's `data-*` with its
/// `tag`, `text` and `href` (a link's) on top; here they are made safe to
/// send: the tag lower case, the text bounded and never a form field's,
/// the href's query cleaned like a page URL's.
pub fn click_props(mut props: Props, keep_query: bool) -> Props {
    let tag = props.tag.take().unwrap_or_default().to_ascii_lowercase();
    let is_field = matches!(tag.as_str(), "input" | "textarea" | "select");
    let text = props.text.take().filter(|_| !is_field).map(|t| bounded_text(&t, MAX_TEXT_CHARS));
    props.text = text.filter(|t| !t.is_empty());
    props.href = props.href.filter(|h| !h.is_empty()).map(|h| crate::url::clean_url(&h, keep_query, true));
    props.tag = Some(tag);
    props
}

/// Whitespace runs collapsed to one space, trimmed, at most `max` characters.
pub fn bounded_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    let (mut count, mut space) = (0, false);
    for c in text.chars() {
        if c.is_whitespace() {
            space = count > 0;
            continue;
        }
        // A space is written only before a character that fits after it.
        if count + usize::from(space) >= max {
            break;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::both! {
        fn a_link_click_has_tag_text_and_href() {
            let clicked = Props {
                tag: Some("A".into()),
                text: Some("\n   Ridge   Runner\n  trail shoe  ".into()),
                href: Some("https://shop.example/p/1?ref=mail&utm_source=news".into()),
                ..Props::default()
            };
            let props = click_props(clicked, false);
            assert_eq!(props.tag.as_deref(), Some("a"));
            assert_eq!(props.text.as_deref(), Some("Ridge Runner trail shoe"));
            assert_eq!(props.href.as_deref(), Some("https://shop.example/p/1?utm_source=news"));
        }

        fn a_form_field_never_gives_its_text() {
            let clicked = Props { tag: Some("INPUT".into()), text: Some("hunter2".into()), ..Props::default() };
            let props = click_props(clicked, false);
            assert_eq!(props.text, None);
            assert_eq!(props.tag.as_deref(), Some("input"));
            assert_eq!(props.href, None);
        }

        fn text_is_bounded_on_a_character_boundary() {
            let long = "é".repeat(500);
            let text = bounded_text(&long, MAX_TEXT_CHARS);
            assert_eq!(text.chars().count(), MAX_TEXT_CHARS);
            assert_eq!(bounded_text("  a  b ", 10), "a b");
            assert_eq!(bounded_text("ab cd", 3), "ab", "no trailing space at the cut");
            assert_eq!(bounded_text("ab cd", 4), "ab c");
            assert_eq!(bounded_text(" \u{a0}\t\n", 10), "");
        }
    }
}
