//! The micro-batch loop.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dedup::SeenEvents;
use super::gold_step::{GoldConfig, GoldStep};
use super::micro_batch::MicroBatch;
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::storage::compact::{self, compact, CompactReport, Finality};
use crate::storage::lock::Ownership;
use crate::storage::retention::{expire, Retention, RetentionReport};
use crate::storage::{CrashPoint, Manifest, PipelineError, Role};
use crate::stream::{EventStream, Fetched, StreamError, Topic};

/// How the aggregator batches and remembers.
#[derive(Clone, Debug)]
pub struct AggregateConfig {
    pub data_dir: PathBuf,
    /// Pause between polls when the stream has nothing new.
    pub poll_interval: Duration,
    /// A micro-batch starts at most this often unless the one before found
    /// a backlog (a partition gave a full `max_records_per_partition`). A
    /// micro-batch costs about the same for ten events as for ten thousand
    /// (files, fsyncs, a Gold refresh): without a pause, a steady trickle
    /// becomes hundreds of tiny micro-batches a second, whose CPU the
    /// ingest beside it then lacks, and whose files compaction must merge.
    pub batch_interval: Duration,
    /// Most records read per topic partition in one micro-batch.
    pub max_records_per_partition: usize,
    /// How long event ids are remembered for deduplication (ms).
    pub dedup_retention_ms: i64,
    /// Consumer group name under which progress is reported to the stream.
    pub group: String,
    /// Sessions, bots and lateness rules of the Gold tables; `None` stops
    /// at Silver (the Bronze→Silver benchmark, and partition consumers,
    /// which leave Gold to the Gold role).
    pub gold: Option<GoldConfig>,
    /// The partitions this consumer owns (of both topics); `None` owns all
    /// of them. See [`Role`].
    pub partitions: Option<Vec<u32>>,
    /// How often the aggregator of a whole data directory does its
    /// maintenance between micro-batches: compacts final partitions
    /// ([`crate::storage::compact`]), removes expired days ([`Retention`])
    /// and trims the log below every consumer's position. `None` never.
    pub maintenance_every: Option<Duration>,
    /// How long each layer keeps its days (default: forever).
    pub retention: Retention,
    /// For crash tests: stop each micro-batch at this step, as a crash
    /// there would.
    #[doc(hidden)]
    pub crash_at: Option<CrashPoint>,
    /// For crash tests: panic once, in the first micro-batch, at this step.
    #[doc(hidden)]
    pub panic_once_at: Option<CrashPoint>,
}

impl AggregateConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        AggregateConfig {
            data_dir: data_dir.into(),
            poll_interval: Duration::from_millis(1000),
            batch_interval: Duration::from_millis(1000),
            max_records_per_partition: 50_000,
            dedup_retention_ms: 48 * 3_600_000,
            group: "clickstream-aggregate".into(),
            gold: Some(GoldConfig::default()),
            partitions: None,
            maintenance_every: Some(Duration::from_secs(10 * 60)),
            retention: Retention::default(),
            crash_at: None,
            panic_once_at: None,
        }
    }

    /// Whose manifest and files this aggregator writes.
    pub fn role(&self) -> Role {
        match &self.partitions {
            None => Role::Whole,
            Some(owned) => Role::partitions(owned.clone()),
        }
    }
}

/// What one micro-batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    pub events_read: usize,
    pub rejects_read: usize,
    /// Some partition had more records waiting than one micro-batch takes.
    pub backlog: bool,
    pub bronze_rows: usize,
    pub silver_rows: usize,
    pub duplicates: usize,
    pub reject_rows: usize,
    /// Log records quarantined as `corrupt_record` bad rows.
    pub corrupt_records: usize,
    pub files: usize,
    /// Gold day files replaced.
    pub gold_files: usize,
    /// Where the time went, for the bench and debug logs.
    pub timings: StepTimings,
}

/// Wall time per phase of a micro-batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepTimings {
    /// Fetching records from the stream.
    pub read: Duration,
    /// JSON → Bronze frames (in parallel chunks).
    pub decode: Duration,
    /// Bronze Parquet files.
    pub bronze_write: Duration,
    /// Dedup and the Silver transform.
    pub silver: Duration,
    /// Silver and rejects Parquet files.
    pub silver_write: Duration,
    /// Recomputing and writing the Gold days touched.
    pub gold: Duration,
    /// Manifest rename and publishing.
    pub commit: Duration,
}

