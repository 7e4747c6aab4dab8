//! `funnel_1h`: how far sessions get on the way to a purchase.

use polars::prelude::*;

use super::rate;

/// The funnel's steps, in order.
pub const STEPS: [&str; 4] = ["product_views", "add_to_carts", "checkouts", "purchases"];

/// One row per site and hour of session start, from the `sessions` table
/// (its `funnel_step` says how far each session got, in order).
///
/// A step counts for a session only if it happens at or after the time the
/// session reached the previous step: a cart add before any product view
/// does not count, nor a purchase without a checkout before it.
///
/// Columns:
/// - `site_id`, `hour_start` (hour of the session's start, UTC);
/// - `sessions`: sessions that started in the hour (u32);
/// - `product_views`, `add_to_carts`, `checkouts`, `purchases`: sessions
///   reaching each step in order (u32);
/// - `view_rate` = product_views / sessions, `cart_rate` = add_to_carts /
///   product_views, `checkout_rate` = checkouts / add_to_carts,
///   `purchase_rate` = purchases / checkouts, `conversion_rate` =
///   purchases / sessions (f64, null when the denominator is 0).
pub fn funnel_1h(sessions: LazyFrame) -> LazyFrame {
    let reached =
        |step: u8| col("funnel_step").gt_eq(lit(step)).sum().cast(DataType::UInt32).alias(STEPS[step as usize - 1]);
    sessions
        .with_column(col("session_start").dt().truncate(lit("1h")).alias("hour_start"))
        .group_by([col("site_id"), col("hour_start")])
        .agg([len().alias("sessions"), reached(1), reached(2), reached(3), reached(4)])
        .with_columns([
            rate(col("product_views"), col("sessions")).alias("view_rate"),
            rate(col("add_to_carts"), col("product_views")).alias("cart_rate"),
            rate(col("checkouts"), col("add_to_carts")).alias("checkout_rate"),
            rate(col("purchases"), col("checkouts")).alias("purchase_rate"),
            rate(col("purchases"), col("sessions")).alias("conversion_rate"),
        ])
        .sort(["site_id", "hour_start"], SortMultipleOptions::default())
}
