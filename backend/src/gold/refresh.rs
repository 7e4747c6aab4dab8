//! Keeping Gold up to date one micro-batch at a time.
//!
//! Each Gold table is partitioned by the UTC day of its time column
//! (`gold/<table>/dt=YYYY-MM-DD/part-00000.parquet`, one file per day). A
//! micro-batch recomputes only the days its new Silver rows can change:
//! the days of those rows and their neighbours (a session can cross
//! midnight, and a new event can join two sessions), plus the days whose
//! windows the watermark newly passed (their `is_final` flips). Each day is
//! recomputed from Silver around it, and its file is replaced in the same
//! atomic commit as the Silver rows: readers see the old day or the new
//! day, never a mix, and a crash redoes the whole micro-batch.
//!
//! `dim_users` has no time window: it is recomputed from the whole
//! `sessions` table each micro-batch, partitioned by `first_seen`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clickstream_schema::time::{days_from_civil, utc_date_string};
use polars::prelude::*;

use super::{all_tables, collect_tables, dim_users, ts_ms, GoldConfig, GoldTable};
use crate::aggregate::dedup::{scan_glob, scan_table, table_has_files};
use crate::aggregate::silver::SILVER_COLUMNS;
use crate::aggregate::AggregateError;
use crate::storage::layout::parquet_files;
use crate::storage::{Commit, Manifest, Table};

pub const DAY_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;

/// The table's directory, relative to the data directory.
pub fn table_dir(table: GoldTable) -> PathBuf {
    PathBuf::from("gold").join(table.name())
}

/// The one file of a table's day (days since the epoch).
pub fn day_file(table: GoldTable, day: i64) -> PathBuf {
    table_dir(table).join(format!("dt={}", utc_date_string(day * DAY_MS))).join("part-00000.parquet")
}

/// The glob that reads a whole Gold table.
pub fn glob(data_dir: &Path, table: GoldTable) -> String {
    format!("{}/{}/**/*.parquet", data_dir.display(), table_dir(table).display())
}

/// Whether a Gold table has at least one published file.
pub fn has_files(data_dir: &Path, table: GoldTable) -> bool {
    !parquet_files(&data_dir.join(table_dir(table))).is_empty()
}

/// Lazily scans a Gold table (its `dt` partition column included).
pub fn scan(data_dir: &Path, table: GoldTable) -> PolarsResult<LazyFrame> {
    scan_glob(glob(data_dir, table))
}

/// The days a micro-batch must recompute: those of its new Silver rows and
/// their neighbours, and those the watermark moved through.
pub fn days_to_refresh(
    new_event_ts: impl IntoIterator<Item = i64>,
    old_watermark: Option<i64>,
    new_watermark: Option<i64>,
) -> BTreeSet<i64> {
    let mut days = BTreeSet::new();
    for ts in new_event_ts {
        let d = ts.div_euclid(DAY_MS);
        days.extend([d - 1, d, d + 1]);
    }
    if let (Some(old), Some(new)) = (old_watermark, new_watermark) {
        // Rows that may have turned final: windows of the days the
        // watermark moved through, and sessions (or funnel hours) of the
        // day before, which settle up to a session gap after midnight.
        days.extend(old.div_euclid(DAY_MS) - 1..=new.div_euclid(DAY_MS));
    }
    days
}

/// The watermark after Silver has seen events up to `max_event_ts`.
pub fn watermark(max_event_ts: Option<i64>, config: &GoldConfig) -> Option<i64> {
    max_event_ts.map(|t| t - config.allowed_lateness_ms)
}

/// Marks rows final once the watermark has passed everything that could
/// still change them.
fn with_is_final(table: GoldTable, lf: LazyFrame, watermark: Option<i64>, config: &GoldConfig) -> LazyFrame {
    let gap = config.session_gap_ms;
    let settled_at = match table {
        GoldTable::Traffic1m | GoldTable::Revenue5m | GoldTable::BotAnomalies => ts_ms("window_end"),
        GoldTable::TopPages1h | GoldTable::ProductPerformance1h => ts_ms("hour_start") + lit(HOUR_MS),
        // Sessions that started in the hour can still go on for a while.
        GoldTable::Funnel1h => ts_ms("hour_start") + lit(HOUR_MS + gap),
        GoldTable::Sessions => ts_ms("session_end") + lit(gap),
        GoldTable::DimUsers => return lf,
    };
    let is_final = match watermark {
        Some(w) => settled_at.lt_eq(lit(w)),
        None => lit(false),
    };
    lf.with_column(is_final.alias("is_final"))
}

