//! `bot_anomalies`: visitors whose event rate no person produces.

use polars::prelude::*;

use super::{window_of, GoldConfig};

/// One row per visitor and 1-minute window with more than
/// `config.bot_events_per_minute` events. Counts every event, whether or
/// not its user agent already said bot.
///
/// Columns:
/// - `site_id`, `anonymous_id`: the visitor.
/// - `window_start`, `window_end`: the minute, `[start, end)` on event time.
/// - `events`: events of the visitor in that minute (u32).
pub fn bot_anomalies(silver: LazyFrame, config: &GoldConfig) -> LazyFrame {
    silver
        .with_column(window_of("event_ts", "1m").alias("window_start"))
        .group_by([col("site_id"), col("anonymous_id"), col("window_start")])
        .agg([len().alias("events")])
        .filter(col("events").gt(lit(config.bot_events_per_minute)))
        .with_column(col("window_start").dt().offset_by(lit("1m")).alias("window_end"))
        .select([col("site_id"), col("anonymous_id"), col("window_start"), col("window_end"), col("events")])
        .sort(["site_id", "window_start", "anonymous_id"], SortMultipleOptions::default())
}
