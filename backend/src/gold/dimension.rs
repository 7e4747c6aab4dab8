//! What the star schema's merged dimensions (`dim_pages`, `dim_products`,
//! `identity_map`)
//! share: one row per site and key, attributes kept as the latest value
//! seen, and a merge that is associative, so that Gold can fold a
//! micro-batch's rows into the rows it holds (or a build each hour's into
//! the day's) and get what one query over all of Silver gets.

use polars::prelude::*;

use super::GoldTable;

/// A dimension the refresh and the build merge rows into.
pub struct Dimension {
    pub table: GoldTable,
    /// Its key besides `site_id` (`page_path`, `product_id`).
    pub key: &'static str,
    /// The Silver columns [`Dimension::rows`] reads.
    pub input: &'static [&'static str],
    /// Each event of Silver that has the key, as a row of its own.
    pub rows: fn(LazyFrame) -> LazyFrame,
    /// Rows of the same keys into one row each.
    pub merge: fn(LazyFrame) -> LazyFrame,
}

/// Every merged dimension.
pub const DIMENSIONS: [&Dimension; 3] =
    [&super::pages::PAGES, &super::products::PRODUCTS, &super::identities::IDENTITIES];

/// `at` where `value` is not null (when an attribute was seen).
pub(crate) fn seen_at(value: &str, at: &str) -> Expr {
    when(col(value).is_not_null()).then(col(at)).otherwise(lit(NULL).cast(super::datetime_ms()))
}

/// The aggregations that keep the latest non-null `values` of a group of
/// rows, seen at `at` (null where they were not seen), and that time. Ties
/// on time go to the greatest values, so every order of merging agrees.
/// Values seen together (a price and its currency) come from one row: each
/// is the greatest among the rows that hold the ones before it.
///
/// Filters on the group's maximum rather than a sort per group: a build
/// merges every page view and product event of an hour at once.
pub(crate) fn latest(values: &[&str], at: &str) -> Vec<Expr> {
    let latest_at = col(at).max();
    let mut chosen = col(at).eq(latest_at.clone());
    let mut aggs = Vec::new();
    for v in values {
        let value = col(*v).filter(chosen.clone()).max();
        chosen = chosen.and(col(*v).eq(value.clone()));
        aggs.push(value);
    }
    aggs.push(latest_at);
    aggs
}

/// `first_seen` and `last_seen` of a group of rows.
pub(crate) fn first_and_last_seen() -> [Expr; 2] {
    [col("first_seen").min(), col("last_seen").max()]
}

/// Groups rows by site and `key`, with `aggs`, in the order dimension
/// files are written in.
pub(crate) fn merge_by(rows: LazyFrame, key: &str, aggs: Vec<Expr>) -> LazyFrame {
    rows.group_by([col("site_id"), col(key)])
        .agg(aggs)
        .sort(["site_id", "first_seen", key], SortMultipleOptions::default())
}
