//! `top_pages_1h`: which pages people look at, hour by hour.

use polars::prelude::*;

use super::{is_type, window_of};

/// One row per site, hour and `page_path` with at least one human page view.
///
/// Columns:
/// - `site_id`, `hour_start` (the hour, UTC), `page_path`;
/// - `views`: page views (u32);
/// - `unique_visitors`: distinct `anonymous_id` that viewed it (u32);
/// - `rank`: 1 for the most viewed page of the site in that hour (ties share
///   the lower rank).
pub fn top_pages_1h(human: LazyFrame) -> PolarsResult<LazyFrame> {
    let rank = col("views")
        .rank(RankOptions { method: RankMethod::Min, descending: true }, None)
        .over([col("site_id"), col("hour_start")])?;
    Ok(human
        .filter(is_type("page_view"))
        .with_column(window_of("event_ts", "1h").alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("page_path")])
        .agg([len().alias("views"), col("anonymous_id").n_unique().cast(DataType::UInt32).alias("unique_visitors")])
        .with_column(rank.cast(DataType::UInt32).alias("rank"))
        .sort(["site_id", "hour_start", "rank", "page_path"], SortMultipleOptions::default()))
}
