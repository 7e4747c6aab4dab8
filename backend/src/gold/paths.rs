//! Paths through the site. `entry_pages_1h` and `exit_pages_1h`: where
//! sessions start and where they end, from the `sessions` table (its
//! `entry_page` and `exit_page`), per hour of session start like
//! `funnel_1h`; the refresh rewrites them with the funnel (an hour's rows
//! are those of the sessions that started in it, all of which are at hand).
//! `page_transitions_1h`: which page follows which, a window table.

use polars::prelude::*;

use super::{is_type, rate, window_of};

fn hour_of_start() -> Expr {
    col("session_start").dt().truncate(lit("1h")).alias("hour_start")
}

/// One row per site, hour of session start and entry page (the first page
/// view's path; sessions without a page view are left out).
///
/// Columns:
/// - `site_id`, `hour_start`, `page_path`;
/// - `sessions`: sessions that started on it (u32);
/// - `bounces`: of them, those with a single page view (u32);
/// - `bounce_rate` = bounces / sessions (f64);
/// - `converted`: those with a purchase (u32); `revenue`: theirs (f64).
pub fn entry_pages_1h(sessions: LazyFrame) -> LazyFrame {
    sessions
        .filter(col("entry_page").is_not_null())
        .with_column(hour_of_start())
        .group_by([col("site_id"), col("hour_start"), col("entry_page").alias("page_path")])
        .agg([
            len().cast(DataType::UInt32).alias("sessions"),
            col("bounced").sum().cast(DataType::UInt32).alias("bounces"),
            col("converted").sum().cast(DataType::UInt32).alias("converted"),
            col("revenue").sum().alias("revenue"),
        ])
        .select([
            col("site_id"),
            col("hour_start"),
            col("page_path"),
            col("sessions"),
            col("bounces"),
            rate(col("bounces"), col("sessions")).alias("bounce_rate"),
            col("converted"),
            col("revenue"),
        ])
        .sort(["site_id", "hour_start", "page_path"], SortMultipleOptions::default())
}

/// One row per site, hour of session start and exit page (the last page
/// view's path).
///
/// Columns:
/// - `site_id`, `hour_start`, `page_path`;
/// - `exits`: sessions that ended on it (u32);
/// - `bounces`: of them, single-page sessions (u32).
///
/// An exit rate divides exits by the page's views (`top_pages_1h`) over
/// the same hours, as `/api/pages` does.
pub fn exit_pages_1h(sessions: LazyFrame) -> LazyFrame {
    sessions
        .filter(col("exit_page").is_not_null())
        .with_column(hour_of_start())
        .group_by([col("site_id"), col("hour_start"), col("exit_page").alias("page_path")])
        .agg([
            len().cast(DataType::UInt32).alias("exits"),
            col("bounced").sum().cast(DataType::UInt32).alias("bounces"),
        ])
        .sort(["site_id", "hour_start", "page_path"], SortMultipleOptions::default())
}

/// One row per site, hour, page and the page viewed right after it in the
/// same tracker session (`session_id`) within the hour, from human page
/// views. A step across the hour's end is left out, so an hour of Silver
/// computes its rows whole (like the other window tables); sessions last
/// minutes, so few are.
///
/// Page views of a session at the same millisecond are ordered by path.
///
/// Columns:
/// - `site_id`, `hour_start`, `page_path` (from), `next_page` (to);
/// - `transitions`: how many times (u32); `sessions`: in how many
///   sessions (u32).
pub fn page_transitions_1h(human: LazyFrame) -> LazyFrame {
    let next = |c: &str| col(c).shift(lit(-1));
    human
        .filter(is_type("page_view").and(col("page_path").is_not_null()))
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .select([col("site_id"), col("session_id"), col("hour_start"), col("event_ts"), col("page_path")])
        .sort(["site_id", "session_id", "event_ts", "page_path"], SortMultipleOptions::default())
        // The next row is the next page view when it is of the same
        // session and hour.
        .with_columns([
            next("page_path").alias("next_page"),
            next("site_id").eq(col("site_id")).alias("_same_site"),
            next("session_id").eq(col("session_id")).alias("_same_session"),
            next("hour_start").eq(col("hour_start")).alias("_same_hour"),
        ])
        .filter(col("_same_site").and(col("_same_session")).and(col("_same_hour")))
        .group_by([col("site_id"), col("hour_start"), col("page_path"), col("next_page")])
        .agg([
            len().cast(DataType::UInt32).alias("transitions"),
            col("session_id").n_unique().cast(DataType::UInt32).alias("sessions"),
        ])
        .sort(["site_id", "hour_start", "page_path", "next_page"], SortMultipleOptions::default())
}
