//! What every step of a refresh shares: Silver read by hour, Gold written
//! by hour, and the frame helpers for visitors and hours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::finality::with_is_final;
use crate::gold::{ts_ms, GoldConfig, GoldTable};
use crate::storage::scan::{read_gold_hour, scan_files, silver_files};
use crate::storage::{Commit, PipelineError};

/// The Silver a refresh reads: the published files of the hours it asks
/// for, plus rows not published yet (the micro-batch's own).
pub(super) struct SilverView<'a> {
    pub data_dir: &'a Path,
    pub unpublished: DataFrame,
}

impl SilverView<'_> {
    /// `columns` of the Silver rows in `hours`, those `only` keeps (a
    /// filter the Parquet reader applies before decoding other columns).
    pub fn hours(&self, hours: &BTreeSet<i64>, columns: &[&str], only: Option<&Expr>) -> PolarsResult<LazyFrame> {
        let columns: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        let keep = |lf: LazyFrame| match only {
            Some(only) => lf.filter(only.clone()),
            None => lf,
        };
        let mut frames = Vec::new();
        if let Some(published) = scan_files(&silver_files(self.data_dir, hours.iter().copied()))? {
            frames.push(keep(published).select(columns.clone()));
        }
        frames.push(keep(self.unpublished.clone().lazy().filter(in_hours("event_ts", hours))).select(columns));
        concat(frames, UnionArgs::default())
    }
}

/// The hour files one refresh writes, and the watermark they are written
/// with.
pub(super) struct Writer<'a> {
    pub data_dir: &'a Path,
    pub config: &'a GoldConfig,
    pub watermark: Option<i64>,
    written: BTreeMap<GoldTable, BTreeSet<i64>>,
    pub files: usize,
}

impl<'a> Writer<'a> {
    pub fn new(data_dir: &'a Path, config: &'a GoldConfig, watermark: Option<i64>) -> Writer<'a> {
        Writer { data_dir, config, watermark, written: BTreeMap::new(), files: 0 }
    }

    /// Writes the rows of `df` of each hour in `hours` as that hour's file.
    /// An hour that had a file but has no rows now gets an empty file, so
    /// stale rows never linger.
    pub fn write_hours(
        &mut self,
        commit: &mut Commit,
        table: GoldTable,
        df: DataFrame,
        hours: &BTreeSet<i64>,
    ) -> Result<(), PipelineError> {
        let df = with_is_final(table, df, self.watermark, self.config)?;
        let mut rows_by_hour: BTreeMap<i64, Vec<IdxSize>> = BTreeMap::new();
        let ts = df.column(table.partition_column())?.cast(&DataType::Int64)?;
        for (row, t) in ts.i64()?.iter().enumerate() {
            rows_by_hour.entry(t.unwrap_or(0).div_euclid(HOUR_MS)).or_default().push(row as IdxSize);
        }
        for &hour in hours {
            let rows = rows_by_hour.remove(&hour).unwrap_or_default();
            let path = table.hour_file(hour);
            if rows.is_empty() && !crate::storage::lake::file_exists(&self.data_dir.join(&path)) {
                continue;
            }
            let mut part = df.take(&IdxCa::from_vec("idx".into(), rows))?;
            commit.write_parquet_at(&path, &mut part)?;
            self.written.entry(table).or_default().insert(hour);
            self.files += 1;
        }
        Ok(())
    }

    pub fn was_written(&self, table: GoldTable, hour: i64) -> bool {
        self.written.get(&table).is_some_and(|h| h.contains(&hour))
    }
}

