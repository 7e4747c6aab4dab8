//! `conversion_10m`: the seeds' conversion window — of the sessions active
//! in ten minutes, how many bought.

use polars::prelude::*;

use super::{is_type, rate, window_of};

/// Distinct sessions among the events where `condition` holds.
fn sessions_where(condition: Expr) -> Expr {
    col("session_id").filter(condition).n_unique().cast(DataType::UInt32)
}

/// One row per site and 10-minute window with at least one human event.
///
/// A session is the tracker's `session_id`, counted in every window it has
/// an event in (so the windows of an hour do not add up to the hour's
/// sessions). Whole-session funnels, by the pipeline's own sessions, are
/// `funnel_1h`.
///
/// Columns:
/// - `site_id`, `window_start`, `window_end` (`[start, end)`);
/// - `sessions`: distinct sessions with an event in the window (u32);
/// - `cart_sessions`: of them, those with an `add_to_cart` in it (u32);
/// - `purchase_sessions`: those with a `purchase` in it (u32);
/// - `purchases`: distinct `order_id` of the window's purchases (u32);
/// - `conversion_rate` = purchase_sessions / sessions (f64).
pub fn conversion_10m(human: LazyFrame) -> LazyFrame {
    human
        .with_column(window_of("event_ts", "10m").alias("window_start"))
        .group_by([col("site_id"), col("window_start")])
        .agg([
            col("session_id").n_unique().cast(DataType::UInt32).alias("sessions"),
            sessions_where(is_type("add_to_cart")).alias("cart_sessions"),
            sessions_where(is_type("purchase")).alias("purchase_sessions"),
            col("order_id").filter(is_type("purchase")).n_unique().cast(DataType::UInt32).alias("purchases"),
        ])
        .with_columns([
            col("window_start").dt().offset_by(lit("10m")).alias("window_end"),
            rate(col("purchase_sessions"), col("sessions")).alias("conversion_rate"),
        ])
        .select([
            col("site_id"),
            col("window_start"),
            col("window_end"),
            col("sessions"),
            col("cart_sessions"),
            col("purchase_sessions"),
            col("purchases"),
            col("conversion_rate"),
        ])
        .sort(["site_id", "window_start"], SortMultipleOptions::default())
}
