//! Compaction: each micro-batch writes a small file into every partition it
//! touches, so a day of traffic leaves thousands. Once a partition can no
//! longer change, its files are merged into one.
//!
//! A partition is final when nothing new is expected in it: for Bronze and
//! rejects (partitioned by arrival) an hour after its period ended; for
//! Silver (partitioned by event time) once the watermark has passed its
//! hour. A very late event may still add a small file to a compacted
//! partition; the next round merges it in.
//!
//! Readers must never see a partition twice or not at all, and they list
//! directories, not a manifest. So the merged file is written into a
//! staging directory outside every table (`_state/compact/`), and the
//! staging directory and the partition directory are swapped in one atomic
//! `renameat2(RENAME_EXCHANGE)`: a reader lists either all the old files or
//! the one new file. A query that listed the old files just before the swap
//! finds them gone from their paths and fails ("No such file"); run again,
//! it reads the merged file, and the query and API paths do run it again
//! ([`super::scan::retry_on_swap`]). (Snapshot isolation for such a query would
//! need readers to go through a table log, as Delta Lake's do.) The old
//! files, now in the staging directory, are kept for a grace period
//! ([`RETIRED_GRACE_MS`]) as a safety copy, then deleted by a later round.
//! A crash leaves at most a staging directory, with either the merged
//! file (before the swap) or the old files (after it); both are redundant
//! and [`recover`] removes them.
//!
//! Compaction must not race a writer of the same partition: the aggregator
//! runs it between micro-batches, and `clickstream compact` claims every
//! partition first. It first settles the manifest (the last commit's files
//! are all published, so recovery need not find them where they were), and
//! it is for the data directory of one aggregator only: partition
//! consumers' file names are what the Gold role follows.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::error::{io_err, PipelineError};
use super::layout::{parquet_files, Table, TableDir, REPLAY_DIR};
use super::retention::day_partitions;
use super::scan::scan_files;
use super::{Manifest, Role};

/// Where partitions are staged and retired, relative to the data directory.
const STAGING: &str = "_state/compact";

/// How long swapped-out (and expired) files stay readable.
pub const RETIRED_GRACE_MS: i64 = 10 * 60_000;

/// How long after its period an arrival-time partition (Bronze, rejects)
/// counts as final: the edge's clock and a short backlog may still add to it.
const ARRIVAL_SETTLE_MS: i64 = 60 * 60_000;

/// What a compaction round did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactReport {
    /// Partitions merged (each into one file).
    pub partitions: usize,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
    /// Partitions with several files left for a later round: not final yet
    /// (or Bronze while a replay counts its files).
    pub skipped: usize,
    /// Directories of swapped-out files deleted after their grace period.
    pub retired_removed: usize,
    pub seconds: f64,
}

/// `26 partitions: 536 files → 26, 39.6 MB → 26.7 MB, 1000000 rows, in 5.9 s`
impl std::fmt::Display for CompactReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} partitions: {} files → {}, {:.1} MB → {:.1} MB, {} rows, in {:.1} s",
            self.partitions,
            self.files_before,
            self.files_after,
            self.bytes_before as f64 / 1e6,
            self.bytes_after as f64 / 1e6,
            self.rows,
            self.seconds
        )
    }
}

impl CompactReport {
    fn add(&mut self, other: &CompactReport) {
        self.partitions += other.partitions;
        self.files_before += other.files_before;
        self.files_after += other.files_after;
        self.bytes_before += other.bytes_before;
        self.bytes_after += other.bytes_after;
        self.rows += other.rows;
        self.skipped += other.skipped;
    }
}

/// When the partitions of each table are final.
#[derive(Clone, Copy, Debug)]
pub struct Finality {
    /// The clock, for arrival-time partitions.
    pub now_ms: i64,
    /// Silver's watermark (latest event time less the allowed lateness);
    /// `None` before any event, when no Silver hour is final.
    pub watermark_ms: Option<i64>,
}

impl Finality {
    fn is_final(&self, table: Table, partition_start: i64) -> bool {
        let end = match table {
            Table::Rejects => partition_start + 24 * HOUR_MS,
            _ => partition_start + HOUR_MS,
        };
        match table {
            Table::Silver => self.watermark_ms.is_some_and(|w| end <= w),
            _ => end + ARRIVAL_SETTLE_MS <= self.now_ms,
        }
    }
}

