//! `revenue_5m`: money in, five minutes at a time.

use polars::prelude::*;

use super::{is_type, window_of};

/// One row per site, 5-minute window and product with at least one human
/// purchase line.
///
/// Columns:
/// - `site_id`, `window_start`, `window_end` (`[start, end)`), `product_id`;
/// - `revenue`: sum of the purchase lines' `revenue` (f64, in the site's
///   currency; mixed currencies are not converted);
/// - `orders`: distinct `order_id` (u32);
/// - `units`: sum of `quantity` (i64).
pub fn revenue_5m(human: LazyFrame) -> LazyFrame {
    human
        .filter(is_type("purchase"))
        .with_column(window_of("event_ts", "5m").alias("window_start"))
        .group_by([col("site_id"), col("window_start"), col("product_id")])
        .agg([
            col("revenue").sum().alias("revenue"),
            col("order_id").n_unique().cast(DataType::UInt32).alias("orders"),
            col("quantity").sum().alias("units"),
        ])
        .with_column(col("window_start").dt().offset_by(lit("5m")).alias("window_end"))
        .select([
            col("site_id"),
            col("window_start"),
            col("window_end"),
            col("product_id"),
            col("revenue"),
            col("orders"),
            col("units"),
        ])
        .sort(["site_id", "window_start", "product_id"], SortMultipleOptions::default())
}