impl StepTimings {
    fn add(&mut self, o: &StepTimings) {
        self.read += o.read;
        self.decode += o.decode;
        self.bronze_write += o.bronze_write;
        self.silver += o.silver;
        self.silver_write += o.silver_write;
        self.gold += o.gold;
        self.commit += o.commit;
    }
}

impl std::fmt::Display for StepTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_millis();
        write!(
            f,
            "read {} ms, decode {} ms, bronze write {} ms, silver {} ms, silver write {} ms, gold {} ms, commit {} ms",
            ms(self.read),
            ms(self.decode),
            ms(self.bronze_write),
            ms(self.silver),
            ms(self.silver_write),
            ms(self.gold),
            ms(self.commit)
        )
    }
}

impl StepReport {
    pub fn is_empty(&self) -> bool {
        self.events_read == 0 && self.rejects_read == 0
    }

    /// Adds another micro-batch's counts and times to these.
    pub fn add(&mut self, r: &StepReport) {
        self.events_read += r.events_read;
        self.rejects_read += r.rejects_read;
        self.backlog |= r.backlog;
        self.bronze_rows += r.bronze_rows;
        self.silver_rows += r.silver_rows;
        self.duplicates += r.duplicates;
        self.reject_rows += r.reject_rows;
        self.corrupt_records += r.corrupt_records;
        self.files += r.files;
        self.gold_files += r.gold_files;
        self.timings.add(&r.timings);
    }
}

/// What a round of [`Aggregator::maintain`] did.
#[derive(Clone, Debug, Default)]
pub struct Maintenance {
    /// `None` when this aggregator may not compact (see [`Aggregator::compact`]).
    pub compaction: Option<CompactReport>,
    pub expired: RetentionReport,
    /// Log records removed below every consumer's position.
    pub log_trimmed: u64,
}

pub struct Aggregator {
    stream: Arc<dyn EventStream>,
    config: AggregateConfig,
    role: Role,
    /// The partitions read, sorted.
    owned: Vec<u32>,
    manifest: Manifest,
    /// `None` after a micro-batch failed: the next step reloads the
    /// manifest and the ids from disk, the state of the last commit.
    seen: Option<SeenEvents>,
    /// The test hook `panic_once_at` has fired.
    panicked: bool,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// Held while running: no other aggregator of this data directory may
    /// own the same partitions (or write Gold too).
    _ownership: Ownership,
}

