//! `product_performance_1h`: which products sell, and which are left in carts.

use polars::prelude::*;

use super::{is_product_view, is_type, rate, window_of};

/// One row per site, hour and product with at least one human view, cart
/// add or purchase.
///
/// Columns:
/// - `site_id`, `hour_start` (UTC), `product_id`;
/// - `views`: product page views (u32);
/// - `add_to_carts`: cart adds (u32); `units_added`: their quantities (i64);
/// - `purchases`: purchase lines (u32); `units_sold` (i64); `revenue` (f64);
/// - `view_to_cart_rate` = add_to_carts / views;
/// - `cart_to_purchase_rate` = purchases / add_to_carts;
/// - `cart_abandonment_rate` = 1 − cart_to_purchase_rate, floored at 0
///   (f64, null when there were no cart adds).
pub fn product_performance_1h(human: LazyFrame) -> LazyFrame {
    let counted = |pred: Expr, name: &str| pred.sum().cast(DataType::UInt32).alias(name);
    let units = |pred: Expr, name: &str| col("quantity").filter(pred).sum().alias(name);
    human
        .filter(col("product_id").is_not_null())
        .filter(is_product_view().or(is_type("add_to_cart")).or(is_type("purchase")))
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("product_id")])
        .agg([
            counted(is_product_view(), "views"),
            counted(is_type("add_to_cart"), "add_to_carts"),
            units(is_type("add_to_cart"), "units_added"),
            counted(is_type("purchase"), "purchases"),
            units(is_type("purchase"), "units_sold"),
            col("revenue").filter(is_type("purchase")).sum().alias("revenue"),
        ])
        .with_columns([
            rate(col("add_to_carts"), col("views")).alias("view_to_cart_rate"),
            rate(col("purchases"), col("add_to_carts")).alias("cart_to_purchase_rate"),
        ])
        .with_column(
            when(col("cart_to_purchase_rate").is_null())
                .then(lit(NULL).cast(DataType::Float64))
                .when(col("cart_to_purchase_rate").gt(lit(1.0)))
                .then(lit(0.0))
                .otherwise(lit(1.0) - col("cart_to_purchase_rate"))
                .alias("cart_abandonment_rate"),
        )
        .sort(["site_id", "hour_start", "product_id"], SortMultipleOptions::default())
}
