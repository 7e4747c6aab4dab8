//! `dim_pages`: the pages of the star schema, one row per site and path.

use polars::prelude::*;

use super::is_type;

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

/// The Silver columns `dim_pages` reads.
pub const PAGE_INPUT: [&str; 5] = ["event_type", "site_id", "page_path", "page_title", "event_ts"];

/// Each page view as a `dim_pages` row of its own, to [`merge_pages`].
pub(crate) fn page_rows(silver: LazyFrame) -> LazyFrame {
    silver.filter(is_type("page_view").and(col("page_path").is_not_null())).select([
        col("site_id"),
        col("page_path"),
        col("page_title").alias("title"),
        when(col("page_title").is_not_null())
            .then(col("event_ts"))
            .otherwise(lit(NULL).cast(super::datetime_ms()))
            .alias("title_at"),
        col("event_ts").alias("first_seen"),
        col("event_ts").alias("last_seen"),
    ])
}

/// Rows of the same pages (page views, or the rows of several micro-batches
/// or hours) into one row each. Associative, so Gold can merge a
/// micro-batch's rows into the rows it holds and get what a rebuild gets.
pub(crate) fn merge_pages(rows: LazyFrame) -> LazyFrame {
    rows.group_by([col("site_id"), col("page_path")])
        .agg([
            // Nulls sort first: the last is the latest title there is.
            col("title").sort_by([col("title_at"), col("title")], SortMultipleOptions::default()).last(),
            col("title_at").max(),
            col("first_seen").min(),
            col("last_seen").max(),
        ])
        .sort(["site_id", "first_seen", "page_path"], SortMultipleOptions::default())
}
