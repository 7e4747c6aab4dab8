//! Reading a table's rows for a time range: only the files of the range's
//! hours (Gold and Silver hold files by hour of their time column, the
//! rejects table by day), so a reader costs what its range holds, not what
//! the whole history holds. The dashboard's API and the alerts read this
//! way.

use std::path::{Path, PathBuf};

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::layout::{parquet_files, GoldTable, Table};
use super::scan::{has_files, scan_files, silver_files};

/// The rows of a Gold table whose time column lies in `[from, to)`, of one
/// site or all; `None` when no file covers the range (a table such as
/// `bot_anomalies` has files only for hours that had rows).
pub fn gold(
    data_dir: &Path,
    table: GoldTable,
    site: Option<&str>,
    from: i64,
    to: i64,
) -> PolarsResult<Option<LazyFrame>> {
    let files: Vec<PathBuf> = (from.div_euclid(HOUR_MS)..=(to - 1).div_euclid(HOUR_MS))
        .map(|hour| data_dir.join(table.hour_file(hour)))
        .filter(|path| path.is_file())
        .collect();
    let in_range = between(table.partition_column(), from, to);
    Ok(scan_files(&files)?.map(|lf| for_site(lf.filter(in_range), site)))
}

/// Silver events whose event time lies in `[from, to)`, of one site or all.
pub fn silver(data_dir: &Path, site: Option<&str>, from: i64, to: i64) -> PolarsResult<Option<LazyFrame>> {
    let files = silver_files(data_dir, from.div_euclid(HOUR_MS)..=(to - 1).div_euclid(HOUR_MS));
    Ok(scan_files(&files)?.map(|lf| for_site(lf.filter(between("event_ts", from, to)), site)))
}

/// The rejects (bad rows) that arrived in `[from, to)`, of one site or all.
pub fn rejects(data_dir: &Path, site: Option<&str>, from: i64, to: i64) -> PolarsResult<Option<LazyFrame>> {
    let files: Vec<PathBuf> = (Table::Rejects.partition_key(from)..=Table::Rejects.partition_key(to - 1))
        .flat_map(|day| {
            parquet_files(&data_dir.join(Table::Rejects.partition_dir(Table::Rejects.partition_start(day))))
        })
        .collect();
    Ok(scan_files(&files)?.map(|lf| for_site(lf.filter(between("received_at", from, to)), site)))
}

fn between(time: &str, from: i64, to: i64) -> Expr {
    col(time).cast(DataType::Int64).gt_eq(lit(from)).and(col(time).cast(DataType::Int64).lt(lit(to)))
}

fn for_site(lf: LazyFrame, site: Option<&str>) -> LazyFrame {
    match site {
        Some(site) => lf.filter(col("site_id").eq(lit(site.to_string()))),
        None => lf,
    }
}

/// A column as whole numbers (nulls as 0).
pub fn ints(df: &DataFrame, name: &str) -> PolarsResult<Vec<i64>> {
    let column = df.column(name)?.cast(&DataType::Int64)?;
    Ok(column.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

/// A column as numbers (nulls as 0).
pub fn floats(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    let column = df.column(name)?.cast(&DataType::Float64)?;
    Ok(column.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// A column as text (nulls as `missing`).
pub fn texts(df: &DataFrame, name: &str, missing: &str) -> PolarsResult<Vec<String>> {
    let column = df.column(name)?.cast(&DataType::String)?;
    Ok(column.str()?.iter().map(|v| v.unwrap_or(missing).to_string()).collect())
}

/// The first row's value of a one-row aggregate (0 for no rows).
pub fn first_float(df: &DataFrame, name: &str) -> PolarsResult<f64> {
    Ok(floats(df, name)?.first().copied().unwrap_or(0.0))
}

/// Whether the aggregator has written Gold at all: `traffic_1m` has a row
/// for every minute with traffic, so it exists as soon as anything does.
pub fn has_gold(data_dir: &Path) -> bool {
    has_files(data_dir, GoldTable::Traffic1m)
}
