//! Visitor data in a message's `text`. Order ids, site ids, visitor ids and
//! the like are whatever a visitor's browser sent, and Slack-compatible
//! receivers read `text` as markup: unescaped, an order id could ping the
//! whole channel (`<!channel>`), hide a phishing link behind harmless words
//! (`<https://evil|invoice>`) or forge lines of the alert. [`escape`] makes
//! such a value plain text.

/// The most characters of one value shown in a message; the whole value is
/// in the body's `details`, where programs read it as JSON.
pub const MAX_CHARS: usize = 64;

/// `value` as plain text for a Slack (mrkdwn) or Markdown `text`:
/// - control characters, line breaks and invisible formatting characters
///   (bidi overrides, zero-width spaces) are dropped, so a value cannot
///   start a new line or reorder what is shown around it;
/// - at most [`MAX_CHARS`] characters, the last one `…` when cut;
/// - `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`, as Slack requires, so
///   there are no `<…>` links or mentions;
/// - the characters that format (`*` `_` `~` `` ` `` `|` `[` `]` `(` `)`)
///   and `@` (a mention in Mattermost, `@channel`) become their fullwidth
///   look-alikes: Slack's mrkdwn has no escape character (a backslash is
///   shown and does not stop the formatting), and no renderer treats the
///   fullwidth forms as markup.
pub fn escape(value: &str) -> String {
    let visible: Vec<char> = value.chars().filter(|c| !c.is_control() && !is_invisible(*c)).collect();
    let cut = visible.len() > MAX_CHARS;
    let shown = if cut { &visible[..MAX_CHARS - 1] } else { &visible[..] };
    let mut out = String::with_capacity(shown.len() + 8);
    for &c in shown {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' => out.push('＊'),
            '_' => out.push('＿'),
            '~' => out.push('～'),
            '`' => out.push('｀'),
            '|' => out.push('｜'),
            '[' => out.push('［'),
            ']' => out.push('］'),
            '(' => out.push('（'),
            ')' => out.push('）'),
            '@' => out.push('＠'),
            c => out.push(c),
        }
    }
    if cut {
        out.push('…');
    }
    out
}

/// Characters that are not control characters but still break lines or
/// change what is shown around them without being seen.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'     // zero-width spaces and joiners, LRM/RLM
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
        | '\u{2060}'..='\u{2069}'   // word joiner, bidi isolates
        | '\u{061C}' | '\u{FEFF}'   // Arabic letter mark, BOM
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_links_and_formatting_come_out_as_plain_text() {
        let got = escape("<!channel> *x* <https://evil|click>");
        assert_eq!(got, "&lt;!channel&gt; ＊x＊ &lt;https://evil｜click&gt;");
        for markup in ['<', '>', '*', '|'] {
            assert!(!got.contains(markup), "{markup:?} left in {got}");
        }
        assert_eq!(
            escape("[click](https://evil) _i_ ~s~ `c` @here"),
            "［click］（https://evil） ＿i＿ ～s～ ｀c｀ ＠here"
        );
        // `&` first, so an entity in the value is shown, not read.
        assert_eq!(escape("a&lt;b & c"), "a&amp;lt;b &amp; c");
    }

    #[test]
    fn line_breaks_and_invisible_characters_are_dropped() {
        assert_eq!(escape("o-1\n*Refund approved*\r\t\u{0}"), "o-1＊Refund approved＊");
        assert_eq!(escape("abc\u{202E}fed\u{200B}\u{2028}x"), "abcfedx");
    }

    #[test]
    fn long_values_are_cut_with_an_ellipsis() {
        assert_eq!(escape(&"a".repeat(MAX_CHARS)), "a".repeat(MAX_CHARS), "exactly the limit is kept whole");
        let got = escape(&"é".repeat(500));
        assert_eq!(got.chars().count(), MAX_CHARS);
        assert!(got.ends_with("é…"), "{got}");
        // Cut before escaping: an entity is never cut in half.
        let got = escape(&"<".repeat(100));
        assert_eq!(got, format!("{}…", "&lt;".repeat(MAX_CHARS - 1)));
    }

    #[test]
    fn ordinary_ids_are_left_alone() {
        for id in ["o-2", "shop-1", "ORD.2026.11.22/0042", "visitor:9f8e", "Bestellung Nr. 7 für Jörg", "p#12+3=4%"] {
            assert_eq!(escape(id), id);
        }
    }
}
