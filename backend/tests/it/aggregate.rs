//! The aggregator against a real embedded log and real Parquet, with a
//! fixed clock: Bronze, Silver (deduplicated), rejects, the atomic commit
//! and its recovery.

use std::sync::Arc;

use clickstream_backend::aggregate::dedup::scan_table;
use clickstream_backend::aggregate::silver::SILVER_COLUMNS;
use clickstream_backend::aggregate::{AggregateConfig, Aggregator};
use clickstream_backend::clock::FixedClock;
use clickstream_backend::metrics::Metrics;
use clickstream_backend::storage::{CrashPoint, Manifest, Table};
use clickstream_backend::stream::{EmbeddedLog, EventStream};
use clickstream_schema::RequestMeta;
use edge_worker::{collect, CollectConfig};
use polars::prelude::*;
use serde_json::json;

use crate::support::{assert_same_gold, gold_tables, temp_dir};

// 2024-11-22T08:00:00Z
const NOW: i64 = 1_732_262_400_000;

async fn send(log: &EmbeddedLog, events: Vec<serde_json::Value>) {
    send_at(log, events, NOW).await;
}

/// A batch the tracker sends at `at` (its clock right), received at `at`.
async fn send_at(log: &EmbeddedLog, events: Vec<serde_json::Value>, at: i64) {
    let body = json!({"v": 1, "site_id": "shop-1", "sent_at": at, "events": events}).to_string();
    let meta = RequestMeta { received_at: at, user_agent: Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15".into()), ..Default::default() };
    let out = collect(body.as_bytes(), &meta, &CollectConfig::new("k", "backend")).unwrap();
    log.produce(crate::support::records(&out)).await.unwrap();
}

fn view(id: &str, visitor: &str, ts: i64) -> serde_json::Value {
    json!({"event_id": id, "event_type": "page_view", "ts": ts, "anonymous_id": visitor, "session_id": "s",
           "page": {"url": "https://shop.example/p/1?utm_source=ads", "path": "/p/1"}, "props": {"product_id": "p-1"}})
}

async fn aggregator(dir: &std::path::Path, log: Arc<EmbeddedLog>) -> Aggregator {
    crashing_aggregator(dir, log, 2, None).await // several micro-batches per drain
}

async fn crashing_aggregator(
    dir: &std::path::Path,
    log: Arc<EmbeddedLog>,
    batch: usize,
    crash_at: Option<CrashPoint>,
) -> Aggregator {
    let mut config = AggregateConfig::new(dir);
    config.max_records_per_partition = batch;
    config.crash_at = crash_at;
    Aggregator::open(log, config, Arc::new(Metrics::new()), Arc::new(FixedClock::new(NOW))).await.unwrap()
}

fn silver(dir: &std::path::Path) -> DataFrame {
    scan_table(dir, Table::Silver).unwrap().sort(["event_id"], Default::default()).collect().unwrap()
}

fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name).unwrap().str().unwrap().iter().map(|s| s.unwrap_or("").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bronze_silver_and_rejects_with_dedup_across_batches_and_restarts() {
    let dir = temp_dir("aggregate");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    let hour = 3_600_000;
    // 07:59:59.999 and 08:00:00.000 land in different hour partitions.
    send(&log, vec![view("e-1", "a-1", NOW - 1), view("e-2", "a-2", NOW), json!({"event_type": "click"})]).await;
    // A retry of e-1 (same id) in a later request, and new events.
    send(&log, vec![view("e-1", "a-1", NOW - 1), view("e-3", "a-1", NOW - 2 * hour)]).await;

    let mut agg = aggregator(dir.path(), log.clone()).await;
    let report = agg.drain().await.unwrap();
    assert_eq!(report.bronze_rows, 4, "Bronze keeps every accepted record");
    assert_eq!(report.silver_rows, 3);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.reject_rows, 1);

    let df = silver(dir.path());
    assert_eq!(strings(&df, "event_id"), ["e-1", "e-2", "e-3"]);
    // Hive partitions from the directory names.
    let hours: Vec<i64> =
        df.column("hour").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().map(|v| v.unwrap()).collect();
    assert_eq!(hours, [7, 8, 6]);
    assert_eq!(df.column("dt").unwrap().dtype(), &DataType::Date);
    assert_eq!(df.column("event_ts").unwrap().dtype(), &DataType::Datetime(TimeUnit::Milliseconds, None));
    assert_eq!(df.column("price").unwrap().dtype(), &DataType::Float64);
    assert_eq!(df.column("is_bot").unwrap().dtype(), &DataType::Boolean);
    assert_eq!(strings(&df, "utm_source"), ["ads", "ads", "ads"]);
    assert_eq!(strings(&df, "browser"), ["Safari", "Safari", "Safari"]);
    let names: Vec<String> = df.get_column_names().iter().map(std::string::ToString::to_string).collect();
    for c in SILVER_COLUMNS.iter().chain(["dt", "hour"].iter()) {
        assert!(names.iter().any(|n| n == c), "Silver lacks {c}");
    }
    assert!(!names.iter().any(|n| n == "raw" || n == "user_agent" || n.starts_with('_')), "{names:?}");

    let bronze = scan_table(dir.path(), Table::Bronze).unwrap().collect().unwrap();
    assert_eq!(bronze.height(), 4);
    assert!(bronze.column("raw").is_ok() && bronze.column("log_offset").is_ok());
    let rejects = scan_table(dir.path(), Table::Rejects).unwrap().collect().unwrap();
    assert_eq!(strings(&rejects, "reason"), ["missing_event_id"]);
    assert_eq!(strings(&rejects, "payload"), [r#"{"event_type":"click"}"#]);

    let manifest = Manifest::load(dir.path()).unwrap();
    assert_eq!((manifest.totals.silver_rows, manifest.totals.reject_rows, manifest.totals.duplicates), (3, 1, 1));
    assert!(manifest.seq >= 2, "several micro-batches: {}", manifest.seq);

    // Restart: the dedup state comes back from Silver itself.
    drop(agg);
    send(&log, vec![view("e-2", "a-2", NOW), view("e-4", "a-2", NOW)]).await;
    let mut agg = aggregator(dir.path(), log.clone()).await;
    let report = agg.drain().await.unwrap();
    assert_eq!((report.silver_rows, report.duplicates), (1, 1));
    assert_eq!(strings(&silver(dir.path()), "event_id"), ["e-1", "e-2", "e-3", "e-4"]);
    // Nothing new: an empty step, no new commit.
    let seq = agg.manifest().seq;
    assert!(agg.step().await.unwrap().is_empty());
    assert_eq!(agg.manifest().seq, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_commit_point_repeats_nothing_and_after_it_loses_nothing() {
    let dir = temp_dir("crash");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    send(&log, vec![view("e-1", "a-1", NOW), view("e-2", "a-1", NOW)]).await;
    let mut agg = aggregator(dir.path(), log.clone()).await;
    agg.drain().await.unwrap();
    let manifest = Manifest::load(dir.path()).unwrap();

    // Crash after the manifest rename but before the files were renamed:
    // put one committed file back under its temporary name.
    let file = &manifest.files[0];
    std::fs::rename(dir.path().join(&file.path), dir.path().join(&file.tmp)).unwrap();
    // Crash before the commit point: a temporary file no manifest names.
    let orphan = dir.path().join("silver/events/dt=2024-11-22/hour=08/part-9999999999-silver.parquet.tmp");
    std::fs::write(&orphan, b"half a file").unwrap();

    drop(agg);
    let (_, report) = Manifest::recover(dir.path()).unwrap();
    assert_eq!((report.published, report.orphans_removed), (1, 1));
    assert!(dir.path().join(&file.path).exists());
    assert!(!orphan.exists());
    let mut agg = aggregator(dir.path(), log.clone()).await;
    assert!(agg.drain().await.unwrap().is_empty());
    assert_eq!(strings(&silver(dir.path()), "event_id"), ["e-1", "e-2"]);
}

/// The case that broke Gold: a later batch brings new sessions (hour 07) of
/// visitors an earlier batch saw first (hour 06), and crashes. Its
/// `dim_users` file for hour 06 and its `sessions` file for hour 07 were
/// both written; the first has the name of a file the last commit
/// published, the second is new. Recovery must publish neither: had it
/// published the first and dropped the second (fixed temporary names did),
/// the rerun would add the new sessions to visitors' rows a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_a_later_commit_leaves_gold_as_a_crash_free_run() {
    let (hour, minute) = (3_600_000, 60_000);
    let early = NOW - 2 * hour + 10 * minute; // 06:10
    let later = NOW - 30 * minute; // 07:30
    let first = || vec![view("e-1", "a-1", early), view("e-2", "a-2", early + minute), view("e-3", "a-3", early)];
    let second = || vec![view("e-4", "a-1", later), view("e-5", "a-2", later + minute), view("e-6", "a-4", later)];

    let reference = temp_dir("crash-gold-reference");
    let log = Arc::new(EmbeddedLog::open(&reference.path().join("log"), 1).unwrap());
    send(&log, first()).await;
    crashing_aggregator(reference.path(), log.clone(), 100, None).await.drain().await.unwrap();
    send(&log, second()).await;
    crashing_aggregator(reference.path(), log.clone(), 100, None).await.drain().await.unwrap();
    let expected = gold_tables(reference.path());
    assert!(expected.iter().any(|(t, _)| t.name() == "dim_users"));

    for point in [
        CrashPoint::SilverWritten,
        CrashPoint::GoldWritten,
        CrashPoint::ManifestWritten,
        CrashPoint::FirstFilePublished,
    ] {
        let dir = temp_dir("crash-gold");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
        send(&log, first()).await;
        crashing_aggregator(dir.path(), log.clone(), 100, None).await.drain().await.unwrap();
        send(&log, second()).await;
        let mut agg = crashing_aggregator(dir.path(), log.clone(), 100, Some(point)).await;
        assert!(agg.step().await.is_err(), "{point:?}");
        drop(agg);
        crashing_aggregator(dir.path(), log.clone(), 100, None).await.drain().await.unwrap();
        assert_eq!(strings(&silver(dir.path()), "event_id"), ["e-1", "e-2", "e-3", "e-4", "e-5", "e-6"]);
        assert_same_gold(&gold_tables(dir.path()), &expected, &format!("{point:?}"));
    }
}

/// Events are accepted 7 days late, ids are remembered 48 hours: a retry
/// of a stored event after that must still find its first arrival, in
/// Silver, also after a restart has reloaded only the last 48 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_at_any_lateness_is_written_once() {
    let dir = temp_dir("late-retry");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    let clock = Arc::new(FixedClock::new(NOW));
    let open = |clock: Arc<FixedClock>| {
        let (dir, log) = (dir.path().to_path_buf(), log.clone());
        async move {
            let config = AggregateConfig::new(&dir);
            Aggregator::open(log, config, Arc::new(Metrics::new()), clock).await.unwrap()
        }
    };
    let (minute, hour) = (60_000, 3_600_000);
    let mut agg = open(clock.clone()).await;
    send_at(&log, vec![view("e-1", "a-1", NOW)], NOW).await;
    agg.drain().await.unwrap();

    let later = [("1 min", minute), ("47 h", 47 * hour), ("49 h", 49 * hour), ("6 days", 6 * 24 * hour)];
    for (i, (what, after)) in later.into_iter().enumerate() {
        let at = NOW + after;
        clock.set(at);
        if what == "6 days" {
            // A restart reloads only the ids of the last 48 hours.
            drop(agg);
            agg = open(clock.clone()).await;
        }
        // A new event first: its commit forgets the ids older than 48 h.
        send_at(&log, vec![view(&format!("n-{i}"), "a-1", at)], at).await;
        assert_eq!(agg.drain().await.unwrap().silver_rows, 1);
        send_at(&log, vec![view("e-1", "a-1", NOW)], at).await;
        let report = agg.drain().await.unwrap();
        assert_eq!((report.bronze_rows, report.silver_rows, report.duplicates), (1, 0, 1), "a retry {what} later");
    }
    let ids = strings(&silver(dir.path()), "event_id");
    assert_eq!(ids, ["e-1", "n-0", "n-1", "n-2", "n-3"], "one row per event");
}

/// A record damaged on disk (bytes flipped in the log file) must not stop
/// the partition: after a restart it is quarantined in rejects with its
/// position, and every other event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_damaged_on_disk_is_quarantined_and_the_other_events_arrive() {
    let dir = temp_dir("damaged");
    let log_dir = dir.path().join("log");
    {
        let log = Arc::new(EmbeddedLog::open(&log_dir, 2).unwrap());
        send(&log, vec![view("e-1", "a-1", NOW), view("e-2", "a-2", NOW)]).await;
        send(&log, vec![view("e-flip-me-7", "a-1", NOW)]).await;
        send(&log, vec![view("e-3", "a-1", NOW), view("e-4", "a-2", NOW)]).await;
    }
    // Flip a letter of the event id wherever the log's files hold it.
    let mut flipped = 0;
    for file in std::fs::read_dir(&log_dir).unwrap().map(|e| e.unwrap().path()) {
        if !clickstream_backend::stream::is_log_file(&file) {
            continue;
        }
        let mut bytes = std::fs::read(&file).unwrap();
        let needle = b"e-flip-me-7";
        for at in 0..bytes.len() - needle.len() {
            if &bytes[at..at + needle.len()] == needle {
                bytes[at + 2] ^= 0x20;
                flipped += 1;
            }
        }
        std::fs::write(&file, bytes).unwrap();
    }
    assert!(flipped > 0, "the record is in the log's files");

    let metrics = Arc::new(Metrics::new());
    let log = Arc::new(EmbeddedLog::open(&log_dir, 2).unwrap());
    let mut agg =
        Aggregator::open(log, AggregateConfig::new(dir.path()), metrics.clone(), Arc::new(FixedClock::new(NOW)))
            .await
            .unwrap();
    let report = agg.drain().await.unwrap();
    assert_eq!(report.corrupt_records, 1);
    assert_eq!(strings(&silver(dir.path()), "event_id"), ["e-1", "e-2", "e-3", "e-4"]);
    let rejects = scan_table(dir.path(), Table::Rejects).unwrap().collect().unwrap();
    assert_eq!(strings(&rejects, "reason"), ["corrupt_record"]);
    let detail = &strings(&rejects, "detail")[0];
    assert!(detail.contains("partition") && detail.contains("offset") && detail.contains("checksum"), "{detail}");
    assert!(metrics.render().contains("clickstream_corrupt_records_total 1"));
}

/// A panic inside a micro-batch, before or after its commit point, leaves
/// neither a half-alive aggregator nor forgotten dedup ids: the same
/// aggregator's next step starts again from the last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_micro_batch_restarts_it_from_the_last_commit() {
    for point in [CrashPoint::SilverWritten, CrashPoint::GoldWritten, CrashPoint::ManifestWritten] {
        let dir = temp_dir("panic");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
        send(&log, vec![view("e-1", "a-1", NOW)]).await;
        aggregator(dir.path(), log.clone()).await.drain().await.unwrap();

        let mut config = AggregateConfig::new(dir.path());
        config.panic_once_at = Some(point);
        let metrics = Arc::new(Metrics::new());
        let mut agg =
            Aggregator::open(log.clone(), config, metrics.clone(), Arc::new(FixedClock::new(NOW))).await.unwrap();
        // A retry of e-1 and a new event, in the batch that panics.
        send(&log, vec![view("e-1", "a-1", NOW), view("e-2", "a-1", NOW)]).await;
        let failed = agg.step().await.expect_err("the batch panicked");
        assert!(failed.to_string().contains("panicked"), "{failed}");
        let report = agg.drain().await.unwrap();
        assert!(report.duplicates <= 1, "{point:?}: {report:?}");
        assert_eq!(strings(&silver(dir.path()), "event_id"), ["e-1", "e-2"], "{point:?}: each event once");
        assert_eq!(agg.remembered_ids(), 2, "{point:?}: the dedup ids are back in memory");
        assert!(metrics.render().contains("clickstream_commit_failures_total 1"), "{point:?}");
    }
}

