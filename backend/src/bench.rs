//! `clickstream bench`: throughput and peak memory of the pipeline's two
//! hot paths, on this machine, printed as events/s and peak RSS.
//!
//! - `ingest`: batches POSTed over HTTP by concurrent senders into the
//!   embedded log with durable acknowledgements (group commit).
//! - `silver`: the aggregator draining events from the log into Bronze
//!   and Silver Parquet (decode, Polars transforms, write, atomic commit).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use clickstream_schema::RequestMeta;
use edge_worker::{collect, CollectConfig};
use tokio::sync::{oneshot, watch};

use crate::aggregate::{AggregateConfig, Aggregator};
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::serve::{open_log, serve, ServeSettings};
use crate::stream::{Record, Topic};

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
        BenchWhat::Ingest { events, senders, batch, dir } => ingest(events, senders, batch, scratch(dir)?).await,
        BenchWhat::Silver { events, dir } => silver(events, scratch(dir)?).await,
        BenchWhat::Gold { events, increment, duckdb, dir } => gold(events, increment, duckdb, scratch(dir)?).await,
        BenchWhat::Api { events, rounds, dir } => api(events, rounds, scratch(dir)?).await,
        BenchWhat::Stream { events, partitions, producers, batch, fluvio_sc, dir } => {
            stream(StreamBench { events, partitions, producers, batch: batch.max(1), fluvio_sc }, scratch(dir)?).await
        }
    }
}

