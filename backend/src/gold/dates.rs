//! `dim_date`: the calendar of the star schema.

use clickstream_schema::time::DAY_MS;
use polars::prelude::*;

use super::datetime_ms;

/// One row per UTC day from the first to the last day Silver has an event
/// on (bots included), days without events too, so that a join from the
/// calendar shows them as zero rather than leaving them out.
///
/// Columns:
/// - `date` (Date), and `day_start`, its first millisecond (a timestamp,
///   to join `event_ts` truncated to the day, and the partition column);
/// - `year`, `quarter` (1–4), `month` (1–12), `month_name` ("January"),
///   `month_start`;
/// - `iso_year`, `iso_week` (1–53; ISO 8601 weeks start on Monday and
///   belong to the year of their Thursday), `week_start` (that Monday);
/// - `weekday` (1 = Monday … 7 = Sunday), `weekday_name`, `is_weekend`;
/// - `day_of_month`, `day_of_year`.
pub fn dim_date(silver: LazyFrame) -> PolarsResult<LazyFrame> {
    let ms = silver
        .select([col("event_ts").min().alias("first"), col("event_ts").max().alias("last")])
        .collect()?
        .columns()
        .iter()
        .map(|c| c.cast(&DataType::Int64).ok().and_then(|c| c.i64().ok()?.get(0)))
        .collect::<Vec<_>>();
    Ok(match (ms[0], ms[1]) {
        (Some(first), Some(last)) => calendar(day_of(first), day_of(last)),
        _ => calendar(1, 0),
    })
}

/// The day (since the epoch, UTC) a time in ms falls on.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The `dim_date` rows of the days `first..=last` (days since the epoch).
pub fn calendar(first: i64, last: i64) -> LazyFrame {
    let days: Vec<i32> = (first..=last).filter_map(|d| i32::try_from(d).ok()).collect();
    let date = Column::new("date".into(), days).cast(&DataType::Date).expect("days cast to dates");
    let frame = DataFrame::new_infer_height(vec![date]).expect("one column");
    let d = || col("date").dt();
    let int = |e: Expr, name: &str| e.cast(DataType::Int32).alias(name);
    frame.lazy().select([
        col("date"),
        col("date").cast(datetime_ms()).alias("day_start"),
        int(d().year(), "year"),
        int(d().quarter(), "quarter"),
        int(d().month(), "month"),
        d().to_string("%B").alias("month_name"),
        d().truncate(lit("1mo")).alias("month_start"),
        int(d().iso_year(), "iso_year"),
        int(d().week(), "iso_week"),
        d().truncate(lit("1w")).alias("week_start"),
        int(d().weekday(), "weekday"),
        d().to_string("%A").alias("weekday_name"),
        d().weekday().gt_eq(lit(6)).alias("is_weekend"),
        int(d().day(), "day_of_month"),
        int(d().ordinal_day(), "day_of_year"),
    ])
}