fn traffic_row(dir: &std::path::Path, window_start: i64) -> Option<(u32, u32, bool)> {
    use clickstream_backend::gold::{refresh, GoldTable};
    let df = refresh::scan(dir, GoldTable::Traffic1m)
        .unwrap()
        .filter(col("window_start").cast(DataType::Int64).eq(lit(window_start)))
        .collect()
        .unwrap();
    if df.height() == 0 {
        return None;
    }
    assert_eq!(df.height(), 1, "one row per window");
    let u = |c: &str| df.column(c).unwrap().cast(&DataType::UInt32).unwrap().u32().unwrap().get(0).unwrap();
    Some((u("events"), u("active_users"), df.column("is_final").unwrap().bool().unwrap().get(0).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_updates_its_final_window_and_one_beyond_the_horizon_is_rejected() {
    let dir = temp_dir("late");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    let minute = 60_000;
    let early = NOW - 3 * 3_600_000; // 05:00:00
    send(&log, vec![view("e-1", "a-1", early), view("e-2", "a-2", NOW)]).await;
    let mut agg = aggregator(dir.path(), log.clone()).await;
    agg.drain().await.unwrap();
    // The watermark (08:00 − 10 min) passed 05:00's window, not 08:00's.
    assert_eq!(traffic_row(dir.path(), early), Some((1, 1, true)));
    assert_eq!(traffic_row(dir.path(), NOW), Some((1, 1, false)));
    assert_eq!(Manifest::load(dir.path()).unwrap().max_event_ts, Some(NOW));

    // Three hours late, after its window was final: the window is
    // recomputed and stays final. A retry of it changes nothing.
    send(&log, vec![view("e-3", "a-3", early + 5_000)]).await;
    agg.drain().await.unwrap();
    assert_eq!(traffic_row(dir.path(), early), Some((2, 2, true)));
    send(&log, vec![view("e-3", "a-3", early + 5_000)]).await;
    agg.drain().await.unwrap();
    assert_eq!(traffic_row(dir.path(), early), Some((2, 2, true)));
    // The hour's file was replaced, not added to.
    let day_dir = dir.path().join("gold/traffic_1m/dt=2024-11-22");
    let mut files: Vec<_> = std::fs::read_dir(&day_dir).unwrap().flatten().map(|e| e.file_name()).collect();
    files.sort();
    assert_eq!(files, ["part-05.parquet", "part-08.parquet"].map(std::ffi::OsString::from));

    // Beyond the 7-day horizon: rejected as too_late at the edge, Gold untouched.
    send(&log, vec![view("e-old", "a-4", NOW - 8 * 24 * 3_600_000)]).await;
    agg.drain().await.unwrap();
    let rejects = scan_table(dir.path(), Table::Rejects).unwrap().collect().unwrap();
    assert_eq!(strings(&rejects, "reason"), ["too_late"]);
    assert_eq!(traffic_row(dir.path(), NOW - 8 * 24 * 3_600_000 - (NOW % minute)), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_with_json_records_reads_as_the_binary_one_does() {
    use clickstream_backend::stream::{Record, Topic};

    // The same events, once as the JSON records logs held before the
    // binary record, once as today's records: Silver is the same.
    let events: Vec<serde_json::Value> =
        (0..6).map(|i| view(&format!("e-{i}"), &format!("v-{}", i % 2), NOW - i * 60_000)).collect();
    let body = json!({"v": 1, "site_id": "shop-1", "sent_at": NOW, "events": events}).to_string();
    let meta = RequestMeta { received_at: NOW, ..Default::default() };
    let out = collect(body.as_bytes(), &meta, &CollectConfig::new("k", "backend")).unwrap();
    let binary = crate::support::records(&out);
    let version = clickstream_schema::record::RECORD_VERSION;
    assert!(binary.iter().all(|r| r.value.first() == Some(&version)), "today's event records are binary");
    let json: Vec<Record> = out
        .accepted
        .iter()
        .map(|e| Record {
            topic: Topic::Events,
            key: e.anonymous_id.as_bytes().to_vec(),
            value: serde_json::to_vec(e).unwrap(),
        })
        .collect();

    let mut silver = Vec::new();
    for records in [json, binary] {
        let dir = temp_dir("record-format");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
        log.produce(records).await.unwrap();
        let mut agg = Aggregator::open(
            log,
            AggregateConfig::new(dir.path()),
            Arc::new(Metrics::new()),
            Arc::new(FixedClock::new(NOW)),
        )
        .await
        .unwrap();
        let step = agg.drain().await.unwrap();
        assert_eq!((step.silver_rows, step.reject_rows), (6, 0), "{step:?}");
        let df = scan_table(dir.path(), Table::Silver).unwrap().collect().unwrap();
        silver.push(df.sort(["event_id"], SortMultipleOptions::default()).unwrap());
    }
    assert!(silver[0].equals_missing(&silver[1]), "{}\n{}", silver[0], silver[1]);
}
