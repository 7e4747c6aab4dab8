//! The write path: batches over HTTP into the embedded log, and the
//! stream's own produce and consume rates.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clickstream_schema::RequestMeta;
use edge_worker::{collect, CollectConfig};
use tokio::sync::{oneshot, watch};

use super::{device_bytes_written, peak_rss_mib, reset_peak_rss};
use crate::clock::{Clock, SystemClock};
use crate::fixtures::{synthetic_batch, CHROME};
use crate::serve::{open_log, serve, ServeSettings};
use crate::stream::{records_of, Record, Topic};

pub(super) async fn ingest(events: u64, senders: usize, batch: usize, dir: PathBuf) -> anyhow::Result<()> {
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
    let written_before = device_bytes_written(&dir);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (next, accepted, url) = (next.clone(), accepted.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            // Each request's time from send to its durable acknowledgement.
            let mut latencies = Vec::new();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let body = synthetic_batch(b, batch, now);
                let sent = Instant::now();
                let resp = client.post(&url).header("user-agent", CHROME).body(body).send().await?;
                anyhow::ensure!(resp.status().is_success(), "batch refused: {}", resp.status());
                let r: serde_json::Value = resp.json().await?;
                latencies.push(sent.elapsed());
                accepted.fetch_add(r["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    let written = device_bytes_written(&dir).zip(written_before).map(|(after, before)| after.saturating_sub(before));
    let written = match written {
        Some(bytes) => format!(
            "{:.0} bytes per event reached the disk",
            bytes as f64 / accepted.load(Ordering::Relaxed).max(1) as f64
        ),
        None => "bytes written: the data directory's device is not in /proc/diskstats".to_string(),
    };
    let total = accepted.load(Ordering::Relaxed);
    latencies.sort_unstable();
    let ms = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "bench ingest: {total} events in {batches} batches of {batch} from {senders} senders, durable acks: {secs:.2} s, {:.0} events/s, {:.0} requests/s, latency p50 {:.1} ms p99 {:.1} ms, {written}, peak RSS {} MiB (server and senders in one process)",
        total as f64 / secs,
        batches as f64 / secs,
        ms(0.5),
        ms(0.99),
        peak_rss_mib()
    );
    let _ = stop_tx.send(true);
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub(super) struct StreamBench {
    pub(super) events: u64,
    pub(super) partitions: u32,
    pub(super) producers: usize,
    pub(super) batch: usize,
    pub(super) fluvio_sc: Option<String>,
}

/// Produce (acknowledged batches, concurrent producers), then consume
/// (every partition from offset 0, in fetches of 10,000) the same records.
pub(super) async fn stream(b: StreamBench, dir: PathBuf) -> anyhow::Result<()> {
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
        let records: Vec<Record> = records_of(&out.accepted, &out.bad_rows);
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
