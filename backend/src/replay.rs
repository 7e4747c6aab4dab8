//! `clickstream replay`: rebuild Silver and Gold from Bronze, for example
//! after a change to the Silver or Gold rules.
//!
//! Bronze files are replayed in arrival order, one file (one original
//! micro-batch) at a time, through the same Silver and Gold code as the
//! streaming aggregator, into `DATA_DIR/_replay/`. Each file ends in an
//! atomic commit of that directory, so an interrupted replay resumes after
//! the last file it committed. When every file is done, the rebuilt
//! `silver/` and `gold/` directories replace the live ones (one rename
//! each). Stop `serve`/`aggregate` first: replay takes the embedded log's
//! lock to make sure.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::aggregate::dedup::SeenEvents;
use crate::aggregate::micro_batch::write_partitioned;
use crate::aggregate::silver::{silver, IS_NEW, SILVER_COLUMNS};
use crate::aggregate::{AggregateConfig, StepReport};
use crate::gold::refresh::after_silver;
use crate::storage::layout::parquet_files;
use crate::storage::scan::scan_files;
use crate::storage::{Commit, Manifest, PipelineError, Table};

/// Where a replay builds, inside the data directory.
pub use crate::storage::layout::REPLAY_DIR as WORK_DIR;
const PROGRESS_KEY: &str = "replay_bronze_files";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub bronze_files: usize,
    /// Files already done by an earlier, interrupted run.
    pub resumed_after: usize,
    pub bronze_rows: usize,
    pub silver_rows: usize,
    pub duplicates: usize,
    pub gold_files: usize,
}

/// Called after each Bronze file with (files done, files in all).
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// Rebuilds Silver and Gold of `config.data_dir` from its Bronze.
pub fn replay(config: &AggregateConfig, progress: Progress<'_>) -> Result<ReplayReport, PipelineError> {
    let data_dir = config.data_dir.as_path();
    let work = data_dir.join(WORK_DIR);
    let (mut manifest, _) = Manifest::recover(&work)?;
    let files = parquet_files(&data_dir.join(Table::Bronze.root()));
    let done = manifest.offsets.get(PROGRESS_KEY).and_then(|v| v.first()).copied().unwrap_or(0) as usize;
    if done > files.len() {
        return Err(PipelineError::Task(format!(
            "{} says {done} Bronze files were replayed but Bronze has {}; delete it to start over",
            work.display(),
            files.len()
        )));
    }
    let mut report = ReplayReport { bronze_files: files.len(), resumed_after: done, ..ReplayReport::default() };
    // The replay's clock is the arrival time of what it replays, so ids are
    // forgotten after the same retention as when they streamed in.
    let mut seen = SeenEvents::load(&work, config.dedup_retention_ms, manifest.committed_at)?;
    progress(done, files.len());
    for (i, file) in files.iter().enumerate().skip(done) {
        let mut bronze = read_bronze(file)?;
        let clock = max_ms(&bronze, "ingested_at")?.unwrap_or(manifest.committed_at);
        let is_new = seen.mark_new(&work, &bronze, IS_NEW, clock)?;
        bronze.with_column(is_new)?;
        let mut fresh = silver(bronze.clone().lazy()).collect()?;

        let mut next = manifest.clone();
        let mut commit = Commit::new(&work, next.seq + 1);
        let mut step = StepReport::default();
        write_partitioned(&mut commit, Table::Silver, &mut fresh, "event_ts", "silver", &mut step)?;
        if let Some(gold) = &config.gold {
            report.gold_files += after_silver(&work, &mut commit, &mut next, &fresh, gold)?;
        }
        next.offsets.insert(PROGRESS_KEY.into(), vec![(i + 1) as u64]);
        next.totals.bronze_rows += bronze.height() as u64;
        next.totals.silver_rows += fresh.height() as u64;
        next.totals.duplicates += (bronze.height() - fresh.height()) as u64;
        manifest = commit.commit(next, clock)?;
        seen.prune(clock);

        report.bronze_rows += bronze.height();
        report.silver_rows += fresh.height();
        report.duplicates += bronze.height() - fresh.height();
        progress(i + 1, files.len());
    }
    manifest.gold_current = config.gold.is_some();
    manifest.gold_layout = crate::storage::GOLD_LAYOUT;
    swap_in(data_dir, &work, &manifest)?;
    Ok(report)
}

/// The Bronze columns Silver is made of, and the arrival clock: the raw
/// JSON and log coordinates are not read.
fn read_bronze(file: &Path) -> PolarsResult<DataFrame> {
    let columns: Vec<Expr> = SILVER_COLUMNS.iter().chain(["ingested_at"].iter()).map(|c| col(*c)).collect();
    let bronze = scan_files(&[file.to_path_buf()])?.expect("one file");
    bronze.select(columns).collect()
}

fn max_ms(df: &DataFrame, column: &str) -> PolarsResult<Option<i64>> {
    let c = df.column(column)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.max())
}

/// Replaces the live `silver/` and `gold/` with the rebuilt ones, and
/// carries the rebuilt watermark and totals into the live manifest. Safe
/// to run again after a crash halfway.
fn swap_in(data_dir: &Path, work: &Path, rebuilt: &Manifest) -> Result<(), PipelineError> {
    let old = data_dir.join("_replay_old");
    let io = |what: String| move |e: std::io::Error| PipelineError::Task(format!("{what}: {e}"));
    for sub in ["silver", "gold"] {
        let fresh = work.join(sub);
        let live = data_dir.join(sub);
        if !fresh.exists() {
            continue; // swapped already by an interrupted run
        }
        if live.exists() {
            std::fs::create_dir_all(&old).map_err(io(format!("creating {}", old.display())))?;
            let parked = unique_path(&old.join(sub));
            std::fs::rename(&live, &parked).map_err(io(format!("moving {} aside", live.display())))?;
        }
        std::fs::rename(&fresh, &live).map_err(io(format!("moving {} into place", fresh.display())))?;
    }
    let mut live = Manifest::load(data_dir)?;
    live.max_event_ts = rebuilt.max_event_ts;
    live.gold_current = rebuilt.gold_current;
    live.gold_layout = rebuilt.gold_layout;
    live.totals.silver_rows = rebuilt.totals.silver_rows;
    live.totals.duplicates = rebuilt.totals.duplicates;
    let seq = live.seq + 1;
    live.files.clear();
    Commit::new(data_dir, seq).commit(live, rebuilt.committed_at)?;
    let _ = std::fs::remove_dir_all(&old);
    let _ = std::fs::remove_dir_all(work);
    Ok(())
}

fn unique_path(p: &Path) -> PathBuf {
    let mut candidate = p.to_path_buf();
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{}.{n}", p.display()));
        n += 1;
    }
    candidate
}
