//! `dim_date`: a micro-batch whose events fall on days the calendar does
//! not hold yet extends it to cover them, with every day in between.

use std::path::Path;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::hours::{hours_of, Writer};
use crate::gold::dates::{calendar, day_of};
use crate::gold::GoldTable;
use crate::storage::layout::{parquet_files, partition_day, TableDir};
use crate::storage::{lake, Commit, PipelineError};

/// Writes the days the micro-batch (`fresh`) adds to `dim_date`.
pub(super) fn extend_calendar(
    data_dir: &Path,
    fresh: &DataFrame,
    out: &mut Writer<'_>,
    commit: &mut Commit,
) -> Result<(), PipelineError> {
    let ts = fresh.column("event_ts")?.cast(&DataType::Int64)?;
    let (Some(first), Some(last)) = (ts.i64()?.min(), ts.i64()?.max()) else { return Ok(()) };
    let (first, last) = (day_of(first), day_of(last));
    // Most micro-batches fall on days held already: one look per day.
    let held = |day: i64| lake::file_exists(&data_dir.join(GoldTable::DimDate.hour_file(day * 24)));
    if (first..=last).all(held) {
        return Ok(());
    }
    // The days held are one unbroken run: only its ends matter.
    let days: Vec<i64> =
        parquet_files(&data_dir.join(GoldTable::DimDate.dir())).iter().filter_map(|f| day_of_file(f)).collect();
    let (from, to) = match (days.iter().min(), days.iter().max()) {
        (Some(&lo), Some(&hi)) => (first.min(lo), last.max(hi)),
        _ => (first, last),
    };
    let mut rows = calendar(from, to).collect()?;
    if let (Some(&lo), Some(&hi)) = (days.iter().min(), days.iter().max()) {
        let day = rows.column("date")?.cast(&DataType::Int32)?;
        let new: BooleanChunked =
            day.i32()?.iter().map(|d| d.map(|d| i64::from(d) < lo || i64::from(d) > hi)).collect();
        rows = rows.filter(&new)?;
    }
    let hours = hours_of(&rows, "day_start")?;
    debug_assert!(hours.iter().all(|h| (h * HOUR_MS).rem_euclid(24 * HOUR_MS) == 0));
    out.write_hours(commit, GoldTable::DimDate, rows, &hours)
}

/// The day of a `gold/dim_date/dt=YYYY-MM-DD/part-00.parquet` path.
fn day_of_file(path: &Path) -> Option<i64> {
    partition_day(path.parent()?)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;
    use clickstream_schema::time::days_from_civil;

    #[test]
    fn dim_date_after_a_micro_batch_is_that_of_a_rebuild() {
        for scenario in Scenario::all("dates") {
            scenario.refresh_and_commit(|view, fresh, out, commit| extend_calendar(view.data_dir, fresh, out, commit));
            scenario.assert_as_rebuilt(GoldTable::DimDate);
        }
    }

    #[test]
    fn a_partition_name_gives_back_its_day() {
        let day = days_from_civil(2026, 11, 22);
        let file = GoldTable::DimDate.hour_file(day * 24);
        assert_eq!(day_of_file(&file), Some(day), "{}", file.display());
    }
}
