//! `clickstream bench`: throughput and peak memory of the pipeline's hot
//! paths, on this machine, printed as events/s and peak RSS.
//!
//! - `ingest.rs`, the write path: `ingest` (batches POSTed over HTTP by
//!   concurrent senders into the embedded log with durable
//!   acknowledgements, group commit) and `stream` (produce and consume).
//! - `tables.rs`, the refine path: `silver` (the aggregator draining the
//!   log into Bronze and Silver Parquet), `gold` (Silver into every Gold
//!   table) and `api` (the dashboard's endpoints over them).
//!
//! Their synthetic traffic is in [`crate::fixtures`], shared with tests.

mod ingest;
mod tables;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::fixtures::fresh_dir;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Clone, Debug)]
pub enum BenchWhat {
    /// Events/s accepted over HTTP into the embedded log, durable acks.
    Ingest {
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        /// Concurrent HTTP senders.
        #[arg(long, default_value_t = 8)]
        senders: usize,
        /// Events per batch.
        #[arg(long, default_value_t = 50)]
        batch: usize,
        /// Scratch directory (default: a new one under the system temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Events/s and peak memory of log → Bronze → Silver.
    Silver {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Write Bronze and Silver to this data directory instead, e.g.
        /// `s3://bucket/prefix` (the log stays in the scratch directory).
        /// Its tables are removed at the end.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Silver → every Gold table over a day of shop traffic, then one
    /// incremental micro-batch on top of that history.
    Gold {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events in the incremental micro-batch.
        #[arg(long, default_value_t = 10_000)]
        increment: u64,
        /// A Python with the duckdb package: also time DuckDB computing the
        /// same tables from the same Silver (scripts/gold_duckdb.py).
        #[arg(long)]
        duckdb: Option<PathBuf>,
        /// Build Gold from the Silver already in this data directory (your
        /// own data, or a bench fixture kept from before) instead of a new
        /// day of traffic; the directory's Gold is rebuilt, its Silver
        /// left as it is, and no micro-batch follows.
        #[arg(long, conflicts_with_all = ["events", "increment", "dir"])]
        silver: Option<PathBuf>,
        /// Where the day of traffic goes; kept afterwards (default: a new
        /// scratch directory, removed).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Produce and consume events/s of the stream: the embedded log, or
    /// Fluvio with --fluvio-sc (topics of the run's own, left behind).
    Stream {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 4)]
        partitions: u32,
        /// Concurrent producers, each sending batches of --batch records
        /// and waiting for their acknowledgement, as ingest requests do.
        #[arg(long, default_value_t = 4)]
        producers: usize,
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Bench a Fluvio cluster at HOST:PORT instead of the embedded log.
        #[arg(long, env = "FLUVIO_SC_ADDR")]
        fluvio_sc: Option<String>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Compaction of a day of shop traffic written in small micro-batches:
    /// files before and after, and the time it takes.
    Compact {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Records per partition in each micro-batch (4 partitions).
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Response times of every dashboard API endpoint, for each range, over
    /// the Gold tables of a day of shop traffic.
    Api {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Requests per endpoint and range.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchWhat::Ingest { events, senders, batch, dir } => {
            ingest::ingest(events, senders, batch, scratch(dir)?).await
        }
        BenchWhat::Silver { events, dir, data_dir } => tables::silver(events, scratch(dir)?, data_dir).await,
        BenchWhat::Gold { silver: Some(data_dir), duckdb, .. } => tables::gold_from(&data_dir, duckdb.as_deref()),
        BenchWhat::Gold { events, increment, duckdb, dir, silver: None } => {
            // A directory named with --dir is kept, for `--silver` later.
            let keep = dir.is_some();
            tables::gold(events, increment, duckdb, scratch(dir)?, keep).await
        }
        BenchWhat::Api { events, rounds, dir } => tables::api(events, rounds, scratch(dir)?).await,
        BenchWhat::Compact { events, batch, dir } => tables::compact(events, batch, scratch(dir)?).await,
        BenchWhat::Stream { events, partitions, producers, batch, fluvio_sc, dir } => {
            ingest::stream(
                ingest::StreamBench { events, partitions, producers, batch: batch.max(1), fluvio_sc },
                scratch(dir)?,
            )
            .await
        }
    }
}

fn scratch(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("clickstream-bench-{}", std::process::id())));
    fresh_dir(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    Ok(dir)
}

/// Resets the kernel's peak-RSS mark of this process (Linux), so the peak
/// reported covers only the measured phase.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn peak_rss_mib() -> u64 {
    status_kib("VmHWM:") / 1024
}

/// Bytes the block device holding `path` has written so far: sectors
/// written in /proc/diskstats, times 512. That is what reached the disk,
/// the file system's journal included, whoever wrote it (so measure on a
/// quiet machine). The process's own `write_bytes` (/proc/self/io) was used
/// before: it counts each page a write dirties, again at every rewrite of
/// the same page, and not the journal, so for small synced writes into a
/// pre-written file it said 3 KB per event where the disk took 228 bytes.
/// `None` where the device is not found (tmpfs, overlay).
fn device_bytes_written(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    // Linux's encoding of a device number (glibc's gnu_dev_major/minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        (number(0)? == major && number(1)? == minor).then_some(number(9)? * 512)
    })
}

/// CPU time this process has used so far, user and system, in seconds:
/// with the wall time it says how busy the cores were (idle cores are
/// work a pipeline could overlap). From /proc/self/stat, whose ticks are
/// USER_HZ, 100 on Linux.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

fn current_rss_mib() -> u64 {
    status_kib("VmRSS:") / 1024
}
