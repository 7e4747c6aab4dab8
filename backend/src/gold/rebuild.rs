//! `clickstream gold --rebuild`: Gold built again from the whole of Silver
//! in a scratch directory, and compared with the live Gold table by table,
//! row by row.
//!
//! The live Gold is the sum of many incremental refreshes (and, after a
//! crash, of recoveries); the rebuild is one pass over Silver. They must
//! agree: that is the pipeline's promise that a crash neither loses nor
//! repeats anything, checked after the fact on a real data directory.
//!
//! The scratch directory is made to look like a data directory of its own
//! whose `silver/` holds the live Silver files (hard links, so nothing is
//! copied on the same file system), and [`super::refresh::build`] runs
//! there: the live directory is only read.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::refresh::{build, has_files, scan};
use super::{GoldConfig, GoldTable};
use crate::storage::error::io_err;
use crate::storage::layout::parquet_files;
use crate::storage::{Manifest, PipelineError, Table};

/// Float columns are compared to this many decimal places when the exact
/// comparison fails: merged `dim_users` rows update `lifetime_revenue` by
/// adding and subtracting session revenue, so it can differ from a fresh
/// sum in the last bits of a float (README, known limits).
const FLOAT_DECIMALS: i32 = 6;
/// Rows shown of each side of a difference.
const SAMPLE_ROWS: usize = 5;

/// How one Gold table compares.
#[derive(Clone, Debug)]
pub struct TableDiff {
    pub table: GoldTable,
    pub live_rows: usize,
    pub rebuilt_rows: usize,
    /// Rows (counted with multiplicity) the live table has and the rebuild
    /// has not, and the other way round.
    pub only_live: usize,
    pub only_rebuilt: usize,
    /// Equal only once floats are rounded to [`FLOAT_DECIMALS`] places.
    pub float_noise: bool,
    /// Why the tables could not be compared row by row (different columns).
    pub columns_differ: Option<String>,
    /// A few differing rows of each side (floats rounded), for the report.
    pub sample_live: Option<DataFrame>,
    pub sample_rebuilt: Option<DataFrame>,
}

impl TableDiff {
    pub fn differs(&self) -> bool {
        self.only_live > 0 || self.only_rebuilt > 0 || self.columns_differ.is_some()
    }
}

impl fmt::Display for TableDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} rows live {:>8}  rebuilt {:>8}  only live {:>6}  only rebuilt {:>6}  {}",
            self.table.name(),
            self.live_rows,
            self.rebuilt_rows,
            self.only_live,
            self.only_rebuilt,
            match (&self.columns_differ, self.differs(), self.float_noise) {
                (Some(why), _, _) => format!("DIFFERS ({why})"),
                (None, true, _) => "DIFFERS".to_string(),
                (None, false, true) => format!("same (floats to {FLOAT_DECIMALS} decimals)"),
                (None, false, false) => "same".to_string(),
            }
        )
    }
}

/// What a rebuild found.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    pub silver_files: usize,
    /// Silver files hard-linked into the scratch directory, and copied
    /// (when it is on another file system).
    pub linked: usize,
    pub copied: usize,
    pub gold_files: usize,
    pub tables: Vec<TableDiff>,
}

impl RebuildReport {
    pub fn differing_tables(&self) -> usize {
        self.tables.iter().filter(|t| t.differs()).count()
    }
}

/// Builds Gold from every Silver file of `data_dir` into `scratch` (which
/// is emptied first), then compares it with `data_dir`'s Gold. `progress`
/// gets (hours built, hours in all). The scratch directory is left in
/// place; the caller decides whether to keep it.
pub fn rebuild_and_compare(
    data_dir: &Path,
    scratch: &Path,
    config: &GoldConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<RebuildReport, PipelineError> {
    let silver = parquet_files(&data_dir.join(Table::Silver.root()));
    if silver.is_empty() {
        return Err(PipelineError::Refused(format!(
            "{} has no Silver files: there is nothing to rebuild Gold from",
            data_dir.join(Table::Silver.root()).display()
        )));
    }
    empty_dir(scratch)?;
    let (linked, copied) = mirror_silver(data_dir, scratch, &silver)?;
    let manifest = Manifest { version: 1, ..Manifest::default() };
    let (_, gold_files) = build(scratch, manifest, config, progress)?;
    let tables = GoldTable::ALL.iter().map(|t| compare(data_dir, scratch, *t)).collect::<PolarsResult<_>>()?;
    Ok(RebuildReport { silver_files: silver.len(), linked, copied, gold_files, tables })
}

/// Removes what a previous rebuild left, and makes the directory.
fn empty_dir(dir: &Path) -> Result<(), PipelineError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err(format!("emptying {}", dir.display()))(e));
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))
}

/// Places every Silver file at the same relative path under `scratch`:
/// a hard link where possible, else a copy. Returns (linked, copied).
fn mirror_silver(data_dir: &Path, scratch: &Path, files: &[PathBuf]) -> Result<(usize, usize), PipelineError> {
    let (mut linked, mut copied) = (0, 0);
    for file in files {
        let rel = file.strip_prefix(data_dir).map_err(|e| PipelineError::Task(format!("{}: {e}", file.display())))?;
        let to = scratch.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        }
        let vanished = |e: std::io::Error| {
            // Compaction swaps whole partitions while `serve` runs: a file
            // listed a moment ago may have moved under `_state/compact`.
            io_err(format!(
                "linking {} (is `clickstream serve` compacting? run again once it is stopped)",
                file.display()
            ))(e)
        };
        match std::fs::hard_link(file, &to) {
            Ok(()) => linked += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(vanished(e)),
            // Another file system (EXDEV), or one without hard links.
            Err(_) => {
                std::fs::copy(file, &to).map_err(vanished)?;
                copied += 1;
            }
        }
    }
    Ok((linked, copied))
}