impl Aggregator {
    /// Recovers the data directory (finishing or discarding an interrupted
    /// commit) and loads the dedup state from Silver.
    pub async fn open(
        stream: Arc<dyn EventStream>,
        config: AggregateConfig,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Aggregator, PipelineError> {
        let mut config = config;
        let role = config.role();
        let all = stream.partitions(Topic::Events).max(stream.partitions(Topic::Rejects));
        let owned: Vec<u32> = match &role {
            Role::Partitions(owned) => {
                if let Some(p) = owned.iter().find(|p| **p >= all) {
                    return Err(PipelineError::Ownership(format!(
                        "partition {p} does not exist: the stream has partitions 0 to {}",
                        all.saturating_sub(1)
                    )));
                }
                if owned.is_empty() {
                    return Err(PipelineError::Ownership("a consumer must own at least one partition".into()));
                }
                // Gold needs every partition's Silver: the Gold role keeps it.
                config.gold = None;
                owned.clone()
            }
            _ => (0..all).collect(),
        };
        let ownership =
            Ownership::claim(&config.data_dir, &owned, config.gold.is_some()).map_err(PipelineError::Ownership)?;
        let (manifest, seen) = load_state(&config, &role, clock.now_ms()).await?;
        tracing::info!(seq = manifest.seq, remembered_ids = seen.len(), partitions = ?owned, "aggregator ready");
        Ok(Aggregator {
            stream,
            config,
            role,
            owned,
            manifest,
            seen: Some(seen),
            panicked: false,
            metrics,
            clock,
            _ownership: ownership,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Merges the final partitions of Bronze, Silver and rejects into one
    /// file each, between micro-batches (see [`crate::storage::compact`]).
    /// `None` when this aggregator may not: it owns only some partitions,
    /// partition consumers share the data directory, or the data directory
    /// is in a bucket (compaction swaps directories by rename, which S3
    /// does not have; retention runs after compaction, so neither runs
    /// there yet).
    pub async fn compact(&mut self) -> Result<Option<CompactReport>, PipelineError> {
        if self.role != Role::Whole
            || crate::storage::lake::is_remote(&self.config.data_dir)
            || !Role::consumers(&self.config.data_dir).is_empty()
        {
            return Ok(None);
        }
        let lateness =
            self.config.gold.as_ref().map_or(GoldConfig::default().allowed_lateness_ms, |g| g.allowed_lateness_ms);
        let finality =
            Finality { now_ms: self.clock.now_ms(), watermark_ms: self.manifest.max_event_ts.map(|t| t - lateness) };
        let data_dir = self.config.data_dir.clone();
        let mut manifest = self.manifest.clone();
        let (manifest, report) = tokio::task::spawn_blocking(move || {
            let report = compact(&data_dir, &mut manifest, finality, &mut |_, _| {});
            (manifest, report)
        })
        .await
        .map_err(|e| PipelineError::Task(e.to_string()))?;
        self.manifest = manifest;
        let report = report?;
        if report.partitions > 0 || report.retired_removed > 0 {
            tracing::info!(
                partitions = report.partitions,
                files_before = report.files_before,
                files_after = report.files_after,
                seconds = report.seconds,
                "compacted final partitions"
            );
        }
        Ok(Some(report))
    }

    /// One round of maintenance: compaction, retention, and the log's trim
    /// below every consumer's committed position. Compaction and retention
    /// are for the aggregator of a whole data directory only.
    pub async fn maintain(&mut self) -> Result<Maintenance, PipelineError> {
        // Paired with "maintenance round done", so a crash mid-compaction
        // can be told from the log (the chaos suite counts them).
        tracing::debug!("maintenance round started");
        let compaction = self.compact().await?;
        let mut expired = RetentionReport::default();
        if compaction.is_some() && !self.config.retention.is_forever() {
            let (data_dir, retention, now) = (self.config.data_dir.clone(), self.config.retention, self.clock.now_ms());
            expired = tokio::task::spawn_blocking(move || expire(&data_dir, &retention, now))
                .await
                .map_err(|e| PipelineError::Task(e.to_string()))??;
            if expired.total_days() > 0 {
                tracing::info!(removed = ?expired.days_removed, bytes = expired.bytes_removed, "removed expired days");
            }
        }
        let log_trimmed = match self.stream.trim_committed().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "could not trim the log; trying again at the next round");
                0
            }
        };
        tracing::debug!(log_trimmed, "maintenance round done");
        Ok(Maintenance { compaction, expired, log_trimmed })
    }

    /// How many event ids the dedup set holds in memory (0 between a failed
    /// micro-batch and the reload of the next step).
    pub fn remembered_ids(&self) -> usize {
        self.seen.as_ref().map_or(0, SeenEvents::len)
    }

    /// Reads what the stream holds beyond the committed offsets (bounded),
    /// writes it and commits. An empty report means there was nothing new.
    ///
    /// A micro-batch that fails (an error, or a panic) leaves the state of
    /// the last commit on disk; the next step reloads it (recovering the
    /// data directory as at start) and reads the batch again.
    pub async fn step(&mut self) -> Result<StepReport, PipelineError> {
        if self.seen.is_none() {
            let (manifest, seen) = load_state(&self.config, &self.role, self.clock.now_ms()).await?;
            tracing::info!(seq = manifest.seq, "reloaded the last commit after a failed micro-batch");
            (self.manifest, self.seen) = (manifest, Some(seen));
        }
        let read_started = Instant::now();
        let (events, events_backlog) = self.read(Topic::Events).await?;
        let (rejects, rejects_backlog) = self.read(Topic::Rejects).await?;
        let read_time = read_started.elapsed();
        if events.is_empty() && rejects.is_empty() {
            self.update_lag().await;
            return Ok(StepReport::default());
        }

        let mut next = self.manifest.clone();
        for (topic, fetched) in [(Topic::Events, &events), (Topic::Rejects, &rejects)] {
            for f in fetched {
                if f.offset + 1 > next.offset(topic, f.partition) {
                    next.set_offset(topic, f.partition, f.offset + 1);
                }
            }
        }

        // With the line below, a log says whether a crash came mid-batch
        // (Bronze, Silver, the Gold refresh, the commit): the chaos suite
        // counts its kills by it.
        tracing::debug!(events = events.len(), rejects = rejects.len(), "micro-batch started");
        let started = Instant::now();
        let seen = self.seen.take().unwrap_or_default();
        let data_dir = self.config.data_dir.clone();
        let now = self.clock.now_ms();
        let gold = self.config.gold.clone();
        let role = self.role.clone();
        let crash = self.config.crash_at;
        let panic_at = self.config.panic_once_at.filter(|_| !std::mem::replace(&mut self.panicked, true));
        let result = tokio::task::spawn_blocking(move || {
            let mut seen = seen;
            let batch = MicroBatch { data_dir: &data_dir, role, gold: gold.as_ref(), now, crash, panic_at };
            let outcome = batch.write(next, events, rejects, &mut seen);
            (seen, outcome)
        })
        .await;
        // On failure `self.seen` stays `None`: the batch may have failed
        // after its commit point, so only the disk says where things are.
        let (manifest, mut report) = match result {
            Ok((seen, Ok(done))) => {
                self.seen = Some(seen);
                done
            }
            Ok((_, Err(e))) => {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            Err(panicked) => {
                self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                return Err(PipelineError::Task(format!("the micro-batch panicked: {panicked}")));
            }
        };
        report.timings.read = read_time;
        report.backlog = events_backlog || rejects_backlog;
        self.manifest = manifest;
        self.metrics.observe_commit(started.elapsed().as_secs_f64());
        self.metrics.bronze_rows.fetch_add(report.bronze_rows as u64, Ordering::Relaxed);
        self.metrics.silver_rows.fetch_add(report.silver_rows as u64, Ordering::Relaxed);
        self.metrics.duplicates_dropped.fetch_add(report.duplicates as u64, Ordering::Relaxed);
        self.metrics.corrupt_records.fetch_add(report.corrupt_records as u64, Ordering::Relaxed);
        for topic in Topic::ALL {
            for &p in self.owned(topic) {
                let offset = self.manifest.offset(topic, p);
                // Informational: the manifest is the source of truth.
                if let Err(e) = self.stream.commit(&self.config.group, topic, p, offset).await {
                    tracing::warn!(error = %e, "could not record the consumer offset in the stream");
                }
            }
        }
        self.update_lag().await;
        tracing::debug!(?report, seq = self.manifest.seq, "micro-batch committed");
        Ok(report)
    }

    /// Steps until the stream has nothing beyond the committed offsets.
    pub async fn drain(&mut self) -> Result<StepReport, PipelineError> {
        let mut total = StepReport::default();
        loop {
            let r = self.step().await?;
            if r.is_empty() {
                return Ok(total);
            }
            total.add(&r);
        }
    }

    /// Runs until `stop` turns true, then drains what was acknowledged
    /// before stopping, so a clean shutdown leaves nothing behind.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), PipelineError> {
        let mut last_maintenance = Instant::now();
        // When the last micro-batch that found records started, unless it
        // found a backlog (then the next one starts at once).
        let mut paced_from: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if let Some(wait) = paced_from.and_then(|at| self.config.batch_interval.checked_sub(at.elapsed())) {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
            if self.config.maintenance_every.is_some_and(|every| last_maintenance.elapsed() >= every) {
                last_maintenance = Instant::now();
                if let Err(e) = self.maintain().await {
                    tracing::error!(error = %e, "maintenance failed; trying again at the next round");
                }
            }
            let started = Instant::now();
            match self.step().await {
                Ok(r) if !r.is_empty() => {
                    paced_from = (!r.backlog).then_some(started);
                    continue;
                }
                Ok(_) => paced_from = None,
                Err(e) => tracing::error!(error = %e, "micro-batch failed; retrying from the committed offsets"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stop.changed() => {}
            }
        }
        let last = self.drain().await?;
        tracing::info!(
            silver_rows = last.silver_rows,
            seq = self.manifest.seq,
            "aggregator stopped after a final drain"
        );
        Ok(())
    }

    /// The partitions of a topic this aggregator reads.
    fn owned(&self, topic: Topic) -> &[u32] {
        let n = self.stream.partitions(topic);
        let end = self.owned.partition_point(|p| *p < n);
        &self.owned[..end]
    }

    /// The next records of every owned partition of `topic`, and whether
    /// some partition filled its share (more are waiting).
    ///
    /// The partitions are fetched together: a large fetch of the embedded
    /// log decompresses on a blocking thread, so they use every core
    /// (`bench silver`'s read phase took about half as long).
    async fn read(&self, topic: Topic) -> Result<(Vec<Fetched>, bool), StreamError> {
        let max = self.config.max_records_per_partition;
        let fetches =
            self.owned(topic).iter().map(|&p| self.stream.fetch(topic, p, self.manifest.offset(topic, p), max));
        let fetched = futures_util::future::try_join_all(fetches).await?;
        let full = fetched.iter().any(|records| records.len() >= max);
        let mut out = Vec::with_capacity(fetched.iter().map(Vec::len).sum());
        for records in fetched {
            out.extend(records);
        }
        Ok((out, full))
    }

    async fn update_lag(&self) {
        for topic in Topic::ALL {
            for &p in self.owned(topic) {
                if let Ok(end) = self.stream.end_offset(topic, p).await {
                    let lag = end.saturating_sub(self.manifest.offset(topic, p));
                    self.metrics.set_log_lag(topic.name(), p, lag);
                }
            }
        }
    }
}

/// Recovers the data directory (finishing or discarding an interrupted
/// commit), catches Gold up if it is behind Silver, and loads the dedup ids
/// from Silver: the state of the last commit.
async fn load_state(config: &AggregateConfig, role: &Role, now: i64) -> Result<(Manifest, SeenEvents), PipelineError> {
    let data_dir = config.data_dir.clone();
    let retention = config.dedup_retention_ms;
    let gold = config.gold.clone();
    let recover_role = role.clone();
    tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
        let (mut manifest, report) = Manifest::recover_role(&data_dir, &recover_role, gold.is_some())?;
        if recover_role == Role::Whole {
            let staged = compact::recover(&data_dir)?;
            if staged > 0 {
                tracing::info!(staged, "removed the staging directories of an interrupted compaction");
            }
        }
        if report.published > 0 || report.orphans_removed > 0 {
            tracing::info!(
                published = report.published,
                orphans_removed = report.orphans_removed,
                "recovered the data directory after an interrupted commit"
            );
        }
        if let Some(gold) = gold.filter(|_| !manifest.gold_is_current()) {
            // Silver was written with Gold off (or before Gold's hourly
            // layout, or Gold in an older layout): catch Gold up before
            // streaming on.
            if manifest.gold_current {
                tracing::info!(
                    from = manifest.gold_layout,
                    to = crate::storage::GOLD_LAYOUT,
                    "Gold was written in an older layout; building it again from Silver (once)"
                );
            }
            let started = Instant::now();
            let (built, files) = gold.build(&data_dir, manifest, &mut |done, all| {
                if done == 0 && all > 0 {
                    tracing::info!(hours = all, "building Gold from Silver, hour by hour");
                }
            })?;
            manifest = built;
            if files > 0 {
                tracing::info!(files, seconds = started.elapsed().as_secs_f64(), "Gold built from Silver");
            }
        }
        let seen = SeenEvents::load(&data_dir, retention, now)?;
        Ok((manifest, seen))
    })
    .await
    .map_err(|e| PipelineError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::fixtures::{browser_request, collect_into, fresh_dir, synthetic_batch};
    use crate::serve::open_log;
    use edge_worker::CollectConfig;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gold_of_an_older_layout_is_built_again_at_start() {
        use crate::gold::GoldConfig;
        use crate::storage::layout::parquet_files;
        use crate::storage::{GoldTable, TableDir, GOLD_LAYOUT};
        use polars::prelude::{cols, LazyFrame, ParquetWriter, PlRefPath};

        let dir = std::env::temp_dir().join(format!("clickstream-layout-{}", std::process::id()));
        fresh_dir(&dir).unwrap();
        let stream = open_log(&dir, 1).unwrap();
        let now = SystemClock.now_ms();
        for b in 0..3 {
            collect_into(&stream, &synthetic_batch(b, 20, now), &browser_request(now), &CollectConfig::new("t", "t"))
                .await
                .unwrap();
        }
        let config = || AggregateConfig {
            gold: Some(GoldConfig::default()),
            poll_interval: Duration::from_millis(20),
            batch_interval: Duration::from_millis(20),
            ..AggregateConfig::new(&dir)
        };
        let run = |stream: Arc<dyn crate::stream::EventStream>| async {
            let agg =
                Aggregator::open(stream, config(), Arc::new(Metrics::new()), Arc::new(SystemClock)).await.unwrap();
            let (stop_tx, stop) = watch::channel(false);
            stop_tx.send(true).unwrap();
            agg.run(stop).await.unwrap();
        };
        run(stream.clone()).await;

        // What an older version left: sessions without the acquisition
        // columns, and a manifest without a layout.
        let sessions = parquet_files(&dir.join(GoldTable::Sessions.dir()));
        assert!(!sessions.is_empty());
        let before = crate::storage::scan::scan_table(&dir, GoldTable::Sessions).unwrap().collect().unwrap().height();
        for file in &sessions {
            let mut old = LazyFrame::scan_parquet(PlRefPath::new(file.display().to_string()), Default::default())
                .unwrap()
                .drop(cols(["referrer_domain", "source", "medium", "channel"]))
                .collect()
                .unwrap();
            ParquetWriter::new(std::fs::File::create(file).unwrap()).finish(&mut old).unwrap();
        }
        let path = dir.join(Role::Whole.manifest_path());
        let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        manifest.as_object_mut().unwrap().remove("gold_layout");
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        assert!(!Manifest::load(&dir).unwrap().gold_is_current());

        run(stream).await;
        let manifest = Manifest::load(&dir).unwrap();
        assert_eq!(manifest.gold_layout, GOLD_LAYOUT);
        assert!(manifest.gold_is_current());
        let rebuilt = crate::storage::scan::scan_table(&dir, GoldTable::Sessions).unwrap().collect().unwrap();
        assert_eq!(rebuilt.height(), before, "the same sessions, rebuilt from Silver");
        let channels = rebuilt.column("channel").unwrap();
        assert_eq!(channels.null_count(), 0, "every session of the rebuilt Gold has its channel");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_trickle_is_taken_in_paced_micro_batches_and_nothing_is_left() {
        let dir = std::env::temp_dir().join(format!("clickstream-paced-{}", std::process::id()));
        fresh_dir(&dir).unwrap();
        let stream = open_log(&dir, 1).unwrap();
        let interval = Duration::from_millis(300);
        let config = AggregateConfig {
            gold: None,
            poll_interval: Duration::from_millis(20),
            batch_interval: interval,
            ..AggregateConfig::new(&dir)
        };
        let metrics = Arc::new(Metrics::new());
        let agg = Aggregator::open(stream.clone(), config, metrics.clone(), Arc::new(SystemClock)).await.unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let running = tokio::spawn(agg.run(stop));

        // One small batch every 15 ms: unpaced, nearly each one would be a
        // micro-batch of its own.
        let started = Instant::now();
        let (batches, per_batch) = (60u64, 5usize);
        let now = SystemClock.now_ms();
        for b in 0..batches {
            collect_into(
                &stream,
                &synthetic_batch(b, per_batch, now),
                &browser_request(now),
                &CollectConfig::new("t", "t"),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        let elapsed = started.elapsed();
        stop_tx.send(true).unwrap();
        running.await.unwrap().unwrap();

        assert_eq!(
            metrics.silver_rows.load(Ordering::Relaxed),
            batches * per_batch as u64,
            "the final drain takes the rest"
        );
        // At most one micro-batch per interval while the trickle lasted,
        // plus the first, the one in progress and the final drain. (A slow
        // machine only makes fewer.)
        let micro_batches = metrics.commits.load(Ordering::Relaxed);
        let most = elapsed.as_millis() as u64 / interval.as_millis() as u64 + 3;
        assert!(micro_batches <= most, "{micro_batches} micro-batches in {elapsed:?}, at most {most} expected");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
