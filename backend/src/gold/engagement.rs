//! `engagement_1h`: how long pages are read and how far down, from the
//! tracker's `page_leave` reports.
//!
//! The tracker sends a `page_leave` each time a page is hidden or left
//! (another tab, the tab closed, the next page of a single-page app), with
//! the time it was visible since the page view or the report before
//! (`engaged_ms`: the reports of one view add up) and the deepest point
//! reached so far (`scroll_depth`, percent). A page's engaged time per view
//! is its reports' sum over its page views; its scroll depth the mean of
//! its reports'. Per session, `sessions.engaged_ms` sums its reports.

use polars::prelude::*;

use super::{is_type, rate, window_of};

/// One row per site, hour and page path with at least one `page_leave`
/// report from a human.
///
/// Columns:
/// - `site_id`, `hour_start`, `page_path`;
/// - `page_views`: the path's page views in the hour (u32);
/// - `leaves`: its `page_leave` reports (u32); `visitors`: distinct
///   `anonymous_id` among them (u32; hours do not add up to distinct
///   visitors);
/// - `engaged_ms`: the reports' engaged time, summed (i64);
/// - `avg_engaged_ms`: `engaged_ms / page_views` (null without a view in
///   the hour: a page viewed just before the hour turned);
/// - `avg_scroll_depth`: the mean of the reports' scroll depth, percent.
pub fn engagement_1h(human: LazyFrame) -> LazyFrame {
    let leave = is_type("page_leave");
    human
        .filter(is_type("page_view").or(leave.clone()))
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("page_path")])
        .agg([
            is_type("page_view").sum().cast(DataType::UInt32).alias("page_views"),
            leave.clone().sum().cast(DataType::UInt32).alias("leaves"),
            col("anonymous_id").filter(leave.clone()).n_unique().cast(DataType::UInt32).alias("visitors"),
            col("engaged_ms").filter(leave.clone()).sum().cast(DataType::Int64).alias("engaged_ms"),
            col("scroll_depth").filter(leave).cast(DataType::Float64).mean().alias("avg_scroll_depth"),
        ])
        .filter(col("leaves").gt(lit(0)))
        .with_column(rate(col("engaged_ms"), col("page_views")).alias("avg_engaged_ms"))
        .select(
            [
                "site_id",
                "hour_start",
                "page_path",
                "page_views",
                "leaves",
                "visitors",
                "engaged_ms",
                "avg_engaged_ms",
                "avg_scroll_depth",
            ]
            .map(col),
        )
        .sort(["site_id", "hour_start", "page_path"], SortMultipleOptions::default())
}
