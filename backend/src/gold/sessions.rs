//! Server-side sessions on event time, and the `sessions` table.
//!
//! The tracker's own `session_id` is only a hint (a visitor's tabs, a
//! cleared storage); sessions here are rebuilt from event time: per site
//! and visitor, a new session starts after more than `session_gap_ms`
//! without events. Sessions are not cut at hour or day boundaries.

use polars::prelude::*;

use super::{is_product_view, is_type, ts_ms, GoldConfig};

/// Adds the server-side session to each event:
/// - `session_start`: event time of the session's first event;
/// - `session_id`: `"{anonymous_id}:{session_start in ms}"`, stable as long
///   as no earlier event of the session arrives late.
///
/// The tracker's session id is kept as `client_session_id`.
pub fn sessionize(events: LazyFrame, config: &GoldConfig) -> PolarsResult<LazyFrame> {
    let visitor = [col("site_id"), col("anonymous_id")];
    let gap = ts_ms("event_ts") - ts_ms("event_ts").shift(lit(1)).over(visitor.clone())?;
    let starts_session = gap.clone().is_null().or(gap.gt(lit(config.session_gap_ms)));
    let session_no = starts_session.cast(DataType::UInt32).cum_sum(false).over(visitor)?;
    let session_start = col("event_ts").min().over([col("site_id"), col("anonymous_id"), col("_session_no")])?;
    Ok(events
        .rename(["session_id"], ["client_session_id"], true)
        // In time order (ties by id); the windows below are per visitor
        // and keep this order within each visitor.
        .sort(["event_ts", "event_id"], SortMultipleOptions::default())
        .with_column(session_no.alias("_session_no"))
        .with_column(session_start.alias("session_start"))
        .with_column(
            concat_str([col("anonymous_id"), ts_ms("session_start").cast(DataType::String)], ":", false)
                .alias("session_id"),
        )
        .drop(cols(["_session_no"])))
}

/// One row per session, from [`sessionize`]d human events.
///
/// Columns:
/// - `site_id`, `session_id`, `anonymous_id`, `user_id` (last identified
///   user id in the session, if any);
/// - `session_start`, `session_end`: first and last event time;
/// - `duration_ms`: `session_end - session_start` (0 for one event);
/// - `events`, `page_views`: counts;
/// - `entry_page`, `exit_page`: `page_path` of the first and last page view;
/// - `bounced`: exactly one page view;
/// - `converted`: at least one purchase;
/// - `revenue`: sum of the session's purchase lines (0.0 without any);
/// - `utm_source`, `utm_medium`, `utm_campaign`: of the landing event;
/// - `country`, `device_type`, `browser`: of the first event;
/// - `funnel_step` (u32): how far the session got through the funnel, each
///   step counted only at or after the time it reached the one before:
///   0 none, 1 product view, 2 add_to_cart, 3 begin_checkout, 4 purchase.
///   `funnel_1h` is computed from it, so a refresh of the funnel needs the
///   sessions, not their events.
pub fn sessions(sessionized: LazyFrame) -> PolarsResult<LazyFrame> {
    let page_view = is_type("page_view");
    let first = |c: &str| col(c).sort_by([col("event_ts")], SortMultipleOptions::default()).first();
    let page_paths = || {
        col("page_path")
            .filter(is_type("page_view"))
            .sort_by([col("event_ts").filter(is_type("page_view"))], SortMultipleOptions::default())
    };
    let session = || [col("site_id"), col("session_id")];
    // When the session first reached a step, given when it reached the one
    // before (null if it never did; null propagates down the steps).
    let reached = |step: Expr, after: &str| {
        ts_ms("event_ts").filter(step.and(ts_ms("event_ts").gt_eq(col(after)))).min().over(session())
    };
    let steps = ["_view", "_cart", "_checkout", "_purchase"];
    Ok(sessionized
        .with_column(ts_ms("event_ts").filter(is_product_view()).min().over(session())?.alias(steps[0]))
        .with_column(reached(is_type("add_to_cart"), steps[0])?.alias(steps[1]))
        .with_column(reached(is_type("begin_checkout"), steps[1])?.alias(steps[2]))
        .with_column(reached(is_type("purchase"), steps[2])?.alias(steps[3]))
        .group_by(session())
        .agg([
            col("anonymous_id").first(),
            col("user_id")
                .sort_by([col("event_ts")], SortMultipleOptions::default())
                .drop_nulls()
                .last()
                .alias("user_id"),
            col("event_ts").min().alias("session_start"),
            col("event_ts").max().alias("session_end"),
            len().alias("events"),
            page_view.clone().sum().alias("page_views"),
            page_paths().first().alias("entry_page"),
            page_paths().last().alias("exit_page"),
            is_type("purchase").any(false).alias("converted"),
            col("revenue").filter(is_type("purchase")).sum().alias("revenue"),
            first("utm_source").alias("utm_source"),
            first("utm_medium").alias("utm_medium"),
            first("utm_campaign").alias("utm_campaign"),
            first("country").alias("country"),
            first("device_type").alias("device_type"),
            first("browser").alias("browser"),
            steps
                .iter()
                .map(|s| col(*s).first().is_not_null().cast(DataType::UInt32))
                .reduce(|a, b| a + b)
                .expect("four steps")
                .alias("funnel_step"),
        ])
        .with_columns([
            (ts_ms("session_end") - ts_ms("session_start")).alias("duration_ms"),
            col("page_views").eq(lit(1)).alias("bounced"),
            col("revenue").fill_null(lit(0.0)),
        ])
        .select([
            col("site_id"),
            col("session_id"),
            col("anonymous_id"),
            col("user_id"),
            col("session_start"),
            col("session_end"),
            col("duration_ms"),
            col("events"),
            col("page_views"),
            col("entry_page"),
            col("exit_page"),
            col("bounced"),
            col("converted"),
            col("revenue"),
            col("utm_source"),
            col("utm_medium"),
            col("utm_campaign"),
            col("country"),
            col("device_type"),
            col("browser"),
            col("funnel_step"),
        ])
        .sort(["site_id", "session_start", "session_id"], SortMultipleOptions::default()))
}
