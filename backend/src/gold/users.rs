//! `dim_users`: one row per visitor.

use polars::prelude::*;

/// One row per site and visitor, from the `sessions` table.
///
/// Columns:
/// - `site_id`, `anonymous_id`;
/// - `user_id`: the last user id the visitor identified as, if any;
/// - `first_seen`, `last_seen`: first session start, last session end;
/// - `sessions` (u32), `lifetime_revenue` (f64), `purchases_sessions`
///   (sessions that converted, u32);
/// - `first_utm_source`: UTM source of the first session;
/// - `country`: of the first session.
pub fn dim_users(sessions: LazyFrame) -> LazyFrame {
    let by_start = || SortMultipleOptions::default();
    sessions
        .group_by([col("site_id"), col("anonymous_id")])
        .agg([
            col("user_id").sort_by([col("session_start")], by_start()).drop_nulls().last().alias("user_id"),
            col("session_start").min().alias("first_seen"),
            col("session_end").max().alias("last_seen"),
            len().alias("sessions"),
            col("revenue").sum().alias("lifetime_revenue"),
            col("converted").sum().cast(DataType::UInt32).alias("purchases_sessions"),
            col("utm_source").sort_by([col("session_start")], by_start()).first().alias("first_utm_source"),
            col("country").sort_by([col("session_start")], by_start()).first().alias("country"),
        ])
        .sort(["site_id", "first_seen", "anonymous_id"], SortMultipleOptions::default())
}