/// Silver rows whose day is in `days`, read from the published Silver
/// files plus `fresh` (this micro-batch's rows, not yet published).
fn silver_for_days(data_dir: &Path, fresh: &DataFrame, days: &BTreeSet<i64>) -> PolarsResult<LazyFrame> {
    let columns: Vec<Expr> = SILVER_COLUMNS.iter().map(|c| col(*c)).collect();
    let mut frames = vec![fresh.clone().lazy().select(columns.clone())];
    if table_has_files(data_dir, Table::Silver) {
        // One time range per run of consecutive days: row-group statistics
        // (event_ts min/max) skip the rest.
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        for &d in days {
            match ranges.last_mut() {
                Some((_, end)) if *end == d => *end = d + 1,
                _ => ranges.push((d, d + 1)),
            }
        }
        let in_days = ranges
            .into_iter()
            .map(|(a, b)| ts_ms("event_ts").gt_eq(lit(a * DAY_MS)).and(ts_ms("event_ts").lt(lit(b * DAY_MS))))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
        frames.insert(0, scan_table(data_dir, Table::Silver)?.filter(in_days).select(columns));
    }
    concat(frames, UnionArgs::default())
}

/// Advances the watermark in `manifest` by the micro-batch's new Silver
/// rows (`fresh`) and recomputes the Gold days they touch into `commit`.
/// The streaming aggregator and `replay` both call this, so they agree.
pub fn after_silver(
    data_dir: &Path,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
) -> Result<usize, AggregateError> {
    if fresh.height() == 0 {
        return Ok(0);
    }
    let ts = fresh.column("event_ts")?.cast(&DataType::Int64)?;
    let ts: Vec<i64> = ts.i64()?.into_no_null_iter().collect();
    let old_watermark = watermark(manifest.max_event_ts, config);
    if let Some(max) = ts.iter().copied().max() {
        manifest.max_event_ts = Some(manifest.max_event_ts.map_or(max, |m| m.max(max)));
    }
    let new_watermark = watermark(manifest.max_event_ts, config);
    let days = days_to_refresh(ts, old_watermark, new_watermark);
    refresh(data_dir, commit, fresh, &days, new_watermark, config)
}

/// Recomputes the Gold days of a micro-batch into `commit`. `fresh` holds
/// the micro-batch's new Silver rows. Returns the number of files written.
pub fn refresh(
    data_dir: &Path,
    commit: &mut Commit,
    fresh: &DataFrame,
    days: &BTreeSet<i64>,
    watermark: Option<i64>,
    config: &GoldConfig,
) -> Result<usize, AggregateError> {
    if days.is_empty() {
        return Ok(0);
    }
    // Context: a day more on each side, so sessions crossing the edges of
    // the refreshed days are whole.
    let context_days: BTreeSet<i64> = days.iter().flat_map(|d| [d - 1, *d, d + 1]).collect();
    let silver = silver_for_days(data_dir, fresh, &context_days)?;
    let mut files = 0;
    let mut new_sessions = None;
    let tables = all_tables(silver, config)?
        .into_iter()
        .filter(|(t, _)| *t != GoldTable::DimUsers)
        .map(|(t, lf)| (t, with_is_final(t, lf, watermark, config)))
        .collect();
    for (table, df) in collect_tables(tables)? {
        files += write_days(data_dir, commit, table, &df, Some(days))?;
        if table == GoldTable::Sessions {
            new_sessions = Some(df);
        }
    }

    // dim_users from every session: the untouched days' from disk, the
    // refreshed days' as just computed.
    let mut sessions = new_sessions.unwrap_or_default();
    sessions = keep_days(&sessions, GoldTable::Sessions, days)?;
    let mut all = vec![sessions.lazy()];
    if has_files(data_dir, GoldTable::Sessions) {
        let refreshed: Vec<i64> = days.iter().copied().collect();
        let on_disk = scan(data_dir, GoldTable::Sessions)?
            .filter(ts_ms("session_start").floor_div(lit(DAY_MS)).is_in(lit(Series::new("d".into(), refreshed)).implode(false), false).not())
            .drop(cols(["dt"]));
        all.insert(0, on_disk);
    }
    let users = dim_users(concat(all, UnionArgs { diagonal: false, ..UnionArgs::default() })?).collect()?;
    files += write_days(data_dir, commit, GoldTable::DimUsers, &users, None)?;
    Ok(files)
}

