//! `traffic_1m`: what the site is doing, minute by minute.

use polars::prelude::*;

use super::is_type;

/// One row per site and 1-minute window with at least one human event,
/// from [`super::sessionize`]d events.
///
/// Columns:
/// - `site_id`;
/// - `window_start`, `window_end`: the minute, `[start, end)`;
/// - `events`: human events in the minute (u32);
/// - `page_views`: of those, page views (u32);
/// - `active_users`: distinct `anonymous_id` (u32);
/// - `sessions`: distinct server-side sessions with an event in the minute (u32).
pub fn traffic_1m(sessionized: LazyFrame) -> LazyFrame {
    let options = DynamicGroupOptions {
        every: Duration::parse("1m"),
        period: Duration::parse("1m"),
        offset: Duration::parse("0m"),
        label: Label::Left,
        include_boundaries: false,
        closed_window: ClosedWindow::Left,
        start_by: StartBy::WindowBound,
        ..DynamicGroupOptions::default()
    };
    sessionized
        .sort(["site_id", "event_ts"], SortMultipleOptions::default())
        .group_by_dynamic(col("event_ts"), [col("site_id")], options)
        .agg([
            len().alias("events"),
            is_type("page_view").sum().cast(DataType::UInt32).alias("page_views"),
            col("anonymous_id").n_unique().cast(DataType::UInt32).alias("active_users"),
            col("session_id").n_unique().cast(DataType::UInt32).alias("sessions"),
        ])
        .rename(["event_ts"], ["window_start"], true)
        .with_column(col("window_start").dt().offset_by(lit("1m")).alias("window_end"))
        .select([
            col("site_id"),
            col("window_start"),
            col("window_end"),
            col("events"),
            col("page_views"),
            col("active_users"),
            col("sessions"),
        ])
        .sort(["site_id", "window_start"], SortMultipleOptions::default())
}
