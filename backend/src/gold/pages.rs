//! `dim_pages`: the pages of the star schema, one row per site and path.

use polars::prelude::*;

use super::dimension::{first_and_last_seen, latest, merge_by, seen_at, Dimension};
use super::{is_type, GoldTable};

/// One row per site and page path seen in a page view, bots included: a
/// dimension describes the page, not its audience, and every page view
/// in Silver (the fact table) must find its page here.
///
/// Columns:
/// - `site_id`, `page_path`;
/// - `title`: the title of the latest page view that had one (ties on
///   time: the greatest title), null if none had;
/// - `title_at`: when that title was seen;
/// - `first_seen`, `last_seen`: the path's first and last page view.
pub fn dim_pages(silver: LazyFrame) -> LazyFrame {
    merge_pages(page_rows(silver))
}

pub const PAGES: Dimension = Dimension {
    table: GoldTable::DimPages,
    key: "page_path",
    input: &["event_type", "site_id", "page_path", "page_title", "event_ts"],
    rows: page_rows,
    merge: merge_pages,
};

/// Each page view as a `dim_pages` row of its own, to [`merge_pages`].
fn page_rows(silver: LazyFrame) -> LazyFrame {
    silver.filter(is_type("page_view").and(col("page_path").is_not_null())).select([
        col("site_id"),
        col("page_path"),
        col("page_title").alias("title"),
        seen_at("page_title", "event_ts").alias("title_at"),
        col("event_ts").alias("first_seen"),
        col("event_ts").alias("last_seen"),
    ])
}

/// Rows of the same pages (page views, or the rows of several micro-batches
/// or hours) into one row each.
fn merge_pages(rows: LazyFrame) -> LazyFrame {
    let mut aggs = latest(&["title"], "title_at");
    aggs.extend(first_and_last_seen());
    merge_by(rows, "page_path", aggs)
}