/// One table of the live directory against the rebuild.
fn compare(live_dir: &Path, rebuilt_dir: &Path, table: GoldTable) -> PolarsResult<TableDiff> {
    let read = |dir: &Path| -> PolarsResult<Option<DataFrame>> {
        if has_files(dir, table) {
            scan(dir, table)?.collect().map(Some)
        } else {
            Ok(None)
        }
    };
    let (live, rebuilt) = (read(live_dir)?, read(rebuilt_dir)?);
    let rows = |df: &Option<DataFrame>| df.as_ref().map_or(0, DataFrame::height);
    let mut diff = TableDiff {
        table,
        live_rows: rows(&live),
        rebuilt_rows: rows(&rebuilt),
        only_live: 0,
        only_rebuilt: 0,
        float_noise: false,
        columns_differ: None,
        sample_live: None,
        sample_rebuilt: None,
    };
    let (live, rebuilt) = match (live, rebuilt) {
        (None, None) => return Ok(diff),
        (Some(l), None) => {
            diff.only_live = l.height();
            diff.sample_live = Some(l.head(Some(SAMPLE_ROWS)));
            return Ok(diff);
        }
        (None, Some(r)) => {
            diff.only_rebuilt = r.height();
            diff.sample_rebuilt = Some(r.head(Some(SAMPLE_ROWS)));
            return Ok(diff);
        }
        (Some(l), Some(r)) => (l, r),
    };
    if live.schema() != rebuilt.schema() {
        diff.columns_differ = Some(format!("live columns {:?}, rebuilt {:?}", live.schema(), rebuilt.schema()));
        return Ok(diff);
    }
    if sorted(&live)?.equals_missing(&sorted(&rebuilt)?) {
        return Ok(diff);
    }
    // Not identical: count the rows each side has that the other has not,
    // as multisets (a row twice on one side and once on the other is one
    // row only there), with floats rounded.
    let names: Vec<PlSmallStr> = live.get_column_names().into_iter().cloned().collect();
    let side = |df: DataFrame, live: i64| {
        rounded(df).with_columns([
            lit(live).cast(DataType::Int64).alias("__live"),
            lit(1 - live).cast(DataType::Int64).alias("__rebuilt"),
        ])
    };
    let counted = concat([side(live, 1), side(rebuilt, 0)], UnionArgs::default())?
        .group_by(names.iter().map(|n| col(n.clone())).collect::<Vec<_>>())
        .agg([col("__live").sum(), col("__rebuilt").sum()])
        .filter(col("__live").neq(col("__rebuilt")))
        .collect()?;
    let (l, r) = (counted.column("__live")?.i64()?, counted.column("__rebuilt")?.i64()?);
    for (l, r) in l.iter().zip(r.iter()) {
        let (l, r) = (l.unwrap_or(0), r.unwrap_or(0));
        diff.only_live += usize::try_from(l - r).unwrap_or(0);
        diff.only_rebuilt += usize::try_from(r - l).unwrap_or(0);
    }
    diff.float_noise = !diff.differs();
    let sample = |more: Expr| -> PolarsResult<Option<DataFrame>> {
        let rows = counted.clone().lazy().filter(more).limit(SAMPLE_ROWS as IdxSize).collect()?;
        Ok((rows.height() > 0).then_some(rows))
    };
    diff.sample_live = sample(col("__live").gt(col("__rebuilt")))?;
    diff.sample_rebuilt = sample(col("__rebuilt").gt(col("__live")))?;
    Ok(diff)
}

/// Rows sorted by every column, so equal tables compare equal.
fn sorted(df: &DataFrame) -> PolarsResult<DataFrame> {
    let names: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
    df.sort(names, SortMultipleOptions::default())
}

/// Float columns as integers of 10^-[`FLOAT_DECIMALS`], rounded half away
/// from zero (a cast alone truncates, and sums of prices land on either
/// side of a decimal: 179.70000000000002 and 179.69999999999999).
fn rounded(df: DataFrame) -> LazyFrame {
    let scale = 10f64.powi(FLOAT_DECIMALS);
    let floats: BTreeSet<PlSmallStr> =
        df.schema().iter().filter(|(_, dtype)| dtype.is_float()).map(|(name, _)| name.clone()).collect();
    let exprs: Vec<Expr> = df
        .get_column_names()
        .into_iter()
        .map(|name| {
            if floats.contains(name) {
                let scaled = col(name.clone()) * lit(scale);
                when(scaled.clone().gt_eq(lit(0.0)))
                    .then(scaled.clone() + lit(0.5))
                    .otherwise(scaled - lit(0.5))
                    .cast(DataType::Int64)
                    .alias(name.clone())
            } else {
                col(name.clone())
            }
        })
        .collect();
    df.lazy().select(exprs)
}

/// Where the rebuild goes unless told otherwise: inside the data
/// directory's state, on the same file system as Silver (so the Silver
/// files are hard links, not copies), where no reader of the tables looks.
pub fn default_scratch(data_dir: &Path) -> PathBuf {
    data_dir.join("_state").join("gold-rebuild")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_puts_both_sides_of_a_decimal_on_it() {
        let df = df!("x" => [59.9 * 3.0, 179.7 - 1e-12, -(0.1 + 0.2), 1.234_567_4]).unwrap();
        let got = rounded(df).collect().unwrap();
        let got: Vec<Option<i64>> = got.column("x").unwrap().i64().unwrap().iter().collect();
        assert_eq!(got, vec![Some(179_700_000), Some(179_700_000), Some(-300_000), Some(1_234_567)]);
    }
}
