//! The refine path: the log into Bronze and Silver, Silver into every
//! Gold table, and the dashboard API over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use edge_worker::CollectConfig;

use super::{cpu_seconds, current_rss_mib, peak_rss_mib, reset_peak_rss};
use crate::aggregate::{AggregateConfig, Aggregator};
use crate::clock::{Clock, SystemClock};
use crate::fixtures::{browser_request, collect_into, fresh_dir, shop_day_in_silver, synthetic_batch};
use crate::metrics::Metrics;
use crate::serve::open_log;
use crate::storage::{Table, TableDir};

pub(super) async fn silver(events: u64, dir: PathBuf, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let stream = open_log(&dir, 4)?;
    let lake = data_dir.unwrap_or_else(|| dir.clone());
    if crate::storage::lake::is_remote(&lake) {
        anyhow::ensure!(
            crate::storage::layout::parquet_files(&lake).is_empty(),
            "{} already holds Parquet files: give the bench an empty prefix",
            lake.display()
        );
    }
    let config = CollectConfig::new("bench", "backend");
    let now = SystemClock.now_ms();
    let meta = browser_request(now);
    let fill = Instant::now();
    let per_batch = 500usize;
    let mut b = 0u64;
    let mut produced = 0u64;
    while produced < events {
        let n = per_batch.min((events - produced) as usize);
        let body = synthetic_batch(b, n, now);
        collect_into(&stream, &body, &meta, &config).await?;
        produced += n as u64;
        b += 1;
    }
    println!("bench silver: filled the log with {produced} events in {:.1} s", fill.elapsed().as_secs_f64());

    reset_peak_rss();
    let base_rss = current_rss_mib();
    let started = Instant::now();
    let cpu = cpu_seconds();
    // Bronze and Silver only: Gold has its own benchmark.
    let config = AggregateConfig { gold: None, ..AggregateConfig::new(&lake) };
    let mut agg = Aggregator::open(stream, config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    let report = agg.drain().await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.silver_rows as u64 == produced,
        "Silver has {} rows, expected {produced}",
        report.silver_rows
    );
    println!(
        "bench silver: {} events log → Bronze → Silver in {secs:.2} s: {:.0} events/s, {} files, peak RSS {} MiB (RSS before: {base_rss} MiB)",
        report.silver_rows,
        report.silver_rows as f64 / secs,
        report.files,
        peak_rss_mib()
    );
    println!("bench silver: phases: {}; CPU {:.2} s in {secs:.2} s", report.timings, cpu_seconds() - cpu);
    drop(agg);
    if !crate::storage::lake::is_remote(&lake) {
        let mib = |table: Table| {
            let files = crate::storage::layout::parquet_files(&lake.join(table.dir()));
            files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum::<u64>() as f64 / f64::from(1 << 20)
        };
        println!("bench silver: Bronze {:.1} MiB, Silver {:.1} MiB of Parquet", mib(Table::Bronze), mib(Table::Silver));
    }
    if crate::storage::lake::is_remote(&lake) {
        // Replay reads Bronze from a local disk only; clean the prefix up.
        let objects = crate::storage::lake::list(&lake)?;
        for object in &objects {
            crate::storage::lake::remove(object)?;
        }
        println!("bench silver: removed the {} objects written under {}", objects.len(), lake.display());
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    // The Bronze → Silver step on its own, as a rebuild from Bronze Parquet
    // does it: read Bronze, deduplicate, transform, write Silver.
    reset_peak_rss();
    // This is `clickstream replay` without Gold: one Bronze file at a time,
    // ids deduplicated across files.
    let started = Instant::now();
    let config = AggregateConfig { gold: None, ..AggregateConfig::new(&dir) };
    let rows = tokio::task::spawn_blocking(move || crate::replay::replay(&config, &mut |_, _| {})).await??.silver_rows;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(rows as u64 == produced, "rebuilt Silver has {rows} rows, expected {produced}");
    println!(
        "bench silver: {rows} events Bronze Parquet → Silver Parquet in {secs:.2} s: {:.0} events/s, peak RSS {} MiB",
        rows as f64 / secs,
        peak_rss_mib()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `bench gold --silver DIR`: Gold rebuilt from the Silver already in
/// `dir`, timed, and DuckDB's tables from the same Silver beside it (in a
/// scratch directory, not in `dir`).
pub(super) fn gold_from(dir: &Path, duckdb: Option<&Path>) -> anyhow::Result<()> {
    use crate::storage::{scan::scan_table, Table};
    anyhow::ensure!(
        crate::storage::scan::has_files(dir, Table::Silver),
        "{} has no Silver to build Gold from (silver/events/dt=*/hour=*/*.parquet)",
        dir.display()
    );
    let events = scan_table(dir, Table::Silver)?.select([polars::prelude::len()]).collect()?;
    let events = events.column("len")?.u32()?.get(0).unwrap_or(0);
    let out = std::env::temp_dir().join(format!("clickstream-bench-duckdb-{}", std::process::id()));
    fresh_dir(&out)?;
    let result = gold_and_duckdb(dir, u64::from(events), duckdb, &out);
    let _ = std::fs::remove_dir_all(&out);
    result
}

/// Every Gold table built from the whole of Silver (the build the
/// aggregator runs when Gold is missing), timed; then, given a Python with
/// DuckDB, the same tables by `scripts/gold_duckdb.py` into `out`, timed,
/// and checked row for row against the Polars ones.
fn gold_and_duckdb(dir: &Path, events: u64, duckdb: Option<&Path>, out: &Path) -> anyhow::Result<()> {
    use crate::gold::{refresh, GoldTable};
    use crate::storage::Manifest;

    reset_peak_rss();
    let started = Instant::now();
    let (_, files) = refresh::build(dir, Manifest::load(dir)?, &bench_gold_config(), &mut |_, _| {})?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let mut rows = 0;
    for table in GoldTable::ALL.into_iter().filter(|t| refresh::has_files(dir, *t)) {
        rows += refresh::scan(dir, table)?
            .select([polars::prelude::len()])
            .collect()?
            .column("len")?
            .u32()?
            .get(0)
            .unwrap_or(0);
    }
    println!(
        "bench gold: Silver → all {} Gold tables ({rows} rows, {files} files) for {events} events in {secs:.2} s: {:.0} events/s, peak RSS {peak} MiB",
        GoldTable::ALL.len(),
        events as f64 / secs,
    );

    if let Some(python) = duckdb {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/gold_duckdb.py");
        std::fs::create_dir_all(out)?;
        let goals = bench_gold_config().goals;
        let goals = serde_json::json!({"goals": &*goals.goals, "custom_event_props": &*goals.custom_event_props});
        let run = std::process::Command::new(python)
            .env("CLICKSTREAM_GOALS", goals.to_string())
            .env("CLICKSTREAM_DOWNLOAD_EXTENSIONS", crate::gold::links::DOWNLOAD_EXTENSIONS.join(","))
            .arg(script)
            .arg(dir)
            .arg(out)
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        anyhow::ensure!(run.status.success(), "DuckDB run failed: {}", String::from_utf8_lossy(&run.stderr));
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).context("DuckDB script output")?;
        let duck_secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "bench gold: DuckDB, same tables ({} rows) from the same Silver: {duck_secs:.2} s, peak RSS {} MiB; ratio Polars/DuckDB = {:.2}",
            v["rows"],
            v["peak_rss_mib"],
            secs / duck_secs
        );
        // The same rows, not only as many: DuckDB's tables against the
        // Polars Gold of this data dir, row for row (untimed; seconds).
        let check = std::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/gold_compare.py"))
            .arg(dir)
            .arg(out)
            .output()
            .with_context(|| format!("running {}", python.display()))?;
        for line in String::from_utf8_lossy(&check.stdout).lines() {
            println!("bench gold: DuckDB vs Polars: {line}");
        }
        anyhow::ensure!(
            check.status.success(),
            "DuckDB's tables differ from Polars' {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }

    Ok(())
}

pub(super) async fn gold(
    events: u64,
    increment: u64,
    duckdb: Option<PathBuf>,
    dir: PathBuf,
    keep: bool,
) -> anyhow::Result<()> {
    let fill = Instant::now();
    let (stream, now, day) = shop_day_in_silver(&dir, events, events + 1 + increment).await?;
    println!("bench gold: {events} events in Silver after {:.1} s", fill.elapsed().as_secs_f64());
    gold_and_duckdb(&dir, events, duckdb.as_deref(), &dir.join("gold-duckdb"))?;

    // One incremental micro-batch on top of that history: the aggregator
    // with Gold on (Gold is current, so it does not build again), after a
    // first small step that warms it up.
    let config = AggregateConfig {
        max_records_per_partition: increment as usize,
        gold: Some(bench_gold_config()),
        ..AggregateConfig::new(&dir)
    };
    let mut agg = Aggregator::open(stream.clone(), config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    day.fill(&stream, events, 1, now).await?;
    agg.drain().await?;
    day.fill(&stream, events + 1, increment, now).await?;
    reset_peak_rss();
    let started = Instant::now();
    let report = agg.drain().await?;
    println!(
        "bench gold: incremental micro-batch of {} events on a {events}-event history: {:.2} s ({} Gold files; {}), peak RSS {} MiB",
        report.silver_rows,
        started.elapsed().as_secs_f64(),
        report.gold_files,
        report.timings,
        peak_rss_mib()
    );
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// A day of shop traffic through the aggregator (Gold off) in micro-batches
/// of `batch` records per partition, then one compaction of everything,
/// as a day later: files, bytes, time, peak memory, and the row counts
/// before and after (which must agree).
pub(super) async fn compact(events: u64, batch: usize, dir: PathBuf) -> anyhow::Result<()> {
    use crate::storage::compact::{compact, Finality};
    use crate::storage::{Manifest, Table};

    let stream = open_log(&dir, 4)?;
    let now = SystemClock.now_ms();
    let day = crate::fixtures::ShopDay::ending_at(now, events);
    day.fill(&stream, 0, events, now).await?;
    let config = AggregateConfig { gold: None, max_records_per_partition: batch, ..AggregateConfig::new(&dir) };
    let mut agg = Aggregator::open(stream, config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    agg.drain().await?;
    let commits = agg.manifest().seq;
    drop(agg);
    let rows_of = |table: Table| -> anyhow::Result<u64> {
        let df = crate::storage::scan::scan_table(&dir, table)?.select([polars::prelude::len()]).collect()?;
        Ok(df.column("len")?.cast(&polars::prelude::DataType::UInt64)?.u64()?.get(0).unwrap_or(0))
    };
    let before = (rows_of(Table::Bronze)?, rows_of(Table::Silver)?);
    let mut manifest = Manifest::load(&dir)?;
    let day_ms = 24 * 3_600_000;
    let finality = Finality { now_ms: now + 2 * day_ms, watermark_ms: Some(now + day_ms) };
    reset_peak_rss();
    let report = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || compact(&dir, &mut manifest, finality, &mut |_, _| {})
    })
    .await??;
    let after = (rows_of(Table::Bronze)?, rows_of(Table::Silver)?);
    anyhow::ensure!(before == after, "compaction changed the row counts: {before:?} → {after:?}");
    println!(
        "bench compact: {events} events in {commits} micro-batches ({batch} records per partition), compacted {report} ({:.0} rows/s), peak RSS {} MiB; Bronze {} and Silver {} rows before and after",
        report.rows as f64 / report.seconds,
        peak_rss_mib(),
        after.0,
        after.1,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every dashboard endpoint, each range, `rounds` times through the router
/// (handler, Polars and JSON; no socket): median and p95 per endpoint.
pub(super) async fn api(events: u64, rounds: usize, dir: PathBuf) -> anyhow::Result<()> {
    use axum::body::{to_bytes, Body};
    use tower::ServiceExt;

    use crate::gold::refresh;
    use crate::server::{app, AppState};
    use crate::storage::Manifest;

    let fill = Instant::now();
    let (stream, _, _) = shop_day_in_silver(&dir, events, events).await?;
    println!("bench api: {events} events in Silver after {:.1} s", fill.elapsed().as_secs_f64());
    let started = Instant::now();
    refresh::build(&dir, Manifest::load(&dir)?, &bench_gold_config(), &mut |_, _| {})?;
    println!("bench api: Gold built in {:.1} s", started.elapsed().as_secs_f64());
    let mut state =
        AppState::new(stream, CollectConfig::new("bench", "backend"), Arc::new(Metrics::new()), Arc::new(SystemClock));
    state.data_dir = Some(dir.clone());
    state.access = crate::server::Access::Open;
    let router = app(Arc::new(state));
    let paths = [
        "/api/summary",
        "/api/traffic",
        "/api/revenue",
        "/api/top_pages",
        "/api/funnel",
        "/api/sessions/breakdown?by=source",
        "/api/pages",
        "/api/sources",
        "/api/retention",
        "/api/retention?period=day",
        "/api/next_pages",
        "/api/goals",
        "/api/custom_events",
        "/api/links",
        "/api/engagement",
        "/api/bots",
        "/api/rejects",
    ];
    let mut all = Vec::new();
    for range in ["1h", "24h", "7d"] {
        for path in paths {
            let uri = format!("{path}{}range={range}", if path.contains('?') { '&' } else { '?' });
            let mut ms = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                let response = router.clone().oneshot(axum::http::Request::get(&uri).body(Body::empty())?).await?;
                anyhow::ensure!(response.status().is_success(), "{uri}: {}", response.status());
                to_bytes(response.into_body(), usize::MAX).await?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            let (median, p95) = (ms[ms.len() / 2], ms[(ms.len() * 95).div_ceil(100) - 1]);
            println!("bench api: {uri:<46} median {median:7.1} ms  p95 {p95:7.1} ms");
            all.extend(ms);
        }
    }
    all.sort_by(f64::total_cmp);
    println!(
        "bench api: all {} requests over {events} events: median {:.1} ms, p95 {:.1} ms; a dashboard refresh asks each of these once, and two more breakdowns (country, device)",
        all.len(),
        all[all.len() / 2],
        all[(all.len() * 95).div_ceil(100) - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The Gold rules the benchmarks build with: the defaults, and the demo
/// shop's goals, so that goals_1h and custom_events_1h cost what they do
/// for a site that defines some.
fn bench_gold_config() -> crate::gold::GoldConfig {
    crate::gold::GoldConfig { goals: crate::gold::goals::shop_goals(), ..Default::default() }
}
