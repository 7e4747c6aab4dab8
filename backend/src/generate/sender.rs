//! The HTTP side: paces the planner against the wall clock, POSTs its batches
//! with a few concurrent workers (keep-alive), retries like a tracker, and
//! records what was delivered in the `--out` NDJSON file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clickstream_schema::WIRE_VERSION;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::config::{GenerateOptions, GenerateReport};
use super::traffic::{PlannedBatch, Traffic};

/// Attempts per send, the first included (a tracker gives up eventually too).
const MAX_ATTEMPTS: u32 = 8;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
const RETRY_AFTER_CAP: u64 = 60;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A batch and, if planned, its deliberate resend: one worker sends both in
/// order, like a tracker retrying after the first response was lost.
struct Job {
    batch: PlannedBatch,
    resend: Option<PlannedBatch>,
}

#[derive(Default)]
struct Stats {
    valid_distinct: AtomicU64,
    malformed: AtomicU64,
    batches: AtomicU64,
    duplicate_batches: AtomicU64,
    retries: AtomicU64,
    failed_batches: AtomicU64,
    /// Why the latest failed batch failed, for the report.
    last_failure: Mutex<Option<String>>,
}

impl Stats {
    fn failed(&self, why: String) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().expect("failure lock") = Some(why);
    }
}

struct OutFile {
    writer: Mutex<BufWriter<File>>,
    error: Mutex<Option<std::io::Error>>,
}

/// Generates traffic and sends it to `opts.target` until the event budget is
/// spent or `stop` turns true; in-flight batches and held-back late events
/// are always sent before returning.
pub async fn run(opts: GenerateOptions, mut stop: watch::Receiver<bool>) -> anyhow::Result<GenerateReport> {
    opts.validate()?;
    let url = opts.endpoint()?;
    let started = Instant::now();
    let out = match &opts.out {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(Arc::new(OutFile {
                writer: Mutex::new(BufWriter::with_capacity(1 << 18, file)),
                error: Mutex::new(None),
            }))
        }
        None => None,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let stats = Arc::new(Stats::default());

    // A small queue: backpressure from slow servers stops the planner too.
    let (tx, rx) = mpsc::channel::<Job>(opts.concurrency * 2);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::with_capacity(opts.concurrency);
    for i in 0..opts.concurrency {
        let mut worker = Worker {
            client: client.clone(),
            url: url.clone(),
            stats: stats.clone(),
            out: out.clone(),
            retry_for: opts.retry_for,
            // Jitter only; it need not be reproducible, but seeding is free.
            rng: ChaCha8Rng::seed_from_u64(
                opts.seed.wrapping_add(0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i as u64 + 1)),
            ),
        };
        let rx = rx.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let job = rx.lock().await.recv().await;
                match job {
                    Some(job) => worker.handle(job).await,
                    None => break,
                }
            }
        }));
    }

    let mut traffic = Traffic::new(&opts, wall_ms());
    tracing::info!(
        endpoint = %url,
        start_ms = traffic.start_ms(),
        rate = ?opts.rate,
        events = ?opts.events,
        seed = opts.seed,
        "generating traffic"
    );
    let mut stop_alive = true;
    let mut stopped = false;
    let mut last_progress = Instant::now();
    loop {
        if *stop.borrow() {
            stopped = true;
            break;
        }
        traffic.set_now(wall_ms());
        match traffic.next_batch() {
            Some(batch) => {
                let resend = if !batch.duplicate && traffic.next_is_duplicate() { traffic.next_batch() } else { None };
                if tx.send(Job { batch, resend }).await.is_err() {
                    break;
                }
            }
            None if traffic.is_finished() => break,
            None => {
                // Caught up with the wall clock: wait for the next due batch
                // (real-time mode, or a fast run that reached "now").
                let wait = traffic.next_due_ms().map_or(1000, |due| (due - wall_ms()).clamp(1, 1000));
                pause(wait as u64, &mut stop, &mut stop_alive).await;
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                events = traffic.generated(),
                batches = stats.batches.load(Ordering::Relaxed),
                retries = stats.retries.load(Ordering::Relaxed),
                failed = stats.failed_batches.load(Ordering::Relaxed),
                "generate progress"
            );
        }
    }
    if stopped {
        // Flush what the trackers still hold: open batches and late events.
        let mut rest = traffic.finish().into_iter().peekable();
        while let Some(batch) = rest.next() {
            let resend = if !batch.duplicate && rest.peek().is_some_and(|b| b.duplicate) { rest.next() } else { None };
            if tx.send(Job { batch, resend }).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    for w in workers {
        w.await.context("sender task failed")?;
    }
    if let Some(out) = out {
        if let Some(e) = out.error.lock().expect("out error lock").take() {
            return Err(e).context("writing the --out file");
        }
        out.writer.lock().expect("out lock").flush().context("flushing the --out file")?;
    }

    let report = GenerateReport {
        events: traffic.generated(),
        valid_distinct: stats.valid_distinct.load(Ordering::Relaxed),
        malformed: stats.malformed.load(Ordering::Relaxed),
        batches: stats.batches.load(Ordering::Relaxed),
        duplicate_batches: stats.duplicate_batches.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        failed_batches: stats.failed_batches.load(Ordering::Relaxed),
        last_failure: stats.last_failure.lock().expect("failure lock").take(),
        elapsed: started.elapsed(),
    };
    tracing::info!(%report, "generate done");
    Ok(report)
}

/// Sleeps, waking early when `stop` changes (if anyone can still change it).
async fn pause(ms: u64, stop: &mut watch::Receiver<bool>, alive: &mut bool) {
    let sleep = tokio::time::sleep(Duration::from_millis(ms));
    if *alive {
        tokio::select! {
            () = sleep => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    *alive = false;
                }
            }
        }
    } else {
        sleep.await;
    }
}

