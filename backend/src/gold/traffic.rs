//! `traffic_1m`: what the site is doing, minute by minute.

use polars::prelude::*;

use super::{is_type, ts_ms, window_of, GoldConfig};

/// One row per site and 1-minute window with at least one human event.
///
/// Columns:
/// - `site_id`;
/// - `window_start`, `window_end`: the minute, `[start, end)`;
/// - `events`: human events in the minute (u32);
/// - `page_views`: of those, page views (u32);
/// - `active_users`: distinct `anonymous_id` (u32);
/// - `sessions`: server-side sessions with an event in the minute (u32).
///
/// Whether two events of a visitor are in one session depends only on the
/// time between them, so the sessions of a minute are known from the
/// minute's own events: one per visitor, plus one for each gap longer than
/// the session gap inside the minute (none unless the gap is under a
/// minute). A refresh of a minute therefore never needs other minutes.
pub fn traffic_1m(human: LazyFrame, config: &GoldConfig) -> PolarsResult<LazyFrame> {
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
    // A visitor's events in one minute are in one session whenever the gap
    // is a minute or more (the default is 30): then the minute's sessions
    // are its visitors, and no per-visitor ordering is needed.
    let (human, sessions) = if config.session_gap_ms >= 60_000 {
        (human, col("anonymous_id").n_unique())
    } else {
        let visitor_minute = [col("site_id"), col("anonymous_id"), col("_minute")];
        let since_previous = ts_ms("event_ts") - ts_ms("event_ts").shift(lit(1)).over(visitor_minute)?;
        let starts_session = since_previous.clone().is_null().or(since_previous.gt(lit(config.session_gap_ms)));
        let marked = human
            .with_column(window_of("event_ts", "1m").alias("_minute"))
            .sort(["event_ts"], SortMultipleOptions::default())
            .with_column(starts_session.alias("_session_start"));
        (marked, col("_session_start").sum())
    };
    // Sorted by time, each site's events are sorted by time too.
    Ok(human
        .sort(["event_ts"], SortMultipleOptions::default())
        .group_by_dynamic(col("event_ts"), [col("site_id")], options)
        .agg([
            len().alias("events"),
            is_type("page_view").sum().cast(DataType::UInt32).alias("page_views"),
            col("anonymous_id").n_unique().cast(DataType::UInt32).alias("active_users"),
            sessions.cast(DataType::UInt32).alias("sessions"),
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
        .sort(["site_id", "window_start"], SortMultipleOptions::default()))
}
