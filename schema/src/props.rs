//! The props the contract names, declared once.
//!
//! A prop lives in many places: the wire type ([`crate::Props`]), the
//! reader's list of known keys, validation ([`crate::ValidProps`]), the
//! enriched record ([`crate::EnrichedEvent`]), Bronze and Silver columns and
//! the analysts' catalog. Each of those is generated from [`with_props!`],
//! so adding a prop is one line here; what cannot be generated (the edge's
//! `enrich_with`, the tracker's size-bound JSON writer) fails to compile or
//! fails a test that fills every prop until it is updated too.
//!
//! The order is Silver's column order, which analysts' files depend on:
//! append new props at the end.

/// Calls `$callback! { (wire_name, silver_column, Kind, "description"), … }`
/// with every prop the contract names.
///
/// - `wire_name`: the key under `props` in the tracker's JSON.
/// - `silver_column`: the column in Bronze, Silver and the enriched record;
///   a few are longer than the wire key so that they read on their own in a
///   table of 40 columns (`query` → `search_query`).
/// - `Kind`: a [`PropKind`] variant: `Text` (at most
///   [`MAX_TEXT_LEN`](crate::validate::MAX_TEXT_LEN) characters), `Url`
///   (at most [`MAX_URL_LEN`](crate::validate::MAX_URL_LEN)), `Number`
///   (a finite float) or `Integer`.
/// - the description: what the analysts' catalog says of the column.
#[macro_export]
macro_rules! with_props {
    ($callback:ident) => {
        $callback! {
            (product_id, product_id, Text, "The product: of a product page view, a cart change or a purchase line."),
            (category, category, Text, "The product's category, when sent."),
            (price, price, Number, "Unit price (cart and purchase events)."),
            (quantity, quantity, Integer, "Units (cart and purchase events)."),
            (revenue, revenue, Number, "A purchase line's revenue: price × quantity as the site sent it."),
            (currency, currency, Text, "ISO 4217 code of price and revenue; amounts are not converted."),
            (query, search_query, Text, "What the visitor searched for (search)."),
            (order_id, order_id, Text, "The order a purchase line belongs to: one purchase event per product line."),
            (tag, click_tag, Text, "The clicked element's tag (click)."),
            (text, click_text, Text, "Its visible text, trimmed and bounded; never a form field's value."),
            (href, click_href, Url, "Its link target, when it has one."),
            (name, custom_name, Text, "The name of a custom event."),
            (engaged_ms, engaged_ms, Integer, "page_leave: how long the page was visible, in ms, since its page view or its last page_leave (the tracker reports each time the page is hidden)."),
            (scroll_depth, scroll_depth, Integer, "page_leave: the deepest point of the page the visitor scrolled to so far, as a percent of its height (0–100)."),
        }
    };
}

/// The type of a prop's value, and the bound validation puts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropKind {
    Text,
    Url,
    Number,
    Integer,
}

/// One prop of [`PROPS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prop {
    /// The key under `props` on the wire.
    pub name: &'static str,
    /// Its column in Bronze and Silver.
    pub column: &'static str,
    pub kind: PropKind,
    /// What the column holds, for the analysts' catalog.
    pub about: &'static str,
}

macro_rules! prop_table {
    ($( ($wire:ident, $column:ident, $kind:ident, $about:literal) ),* $(,)?) => {
        /// Every prop the contract names, in Silver's column order.
        pub const PROPS: &[Prop] = &[
            $( Prop { name: stringify!($wire), column: stringify!($column), kind: PropKind::$kind, about: $about }, )*
        ];

        /// How many props the contract names.
        pub const PROP_COUNT: usize = [$( stringify!($wire) ),*].len();
    };
}
with_props!(prop_table);

/// A prop's type on the wire ([`crate::Props`]).
#[doc(hidden)]
#[macro_export]
macro_rules! wire_prop_type {
    (Text) => { Option<String> };
    (Url) => { Option<String> };
    (Number) => { Option<f64> };
    (Integer) => { Option<i64> };
}

/// A prop's type where it borrows from the request or the record
/// ([`crate::ValidProps`], [`crate::EnrichedEvent`]); `'a` is the lifetime
/// of the type it is used in.
#[doc(hidden)]
#[macro_export]
macro_rules! borrowed_prop_type {
    (Text) => { Option<std::borrow::Cow<'a, str>> };
    (Url) => { Option<std::borrow::Cow<'a, str>> };
    (Number) => { Option<f64> };
    (Integer) => { Option<i64> };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_columns_are_unique_and_the_count_matches() {
        assert_eq!(PROPS.len(), PROP_COUNT);
        for (i, p) in PROPS.iter().enumerate() {
            for q in &PROPS[i + 1..] {
                assert_ne!(p.name, q.name);
                assert_ne!(p.column, q.column);
            }
            assert!(!p.about.is_empty(), "{} needs a description", p.name);
        }
    }
}