struct Worker {
    client: reqwest::Client,
    url: reqwest::Url,
    stats: Arc<Stats>,
    out: Option<Arc<OutFile>>,
    retry_for: Option<Duration>,
    rng: ChaCha8Rng,
}

impl Worker {
    async fn handle(&mut self, job: Job) {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let first = self.deliver(&job.batch).await;
        if let Some(sent_at) = first {
            self.record(&job.batch, sent_at, false);
        }
        let mut delivered = first.is_some();
        if let Some(resend) = job.resend {
            self.stats.duplicate_batches.fetch_add(1, Ordering::Relaxed);
            if let Some(sent_at) = self.deliver(&resend).await {
                // Only a real repeat is a duplicate; if the first send failed,
                // this one is the delivery.
                self.record(&resend, sent_at, delivered);
                delivered = true;
            }
        }
        if delivered {
            let valid = job.batch.events.iter().filter(|e| e.is_valid()).count() as u64;
            self.stats.valid_distinct.fetch_add(valid, Ordering::Relaxed);
            self.stats.malformed.fetch_add(job.batch.events.len() as u64 - valid, Ordering::Relaxed);
        }
    }

    /// POSTs the batch until a 2xx (returns its `sent_at`), a permanent
    /// error, or the attempts (or with `retry_for`, the time) run out.
    async fn deliver(&mut self, batch: &PlannedBatch) -> Option<i64> {
        let events = serde_json::to_string(&batch.body["events"]).unwrap_or_else(|_| "[]".into());
        let site_id = serde_json::to_string(&batch.body["site_id"]).unwrap_or_else(|_| "null".into());
        let first_try = Instant::now();
        let last_attempt = |attempt: u32| match self.retry_for {
            Some(limit) => first_try.elapsed() >= limit,
            None => attempt >= MAX_ATTEMPTS,
        };
        for attempt in 1.. {
            // sent_at is the wall clock of this very attempt, so the server's
            // skew correction (received_at − sent_at) stays near zero.
            let sent_at = wall_ms();
            let body = format!(r#"{{"v":{WIRE_VERSION},"site_id":{site_id},"sent_at":{sent_at},"events":{events}}}"#);
            let result = self
                .client
                .post(self.url.clone())
                .header(USER_AGENT, &batch.user_agent)
                .header("CF-IPCountry", &batch.country)
                .header("X-Forwarded-For", &batch.ip)
                .header(CONTENT_TYPE, batch.content_type)
                .body(body)
                .send()
                .await;
            let (why, retry_after) = match result {
                Ok(resp) if resp.status().is_success() => {
                    // Read the body so the connection goes back to the pool.
                    let _ = resp.bytes().await;
                    return Some(sent_at);
                }
                Ok(resp)
                    if matches!(resp.status(), StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) =>
                {
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(RETRY_AFTER_CAP)));
                    let status = resp.status();
                    let _ = resp.bytes().await;
                    (format!("HTTP {status}"), retry_after)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    tracing::warn!(%status, body = %truncate(&text, 500), events = batch.events.len(), "batch rejected");
                    self.stats.failed(format!("HTTP {status}: {}", truncate(&text, 200)));
                    return None;
                }
                Err(e) => (e.to_string(), None),
            };
            if last_attempt(attempt) {
                tracing::warn!(error = %why, attempts = attempt, events = batch.events.len(), "batch not delivered, giving up");
                self.stats.failed(format!("gave up after {attempt} attempts: {why}"));
                return None;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let backoff = retry_after.unwrap_or_else(|| {
                let exp = BACKOFF_BASE.saturating_mul(1 << (attempt - 1).min(16)).min(BACKOFF_CAP);
                // Full jitter on half the delay, so retrying trackers spread out.
                exp / 2 + exp.mul_f64(self.rng.gen::<f64>() / 2.0)
            });
            tracing::debug!(error = %why, attempt, ?backoff, "retrying batch");
            tokio::time::sleep(backoff).await;
        }
        None
    }

    /// One NDJSON line per event of a delivered send.
    fn record(&self, batch: &PlannedBatch, sent_at: i64, duplicate: bool) {
        let Some(out) = &self.out else { return };
        let mut buf = String::new();
        for e in &batch.events {
            let line = json!({
                "event": e.event,
                "sent_at": sent_at,
                "user_agent": batch.user_agent,
                "country": batch.country,
                "ip": batch.ip,
                "site_id": batch.body["site_id"],
                "expect": e.expect,
                "duplicate": duplicate,
            });
            buf.push_str(&line.to_string());
            buf.push('\n');
        }
        let result = out.writer.lock().expect("out lock").write_all(buf.as_bytes());
        if let Err(e) = result {
            out.error.lock().expect("out error lock").get_or_insert(e);
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
