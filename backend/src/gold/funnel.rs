//! `funnel_1h`: how far sessions get on the way to a purchase.

use polars::prelude::*;

use super::{is_product_view, is_type, rate, ts_ms};

/// The funnel's steps, in order.
pub const STEPS: [&str; 4] = ["product_views", "add_to_carts", "checkouts", "purchases"];

/// One row per site and hour of session start, from
/// [`super::sessionize`]d human events.
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
pub fn funnel_1h(sessionized: LazyFrame) -> PolarsResult<LazyFrame> {
    let session = || [col("site_id"), col("session_id")];
    // Time the session first reached a step, given when it reached the one before.
    let reached = |step: Expr, after: &str| {
        ts_ms("event_ts").filter(step.and(ts_ms("event_ts").gt_eq(col(after)))).min().over(session())
    };
    let per_session = sessionized
        .with_column(ts_ms("event_ts").filter(is_product_view()).min().over(session())?.alias("_view"))
        .with_column(reached(is_type("add_to_cart"), "_view")?.alias("_cart"))
        .with_column(reached(is_type("begin_checkout"), "_cart")?.alias("_checkout"))
        .with_column(reached(is_type("purchase"), "_checkout")?.alias("_purchase"))
        .group_by(session())
        .agg([
            col("session_start").first(),
            col("_view").first(),
            col("_cart").first(),
            col("_checkout").first(),
            col("_purchase").first(),
        ]);
    let count = |c: &str, name: &str| col(c).is_not_null().sum().cast(DataType::UInt32).alias(name);
    Ok(per_session
        .with_column(col("session_start").dt().truncate(lit("1h")).alias("hour_start"))
        .group_by([col("site_id"), col("hour_start")])
        .agg([
            len().alias("sessions"),
            count("_view", STEPS[0]),
            count("_cart", STEPS[1]),
            count("_checkout", STEPS[2]),
            count("_purchase", STEPS[3]),
        ])
        .with_columns([
            rate(col("product_views"), col("sessions")).alias("view_rate"),
            rate(col("add_to_carts"), col("product_views")).alias("cart_rate"),
            rate(col("checkouts"), col("add_to_carts")).alias("checkout_rate"),
            rate(col("purchases"), col("checkouts")).alias("purchase_rate"),
            rate(col("purchases"), col("sessions")).alias("conversion_rate"),
        ])
        .sort(["site_id", "hour_start"], SortMultipleOptions::default()))
}