fn day_numbers(df: &DataFrame, table: GoldTable) -> PolarsResult<Vec<i64>> {
    let ts = df.column(table.partition_column())?.cast(&DataType::Int64)?;
    Ok(ts.i64()?.iter().map(|t| t.unwrap_or(0).div_euclid(DAY_MS)).collect())
}

fn keep_days(df: &DataFrame, table: GoldTable, days: &BTreeSet<i64>) -> PolarsResult<DataFrame> {
    if df.height() == 0 {
        return Ok(df.clone());
    }
    let mask: BooleanChunked = day_numbers(df, table)?.into_iter().map(|d| Some(days.contains(&d))).collect();
    df.filter(&mask)
}

/// Writes one file per day of `df` among `only` (every day when `None`).
/// A day that had a file but has no rows now gets an empty file, so stale
/// rows never linger.
fn write_days(
    data_dir: &Path,
    commit: &mut Commit,
    table: GoldTable,
    df: &DataFrame,
    only: Option<&BTreeSet<i64>>,
) -> Result<usize, AggregateError> {
    let mut rows_by_day: BTreeMap<i64, Vec<IdxSize>> = BTreeMap::new();
    if df.height() > 0 {
        for (row, day) in day_numbers(df, table)?.into_iter().enumerate() {
            rows_by_day.entry(day).or_default().push(row as IdxSize);
        }
    }
    let mut targets: BTreeSet<i64> = match only {
        Some(days) => days.clone(),
        None => rows_by_day.keys().copied().collect(),
    };
    if only.is_none() {
        // Days that have a file today but no rows any more.
        for file in parquet_files(&data_dir.join(table_dir(table))) {
            if let Some(day) = file_day(&file) {
                targets.insert(day);
            }
        }
    }
    let mut files = 0;
    for day in targets {
        let rows = rows_by_day.remove(&day).unwrap_or_default();
        let path = day_file(table, day);
        if rows.is_empty() && !data_dir.join(&path).exists() {
            continue;
        }
        let mut part = df.take(&IdxCa::from_vec("idx".into(), rows))?;
        commit.write_parquet_at(&path, &mut part)?;
        files += 1;
    }
    Ok(files)
}

/// The day of a `.../dt=YYYY-MM-DD/part-*.parquet` path.
fn file_day(path: &Path) -> Option<i64> {
    let dir = path.parent()?.file_name()?.to_str()?;
    let date = dir.strip_prefix("dt=")?;
    let mut it = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    Some(days_from_civil(y, m as u32, d as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_back_their_day() {
        let day = days_from_civil(2026, 11, 22);
        assert_eq!(file_day(&day_file(GoldTable::Sessions, day)), Some(day));
    }

    #[test]
    fn refreshed_days_cover_neighbours_and_the_watermark_move() {
        let d = 20_000;
        let days = days_to_refresh([d * DAY_MS + 5], None, None);
        assert_eq!(days.into_iter().collect::<Vec<_>>(), vec![d - 1, d, d + 1]);
        let days = days_to_refresh([], Some((d - 3) * DAY_MS), Some((d - 2) * DAY_MS + 1));
        assert_eq!(days.into_iter().collect::<Vec<_>>(), vec![d - 4, d - 3, d - 2]);
    }
}