fn scratch(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("clickstream-bench-{}", std::process::id())));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A realistic batch body of `n` events of one visitor.
pub fn synthetic_batch(batch_no: u64, n: usize, now: i64) -> String {
    let visitor = batch_no % 10_000;
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let product = (batch_no * 7 + i as u64) % 48;
        let event = match i % 5 {
            0 | 1 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"page_view","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/p/{product}?utm_source=newsletter&utm_medium=email","path":"/p/{product}","referrer":"https://www.google.com/","title":"Product {product}"}},"props":{{"product_id":"p-{product}","category":"shoes"}},"context":{{"screen":"1920x1080","lang":"en-US","tz":"Europe/Berlin"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            2 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"click","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/c/shoes","path":"/c/shoes"}},"props":{{"tag":"a","text":"Running shoe","href":"/p/{product}"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            3 => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"add_to_cart","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/p/{product}","path":"/p/{product}"}},"props":{{"product_id":"p-{product}","category":"shoes","price":59.9,"quantity":1,"currency":"EUR"}}}}"#,
                ts = now - 1000 + i as i64
            ),
            _ => format!(
                r#"{{"event_id":"b{batch_no}-{i}","event_type":"search","ts":{ts},"anonymous_id":"a-{visitor}","session_id":"s-{visitor}","page":{{"url":"https://shop.example/search?q=red","path":"/search"}},"props":{{"query":"red shoes"}}}}"#,
                ts = now - 1000 + i as i64
            ),
        };
        events.push(event);
    }
    format!(r#"{{"v":1,"site_id":"shop-1","sent_at":{now},"events":[{}]}}"#, events.join(","))
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

async fn ingest(events: u64, senders: usize, batch: usize, dir: PathBuf) -> anyhow::Result<()> {
    let mut settings = ServeSettings::new(&dir);
    settings.port = 0;
    settings.aggregate = None;
    // One client sending as fast as it can: the limits would be the bench.
    settings.guard = crate::server::CollectGuard::unlimited();
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(serve(settings, stop_rx, Some(ready_tx)));
    let addr = ready_rx.await.context("server did not start")?;
    let url = format!("http://{addr}/v1/batch");
    let batches = events.div_ceil(batch as u64);
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let now = SystemClock.now_ms();
    reset_peak_rss();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (next, accepted, url) = (next.clone(), accepted.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = synthetic_batch(b, batch, now);
                let resp = client.post(&url).header("user-agent", CHROME).body(body).send().await?;
                anyhow::ensure!(resp.status().is_success(), "batch refused: {}", resp.status());
                let r: serde_json::Value = resp.json().await?;
                accepted.fetch_add(r["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let total = accepted.load(Ordering::Relaxed);
    println!(
        "bench ingest: {total} events in {batches} batches of {batch} from {senders} senders, durable acks: {secs:.2} s, {:.0} events/s, {:.0} requests/s, peak RSS {} MiB (server and senders in one process)",
        total as f64 / secs,
        batches as f64 / secs,
        peak_rss_mib()
    );
    let _ = stop_tx.send(true);
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

struct StreamBench {
    events: u64,
    partitions: u32,
    producers: usize,
    batch: usize,
    fluvio_sc: Option<String>,
}

/// Produce (acknowledged batches, concurrent producers), then consume
/// (every partition from offset 0, in fetches of 10,000) the same records.
async fn stream(b: StreamBench, dir: PathBuf) -> anyhow::Result<()> {
    use crate::stream::{EventStream, FluvioSettings, FluvioStream};
    let (stream, what): (Arc<dyn EventStream>, String) = match &b.fluvio_sc {
        Some(sc) => {
            let mut settings = FluvioSettings::new(sc.clone());
            settings.partitions = b.partitions;
            settings.topic_prefix = format!("bench-{}-", SystemClock.now_ms());
            let what = format!("fluvio at {sc}, topics {}*", settings.topic_prefix);
            (Arc::new(FluvioStream::connect(settings).await?), what)
        }
        None => (open_log(&dir, b.partitions)?, "embedded log".into()),
    };
    let partitions = stream.partitions(Topic::Events);
    // Enriched events as the ingest writes them, 16 visitors' batches cycled.
    let now = SystemClock.now_ms();
    let config = CollectConfig::new("bench", "backend");
    let meta = RequestMeta { received_at: now, user_agent: Some(CHROME.into()), ..RequestMeta::default() };
    let mut templates = Vec::new();
    for v in 0..16 {
        let body = synthetic_batch(v, b.batch, now);
        let out = collect(body.as_bytes(), &meta, &config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let records: Vec<Record> = out
            .accepted
            .iter()
            .map(|e| Record { topic: Topic::Events, key: e.anonymous_id.as_bytes().to_vec(), value: serde_json::to_vec(e).unwrap_or_default() })
            .collect();
        templates.push(records);
    }
    let bytes: usize = templates[0].iter().map(|r| r.value.len()).sum::<usize>() / b.batch;
    let templates = Arc::new(templates);
    let batches = b.events.div_ceil(b.batch as u64);
    let next = Arc::new(AtomicU64::new(0));
    reset_peak_rss();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..b.producers.max(1) {
        let (stream, next, templates) = (stream.clone(), next.clone(), templates.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= batches {
                    return Ok::<_, anyhow::Error>(());
                }
                stream.produce(templates[(n % 16) as usize].clone()).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let produced = batches * b.batch as u64;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench stream ({what}, {partitions} partitions): produced {produced} events of {bytes} B in batches of {} from {} producers, acknowledged: {secs:.2} s, {:.0} events/s, {:.1} MB/s",
        b.batch,
        b.producers,
        produced as f64 / secs,
        (produced as f64 * bytes as f64) / secs / 1e6,
    );
    let started = Instant::now();
    let mut consumed = 0u64;
    for p in 0..partitions {
        let mut from = 0;
        loop {
            let got = stream.fetch(Topic::Events, p, from, 10_000).await?;
            let Some(last) = got.last() else { break };
            from = last.offset + 1;
            consumed += got.len() as u64;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(consumed == produced, "consumed {consumed} records, produced {produced}");
    println!(
        "bench stream ({what}, {partitions} partitions): consumed {consumed} events in {secs:.2} s, {:.0} events/s; peak RSS {} MiB",
        consumed as f64 / secs,
        peak_rss_mib()
    );
    drop(stream);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn silver(events: u64, dir: PathBuf) -> anyhow::Result<()> {
    let stream = open_log(&dir, 4)?;
    let config = CollectConfig::new("bench", "backend");
    let now = SystemClock.now_ms();
    let meta = RequestMeta { received_at: now, user_agent: Some(CHROME.into()), ip: Some("203.0.113.9".into()), country: Some("DE".into()), ..RequestMeta::default() };
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
    // Bronze and Silver only: Gold has its own benchmark.
    let config = AggregateConfig { gold: None, ..AggregateConfig::new(&dir) };
    let mut agg = Aggregator::open(stream, config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    let report = agg.drain().await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(report.silver_rows as u64 == produced, "Silver has {} rows, expected {produced}", report.silver_rows);
    println!(
        "bench silver: {} events log → Bronze → Silver in {secs:.2} s: {:.0} events/s, {} files, peak RSS {} MiB (RSS before: {base_rss} MiB)",
        report.silver_rows,
        report.silver_rows as f64 / secs,
        report.files,
        peak_rss_mib()
    );
    println!("bench silver: phases: {}", report.timings);

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

/// Runs a batch body through the collect core, as the server would, and
/// produces its events to the log. Synthetic batches must be all valid.
async fn collect_into(
    stream: &Arc<dyn crate::stream::EventStream>,
    body: &str,
    meta: &RequestMeta,
    config: &CollectConfig,
) -> anyhow::Result<()> {
    let out = collect(body.as_bytes(), meta, config).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(out.bad_rows.is_empty(), "synthetic events were rejected: {:?}", out.bad_rows.first());
    let records = out
        .accepted
        .iter()
        .map(|e| Record { topic: Topic::Events, key: e.anonymous_id.as_bytes().to_vec(), value: serde_json::to_vec(e).unwrap_or_default() })
        .collect();
    stream.produce(records).await?;
    Ok(())
}

/// One batch of a day of shop traffic: event `k` (of `total`) happens at
/// `start + k * spacing`, by one of 20,000 visitors, with product views,
/// carts, checkouts and purchases in shop-like proportions.
/// Events `first..first + n` of a day of shop traffic: visits of 20
/// events about 30 s apart (ten minutes on the site), as many under way at
/// once as the event rate needs, by visitors who come back about three
/// times a day. Each visit walks the same path: page views, clicks, cart
/// adds, a checkout, a purchase, searches.
fn shop_batch(first: u64, n: usize, sent_at: i64, start: i64, spacing: f64, total: u64) -> String {
    const VISIT: u64 = 20;
    let concurrent = ((30_000.0 / spacing).round() as u64).max(1);
    let visitors = (total / (3 * VISIT)).max(1);
    let mut events = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let k = first + i;
        let ts = start + (k as f64 * spacing) as i64;
        let (slot, round) = (k % concurrent, k / concurrent);
        let visit = slot + concurrent * (round / VISIT);
        let visitor = (visit * 7919) % visitors;
        let product = (visit * 31) % 200;
        let head = format!(r#""event_id":"g{k}","ts":{ts},"anonymous_id":"v{visitor}","session_id":"s{visit}""#);
        let page = format!(r#""page":{{"url":"https://shop.example/p/{product}?utm_source=search","path":"/p/{product}"}}"#);
        let event = match round % VISIT {
            0..=9 => format!(r#"{{{head},"event_type":"page_view",{page},"props":{{"product_id":"p{product}"}}}}"#),
            10..=12 => format!(r#"{{{head},"event_type":"click",{page},"props":{{"tag":"button"}}}}"#),
            13..=15 => format!(r#"{{{head},"event_type":"add_to_cart",{page},"props":{{"product_id":"p{product}","price":19.5,"quantity":1,"currency":"EUR"}}}}"#),
            16 => format!(r#"{{{head},"event_type":"begin_checkout",{page}}}"#),
            17 => format!(r#"{{{head},"event_type":"purchase",{page},"props":{{"order_id":"o{k}","product_id":"p{product}","price":19.5,"quantity":2,"revenue":39.0,"currency":"EUR"}}}}"#),
            _ => format!(r#"{{{head},"event_type":"search",{page},"props":{{"query":"shoes"}}}}"#),
        };
        events.push(event);
    }
    format!(r#"{{"v":1,"site_id":"shop-1","sent_at":{sent_at},"events":[{}]}}"#, events.join(","))
}

async fn fill_shop(
    stream: &Arc<dyn crate::stream::EventStream>,
    first: u64,
    n: u64,
    (start, spacing, total): (i64, f64, u64),
    now: i64,
) -> anyhow::Result<()> {
    let config = CollectConfig::new("bench", "backend");
    let meta = RequestMeta { received_at: now, user_agent: Some(CHROME.into()), ip: Some("203.0.113.9".into()), country: Some("DE".into()), ..RequestMeta::default() };
    let mut k = first;
    while k < first + n {
        let m = 500usize.min((first + n - k) as usize);
        let body = shop_batch(k, m, now, start, spacing, total);
        collect_into(stream, &body, &meta, &config).await?;
        k += m as u64;
    }
    Ok(())
}

/// A day of shop traffic ending two minutes ago, `events` of the `total`
/// it is spread for, through the collect core and the log into Silver
/// (Gold off). Returns the log, the clock reading and the traffic's shape.
async fn shop_day(
    events: u64,
    total: u64,
    dir: &std::path::Path,
    what: &str,
) -> anyhow::Result<(Arc<dyn crate::stream::EventStream>, i64, (i64, f64, u64))> {
    let stream: Arc<dyn crate::stream::EventStream> = open_log(dir, 4)?;
    let now = SystemClock.now_ms();
    let day = 24 * 3_600_000;
    let start = now - day - 120_000;
    let traffic = (start, day as f64 / total as f64, total);
    let fill = Instant::now();
    fill_shop(&stream, 0, events, traffic, now).await?;
    let config = AggregateConfig { gold: None, ..AggregateConfig::new(dir) };
    let mut agg = Aggregator::open(stream.clone(), config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    agg.drain().await?;
    println!("bench {what}: {events} events in Silver after {:.1} s", fill.elapsed().as_secs_f64());
    Ok((stream, now, traffic))
}

async fn gold(events: u64, increment: u64, duckdb: Option<PathBuf>, dir: PathBuf) -> anyhow::Result<()> {
    use crate::gold::{refresh, GoldConfig, GoldTable};
    use crate::storage::Manifest;

    let (stream, now, traffic) = shop_day(events, events + 1 + increment, &dir, "gold").await?;

    // Every Gold table from the whole of Silver: the build the aggregator
    // runs when Gold is missing, hour by hour, written to Parquet.
    reset_peak_rss();
    let started = Instant::now();
    let (_, files) = refresh::build(&dir, Manifest::load(&dir)?, &GoldConfig::default(), &mut |_, _| {})?;
    let secs = started.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let mut rows = 0;
    for table in GoldTable::ALL.into_iter().filter(|t| refresh::has_files(&dir, *t)) {
        rows += refresh::scan(&dir, table)?.select([polars::prelude::len()]).collect()?.column("len")?.u32()?.get(0).unwrap_or(0);
    }
    println!(
        "bench gold: Silver → all 8 Gold tables ({rows} rows, {files} files) for {events} events in {secs:.2} s: {:.0} events/s, peak RSS {peak} MiB",
        events as f64 / secs,
    );

    if let Some(python) = duckdb {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/gold_duckdb.py");
        let out = dir.join("gold-duckdb");
        std::fs::create_dir_all(&out)?;
        let run = std::process::Command::new(&python)
            .arg(script)
            .arg(&dir)
            .arg(&out)
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
    }

    // One incremental micro-batch on top of that history: the aggregator
    // with Gold on (Gold is current, so it does not build again), after a
    // first small step that warms it up.
    let config = AggregateConfig { max_records_per_partition: increment as usize, ..AggregateConfig::new(&dir) };
    let mut agg = Aggregator::open(stream.clone(), config, Arc::new(Metrics::new()), Arc::new(SystemClock)).await?;
    fill_shop(&stream, events, 1, traffic, now).await?;
    agg.drain().await?;
    fill_shop(&stream, events + 1, increment, traffic, now).await?;
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
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every dashboard endpoint, each range, `rounds` times through the router
/// (handler, Polars and JSON; no socket): median and p95 per endpoint.
async fn api(events: u64, rounds: usize, dir: PathBuf) -> anyhow::Result<()> {
    use axum::body::{to_bytes, Body};
    use tower::ServiceExt;

    use crate::gold::{refresh, GoldConfig};
    use crate::server::{app, AppState};
    use crate::storage::Manifest;

    let (stream, _, _) = shop_day(events, events, &dir, "api").await?;
    let started = Instant::now();
    refresh::build(&dir, Manifest::load(&dir)?, &GoldConfig::default(), &mut |_, _| {})?;
    println!("bench api: Gold built in {:.1} s", started.elapsed().as_secs_f64());
    let mut state = AppState::new(stream, CollectConfig::new("bench", "backend"), Arc::new(Metrics::new()), Arc::new(SystemClock));
    state.data_dir = Some(dir.clone());
    state.access = crate::server::Access::Open;
    let router = app(Arc::new(state));
    let paths = [
        "/api/summary", "/api/traffic", "/api/revenue", "/api/top_pages", "/api/funnel",
        "/api/sessions/breakdown?by=source", "/api/bots", "/api/rejects",
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
        "bench api: all {} requests over {events} events: median {:.1} ms, p95 {:.1} ms; a dashboard refresh makes 10 of them",
        all.len(),
        all[all.len() / 2],
        all[(all.len() * 95).div_ceil(100) - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
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

fn current_rss_mib() -> u64 {
    status_kib("VmRSS:") / 1024
}