/// Rewrites the changed rows of a dimension (a table of one row per key,
/// partitioned by `first_seen`): the hours the `changed` keys' rows leave
/// (`old_rows`) or land in (`rows`), each keeping its other keys' rows.
/// `key` is (`site_id`, the dimension's own key).
pub(super) fn rewrite_dimension(
    out: &mut Writer<'_>,
    commit: &mut Commit,
    table: GoldTable,
    key: [&str; 2],
    changed: &DataFrame,
    rows: DataFrame,
    old_rows: &DataFrame,
) -> Result<(), PipelineError> {
    let mut hours = hours_of(&rows, "first_seen")?;
    if old_rows.height() > 0 {
        hours.extend(hours_of(old_rows, "first_seen")?);
    }
    let on = || key.map(col);
    let mut parts = vec![rows.lazy()];
    for &hour in &hours {
        if let Some(df) = read_hour(out.data_dir, table, hour)? {
            parts.push(df.lazy().join(changed.clone().lazy(), on(), on(), JoinArgs::new(JoinType::Anti)));
        }
    }
    let rows = concat(parts, UnionArgs::default())?
        .sort(["site_id", "first_seen", key[1]], SortMultipleOptions::default())
        .collect()?;
    out.write_hours(commit, table, rows, &hours)
}

/// Reads one hour's file of a table, without `is_final` (recomputed when
/// the hour is written again).
pub(super) fn read_hour(data_dir: &Path, table: GoldTable, hour: i64) -> PolarsResult<Option<DataFrame>> {
    let Some(df) = read_gold_hour(data_dir, table, hour)? else {
        return Ok(None);
    };
    Ok(Some(if df.schema().contains("is_final") { df.drop("is_final")? } else { df }))
}

fn hour_of(column: &str) -> Expr {
    ts_ms(column).floor_div(lit(HOUR_MS))
}

/// The distinct hours of a time column.
pub(super) fn hours_of(df: &DataFrame, column: &str) -> PolarsResult<BTreeSet<i64>> {
    let ts = df.column(column)?.cast(&DataType::Int64)?;
    Ok(ts.i64()?.into_no_null_iter().map(|t| t.div_euclid(HOUR_MS)).collect())
}

/// Every hour from the start's to the end's, per row of two time columns.
pub(super) fn hours_spanned(df: &DataFrame, start: &str, end: &str) -> PolarsResult<BTreeSet<i64>> {
    let (from, to) = (df.column(start)?.cast(&DataType::Int64)?, df.column(end)?.cast(&DataType::Int64)?);
    let mut hours = BTreeSet::new();
    for (f, t) in from.i64()?.into_no_null_iter().zip(to.i64()?.into_no_null_iter()) {
        hours.extend(f.div_euclid(HOUR_MS)..=t.div_euclid(HOUR_MS));
    }
    Ok(hours)
}

pub(super) fn in_hours(column: &str, hours: &BTreeSet<i64>) -> Expr {
    let list = Series::new("hours".into(), hours.iter().copied().collect::<Vec<_>>());
    hour_of(column).is_in(lit(list).implode(false), false)
}

pub(super) fn visitor() -> [Expr; 2] {
    [col("site_id"), col("anonymous_id")]
}

pub(super) fn join_on_visitor(left: LazyFrame, right: LazyFrame, how: JoinType) -> LazyFrame {
    left.join(right, visitor(), visitor(), JoinArgs::new(how))
}

/// The visitor ids of a frame, as a list literal: a filter on it lets the
/// Parquet reader skip other visitors' rows before a join matches sites.
pub(super) fn ids_of(df: &DataFrame) -> PolarsResult<Expr> {
    Ok(lit(df.column("anonymous_id")?.as_materialized_series().clone()).implode(false))
}

/// An empty (`site_id`, `anonymous_id`) frame.
pub(super) fn no_visitors() -> DataFrame {
    DataFrame::new_infer_height(vec![
        Column::new_empty("site_id".into(), &DataType::String),
        Column::new_empty("anonymous_id".into(), &DataType::String),
    ])
    .expect("two empty columns")
}

/// The `sessions` columns a refresh needs of the sessions it replaces or
/// drops.
pub(super) fn session_keys() -> [Expr; 7] {
    [
        col("site_id"),
        col("session_id"),
        col("anonymous_id"),
        col("session_start"),
        col("session_end"),
        col("revenue"),
        col("converted"),
    ]
}
