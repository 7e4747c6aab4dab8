//! Server-side sessions on event time, and the `sessions` table.
//!
//! The tracker's own `session_id` is only a hint (a visitor's tabs, a
//! cleared storage); sessions here are rebuilt from event time: per site
//! and visitor, a new session starts after more than `session_gap_ms`
//! without events. Sessions are not cut at hour or day boundaries.

use polars::prelude::*;
use polars::series::IsSorted;

use super::{is_type, ts_ms, GoldConfig};

/// One row per session of human events: per site and visitor, a new
/// session starts after more than `config.session_gap_ms` without events.
///
/// Columns:
/// - `site_id`, `session_id`, `anonymous_id`, `user_id` (last identified
///   user id in the session, if any); `session_id` is
///   `"{anonymous_id}:{session_start in ms}"`, stable as long as no earlier
///   event of the session arrives late;
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
pub fn sessions(events: DataFrame, config: &GoldConfig) -> PolarsResult<DataFrame> {
    // Sorted by visitor, then time (ties by id): a session is a run of
    // rows, numbered by one running count of the rows that start one, and
    // "first" and "last" within it are by time. Visitors are numbered
    // first, so the sort compares integers rather than two strings a row.
    let mut events = events;
    events.with_column(visitor_numbers(&events)?)?;
    let same_visitor = col("_visitor").eq(col("_visitor").shift(lit(1)));
    let continues =
        same_visitor.and((ts_ms("event_ts") - ts_ms("event_ts").shift(lit(1))).lt_eq(lit(config.session_gap_ms)));
    let session_no = continues.fill_null(lit(false)).not().cast(DataType::UInt64).cum_sum(false);
    let mut sorted = events
        .lazy()
        .sort(["_visitor", "event_ts", "event_id"], SortMultipleOptions::default())
        .with_column(session_no.alias("_session"))
        .drop(cols(["_visitor"]))
        .collect()?;
    // A running count only goes up: told so, the group-by below takes each
    // session as a slice of rows instead of hashing the key.
    let mut session = sorted.column("_session")?.clone();
    session.set_sorted_flag(IsSorted::Ascending);
    sorted.with_column(session)?;
    sorted.with_column(funnel_steps(&sorted)?)?;

    let page_paths = || col("page_path").filter(is_type("page_view"));
    sorted
        .lazy()
        .group_by([col("_session")])
        .agg([
            col("site_id").first(),
            col("anonymous_id").first(),
            col("user_id").drop_nulls().last().alias("user_id"),
            col("event_ts").min().alias("session_start"),
            col("event_ts").max().alias("session_end"),
            len().alias("events"),
            is_type("page_view").sum().alias("page_views"),
            page_paths().first().alias("entry_page"),
            page_paths().last().alias("exit_page"),
            is_type("purchase").any(false).alias("converted"),
            col("revenue").filter(is_type("purchase")).sum().alias("revenue"),
            col("utm_source").first(),
            col("utm_medium").first(),
            col("utm_campaign").first(),
            col("country").first(),
            col("device_type").first(),
            col("browser").first(),
            col("_funnel_step").first().alias("funnel_step"),
        ])
        .with_columns([
            concat_str([col("anonymous_id"), ts_ms("session_start").cast(DataType::String)], ":", false)
                .alias("session_id"),
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
        .sort(["site_id", "session_start", "session_id"], SortMultipleOptions::default())
        .collect()
}

/// How far each row's session got through the funnel (`funnel_step`),
/// on every row of it, from rows sorted by session, then time. One pass:
/// at each instant the steps are tried in funnel order, so a step reached
/// at the same millisecond as the one before counts, as "at or after"
/// says, whatever the order of the rows within that millisecond.
fn funnel_steps(sorted: &DataFrame) -> PolarsResult<Column> {
    let session: Vec<Option<u64>> = sorted.column("_session")?.u64()?.iter().collect();
    let ts_column = sorted.column("event_ts")?.cast(&DataType::Int64)?;
    let ts: Vec<Option<i64>> = ts_column.i64()?.iter().collect();
    let has_product = sorted.column("product_id")?.is_not_null();
    // The step each row can take the session to (0 for none).
    let step_of: Vec<u32> = sorted
        .column("event_type")?
        .str()?
        .iter()
        .zip(has_product.iter())
        .map(|(kind, product)| match kind {
            Some("page_view") if product == Some(true) => 1,
            Some("add_to_cart") => 2,
            Some("begin_checkout") => 3,
            Some("purchase") => 4,
            _ => 0,
        })
        .collect();
    let rows = sorted.height();
    let mut steps = vec![0u32; rows];
    let mut start = 0;
    while start < rows {
        let end = (start..rows).find(|&i| session[i] != session[start]).unwrap_or(rows);
        let mut reached = 0;
        let mut instant = start;
        while instant < end {
            let next = (instant..end).find(|&i| ts[i] != ts[instant]).unwrap_or(end);
            while (instant..next).any(|i| step_of[i] == reached + 1) {
                reached += 1;
            }
            instant = next;
        }
        steps[start..end].fill(reached);
        start = end;
    }
    Ok(Column::new("_funnel_step".into(), steps))
}

/// A number per (`site_id`, `anonymous_id`), the same for every row of a
/// visitor (in no particular order), as the `_visitor` column.
fn visitor_numbers(events: &DataFrame) -> PolarsResult<Column> {
    let mut numbers = vec![0 as IdxSize; events.height()];
    let groups = events.group_by(["site_id", "anonymous_id"])?;
    for (n, group) in groups.get_groups().iter().enumerate() {
        let n = n as IdxSize;
        match group {
            GroupsIndicator::Idx((_, rows)) => rows.iter().for_each(|&row| numbers[row as usize] = n),
            GroupsIndicator::Slice([first, len]) => numbers[first as usize..(first + len) as usize].fill(n),
        }
    }
    Ok(Column::new("_visitor".into(), numbers))
}