/// Merges every final partition of Bronze, Silver and rejects that has
/// more than one file into one. `progress` is called with (partitions done,
/// partitions to do).
pub fn compact(
    data_dir: &Path,
    manifest: &mut Manifest,
    finality: Finality,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<CompactReport, PipelineError> {
    let started = Instant::now();
    manifest.settle(data_dir, &Role::Whole)?;
    let mut report =
        CompactReport { retired_removed: remove_retired(data_dir, finality.now_ms)?, ..Default::default() };

    // A replay in progress counts the Bronze files it has done.
    let replaying = data_dir.join(REPLAY_DIR).exists();
    let mut todo = Vec::new();
    for table in [Table::Bronze, Table::Silver, Table::Rejects] {
        for (dir, start) in partitions(data_dir, table) {
            let files = parquet_files(&dir);
            if files.len() < 2 {
                continue;
            }
            if !finality.is_final(table, start) || (replaying && table == Table::Bronze) {
                report.skipped += 1;
                continue;
            }
            todo.push((table, dir, files));
        }
    }
    progress(0, todo.len());
    for (i, (table, dir, files)) in todo.iter().enumerate() {
        let done = compact_partition(data_dir, *table, dir, files, finality.now_ms)?;
        report.add(&done);
        progress(i + 1, todo.len());
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Removes staging directories a crash left behind: each holds either a
/// merged file that was never swapped in, or old files already replaced.
pub fn recover(data_dir: &Path) -> Result<usize, PipelineError> {
    let root = data_dir.join(STAGING);
    let Ok(entries) = fs::read_dir(&root) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("staging-") {
            fs::remove_dir_all(entry.path()).map_err(io_err(format!("removing {}", entry.path().display())))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The partition directories of a table, with the start of each one's
/// period (ms).
fn partitions(data_dir: &Path, table: Table) -> Vec<(PathBuf, i64)> {
    let mut out = Vec::new();
    for (day, day_ms) in day_partitions(&data_dir.join(table.dir())) {
        if table == Table::Rejects {
            out.push((day, day_ms));
            continue;
        }
        let Ok(hours) = fs::read_dir(&day) else { continue };
        for hour in hours.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            let h = hour.file_name().and_then(|n| n.to_str()?.strip_prefix("hour=")?.parse::<i64>().ok());
            if let Some(h) = h {
                out.push((hour, day_ms + h * HOUR_MS));
            }
        }
    }
    out.sort();
    out
}

/// Moves a directory out of its table into `_state/compact/retired-*`, in
/// one rename; [`compact`] deletes it after the grace period.
pub(super) fn retire(data_dir: &Path, dir: &Path, now_ms: i64) -> Result<(), PipelineError> {
    let root = data_dir.join(STAGING);
    fs::create_dir_all(&root).map_err(io_err(format!("creating {}", root.display())))?;
    let retired = root.join(format!("retired-{now_ms}-{}", uuid::Uuid::new_v4().simple()));
    fs::rename(dir, &retired).map_err(io_err(format!("retiring {}", dir.display())))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn compact_partition(
    data_dir: &Path,
    table: Table,
    dir: &Path,
    files: &[PathBuf],
    now_ms: i64,
) -> Result<CompactReport, PipelineError> {
    let bytes_before = files.iter().map(|f| fs::metadata(f).map_or(0, |m| m.len())).sum();
    let Some(scan) = scan_files(files)? else { return Ok(CompactReport::default()) };
    // Files in commit order; Silver also sorted by event time, as each of
    // its files is, so row-group statistics keep pruning time filters.
    let df = match table {
        Table::Silver => scan.sort(["event_ts"], SortMultipleOptions::default().with_maintain_order(true)),
        _ => scan,
    }
    .collect()?;

    // Named like the newest file it replaces, so file names keep sorting in
    // commit order and a later commit's files sort after it.
    let newest = files.iter().filter_map(|f| f.file_name()?.to_str()).max().unwrap_or("part-compacted.parquet");
    let name = match newest.strip_suffix(".parquet") {
        Some(stem) if !stem.ends_with("-compacted") => format!("{stem}-compacted.parquet"),
        _ => newest.to_string(),
    };
    let staging = data_dir.join(STAGING).join(format!("staging-{now_ms}-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir_all(&staging).map_err(io_err(format!("creating {}", staging.display())))?;
    let merged = staging.join(&name);
    let file = File::create(&merged).map_err(io_err(format!("creating {}", merged.display())))?;
    let (file, written) = super::commit::write_buffered(file, |out| super::parquet::write_table(out, &df))
        .map_err(io_err(format!("writing {}", merged.display())))?;
    written.map_err(|source| PipelineError::Parquet { path: merged.display().to_string(), source })?;
    file.sync_all().map_err(io_err(format!("syncing {}", merged.display())))?;
    let bytes_after = file.metadata().map_or(0, |m| m.len());
    sync_dir(&staging)?;

    exchange(&staging, dir)?;
    sync_dir(dir.parent().unwrap_or(dir))?;
    // The staging directory now holds the old files.
    retire(data_dir, &staging, now_ms)?;
    Ok(CompactReport {
        partitions: 1,
        files_before: files.len(),
        files_after: 1,
        bytes_before,
        bytes_after,
        rows: df.height() as u64,
        ..Default::default()
    })
}

/// Swaps two directories in one step (Linux `renameat2` with
/// `RENAME_EXCHANGE`: ext4, xfs, btrfs, tmpfs). There is no fallback: two
/// plain renames would let a reader miss the partition, and a crash between
/// them would leave it nowhere a recovery could tell.
fn exchange(a: &Path, b: &Path) -> Result<(), PipelineError> {
    use nix::fcntl::{renameat2, RenameFlags};
    renameat2(None, a, None, b, RenameFlags::RENAME_EXCHANGE).map_err(|errno| PipelineError::Io {
        context: format!(
            "swapping {} with its compacted copy (compaction needs a Linux file system that swaps directories \
             atomically; set maintenance_every_minutes = 0 to turn it off)",
            b.display()
        ),
        source: std::io::Error::from(errno),
    })
}

/// Deletes every retired directory now, whatever its age (`forget`: a
/// person's rows must not outlive the request in a safety copy). Returns
/// how many went.
pub fn remove_all_retired(data_dir: &Path) -> Result<usize, PipelineError> {
    remove_retired(data_dir, i64::MAX - RETIRED_GRACE_MS)
}

/// Deletes retired directories older than the grace period.
fn remove_retired(data_dir: &Path, now_ms: i64) -> Result<usize, PipelineError> {
    let root = data_dir.join(STAGING);
    let Ok(entries) = fs::read_dir(&root) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(at) = name.strip_prefix("retired-").and_then(|r| r.split('-').next()?.parse::<i64>().ok()) else {
            continue;
        };
        if at + RETIRED_GRACE_MS <= now_ms {
            fs::remove_dir_all(entry.path()).map_err(io_err(format!("removing {}", entry.path().display())))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(format!("syncing directory {}", dir.display())))
}
