//! The data's lifecycle on a real data directory: compaction of final
//! partitions (while readers keep reading).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clickstream_backend::aggregate::dedup::scan_table;
use clickstream_backend::aggregate::{AggregateConfig, Aggregator};
use clickstream_backend::clock::FixedClock;
use clickstream_backend::metrics::Metrics;
use clickstream_backend::storage::commit::{Commit, Manifest};
use clickstream_backend::storage::layout::parquet_files;
use clickstream_backend::storage::scan::{retry_on_swap, scan_files};
use clickstream_backend::storage::{Table, TableDir};
use clickstream_backend::stream::{EmbeddedLog, EventStream};
use clickstream_schema::RequestMeta;
use edge_worker::{collect, CollectConfig};
use polars::prelude::*;
use serde_json::json;

use crate::support::{assert_same_gold, gold_tables, temp_dir};

// 2024-11-22T08:00:00Z
pub(crate) const NOW: i64 = 1_732_262_400_000;
pub(crate) const MINUTE: i64 = 60_000;
pub(crate) const HOUR: i64 = 60 * MINUTE;

pub(crate) async fn send(log: &EmbeddedLog, events: Vec<serde_json::Value>) {
    let body = json!({"v": 1, "site_id": "shop-1", "sent_at": NOW, "events": events}).to_string();
    let meta = RequestMeta {
        received_at: NOW,
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36".into(),
        ),
        ..Default::default()
    };
    let out = collect(body.as_bytes(), &meta, &CollectConfig::new("k", "backend")).unwrap();
    log.produce(crate::support::records(&out)).await.unwrap();
}

/// Views of 12 visitors from 05:00 to 07:55 (hours 05, 06, 07), a cart add
/// each, and one bad row.
pub(crate) fn traffic() -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for v in 0..12 {
        for k in 0..5 {
            let ts = NOW - 3 * HOUR + v * 14 * MINUTE + k * MINUTE;
            let id = format!("e-{v}-{k}");
            let page = json!({"url": format!("https://shop.example/p/{}", v % 4), "path": format!("/p/{}", v % 4)});
            events.push(if k == 4 {
                json!({"event_id": id, "event_type": "add_to_cart", "ts": ts, "anonymous_id": format!("a-{v}"), "session_id": "s",
                       "page": page, "props": {"product_id": format!("p-{}", v % 4), "price": 5.0, "quantity": 1, "currency": "EUR"}})
            } else {
                json!({"event_id": id, "event_type": "page_view", "ts": ts, "anonymous_id": format!("a-{v}"), "session_id": "s", "page": page})
            });
        }
    }
    events.push(json!({"event_type": "click"}));
    events
}

/// A table's rows, sorted, for comparing before and after.
pub(crate) fn rows(dir: &Path, table: Table) -> DataFrame {
    let df = scan_table(dir, table).unwrap().collect().unwrap();
    let names: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
    df.sort(names, SortMultipleOptions::default()).unwrap()
}

fn files_per_partition(dir: &Path, table: Table) -> Vec<usize> {
    let mut counts = std::collections::BTreeMap::new();
    for f in parquet_files(&dir.join(table.dir())) {
        *counts.entry(f.parent().unwrap().to_path_buf()).or_insert(0) += 1;
    }
    counts.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_leaves_one_file_per_final_partition_and_every_table_as_it_was() {
    let dir = temp_dir("compact");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    for chunk in traffic().chunks(7) {
        send(&log, chunk.to_vec()).await;
    }
    let clock = Arc::new(FixedClock::new(NOW));
    let mut config = AggregateConfig::new(dir.path());
    config.max_records_per_partition = 4; // many micro-batches, many small files
    let mut agg = Aggregator::open(log.clone(), config.clone(), Arc::new(Metrics::new()), clock.clone()).await.unwrap();
    agg.drain().await.unwrap();

    let tables = [Table::Bronze, Table::Silver, Table::Rejects];
    let before: Vec<DataFrame> = tables.iter().map(|t| rows(dir.path(), *t)).collect();
    let gold_before = gold_tables(dir.path());
    let silver_files = files_per_partition(dir.path(), Table::Silver);
    assert_eq!(silver_files.len(), 3, "hours 05, 06 and 07");
    assert!(silver_files.iter().all(|n| *n > 2), "{silver_files:?}");

    // A reader counting Silver the whole time never sees a partition twice
    // or not at all. A read that listed a partition just before its swap
    // finds a listed file gone and is run again, as queries and the
    // dashboard's reads are: none fails.
    let total = before[1].height();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (dir, stop) = (dir.path().to_path_buf(), stop.clone());
        move || {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let df = retry_on_swap(&dir, || scan_table(&dir, Table::Silver)?.collect()).unwrap();
                assert_eq!(df.height(), total, "a reader saw Silver with {} rows during compaction", df.height());
                reads += 1;
            }
            reads
        }
    });

    // The next day: every arrival partition is final; of Silver, the hours
    // the watermark (07:59 − 10 min) has passed: 05 and 06.
    clock.set(NOW + 24 * HOUR);
    let report = agg.compact().await.unwrap().expect("one aggregator of the whole directory compacts");
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(report.files_after, report.partitions);
    assert!(report.files_before > report.partitions * 2, "{report:?}");
    assert_eq!(report.skipped, 1, "Silver's hour 07 is not final yet");
    assert!(files_per_partition(dir.path(), Table::Bronze).iter().all(|n| *n == 1));
    assert!(files_per_partition(dir.path(), Table::Rejects).iter().all(|n| *n == 1));
    let silver_after = files_per_partition(dir.path(), Table::Silver);
    assert_eq!(&silver_after[..2], [1, 1]);
    assert_eq!(silver_after[2], silver_files[2]);

    for (table, was) in tables.iter().zip(&before) {
        assert!(rows(dir.path(), *table).equals_missing(was), "{table:?} changed");
    }
    assert_same_gold(&gold_tables(dir.path()), &gold_before, "after compaction");

    // Late events land in a compacted hour, and the pipeline goes on: Gold
    // stays what one run over everything gives, and the next round merges
    // the new file in.
    let late = |id: &str, ts: i64| {
        json!({"event_id": id, "event_type": "page_view", "ts": ts, "anonymous_id": "a-late", "session_id": "s",
               "page": {"url": "https://shop.example/", "path": "/"}})
    };
    send(&log, vec![late("late-1", NOW - 3 * HOUR + 30 * MINUTE)]).await;
    clock.set(NOW);
    agg.drain().await.unwrap();
    assert_eq!(files_per_partition(dir.path(), Table::Silver)[0], 2);
    clock.set(NOW + 24 * HOUR);
    agg.compact().await.unwrap();
    assert_eq!(files_per_partition(dir.path(), Table::Silver)[0], 1);
    assert_eq!(rows(dir.path(), Table::Silver).height(), total + 1);

    // A reference directory fed the same events in one go, never compacted.
    let reference = temp_dir("compact-reference");
    let ref_log = Arc::new(EmbeddedLog::open(&reference.path().join("log"), 2).unwrap());
    for chunk in traffic().chunks(7) {
        send(&ref_log, chunk.to_vec()).await;
    }
    send(&ref_log, vec![late("late-1", NOW - 3 * HOUR + 30 * MINUTE)]).await;
    Aggregator::open(
        ref_log,
        AggregateConfig::new(reference.path()),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(NOW)),
    )
    .await
    .unwrap()
    .drain()
    .await
    .unwrap();
    assert_same_gold(&gold_tables(dir.path()), &gold_tables(reference.path()), "compacted vs never compacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_cut_short_is_cleaned_up_at_the_next_start() {
    let dir = temp_dir("compact-crash");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    send(&log, traffic()).await;
    let config = AggregateConfig::new(dir.path());
    let clock = Arc::new(FixedClock::new(NOW));
    Aggregator::open(log.clone(), config.clone(), Arc::new(Metrics::new()), clock.clone())
        .await
        .unwrap()
        .drain()
        .await
        .unwrap();
    let before = rows(dir.path(), Table::Silver);
    // What a crash leaves: a staging directory holding a merged file that
    // was never swapped in.
    let staging = dir.path().join("_state/compact/staging-1-crashed");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("part-0000000001-silver-compacted.parquet"), b"half a file").unwrap();
    let mut agg = Aggregator::open(log, config, Arc::new(Metrics::new()), clock).await.unwrap();
    assert!(!staging.exists(), "recovery removed the staging directory");
    assert!(rows(dir.path(), Table::Silver).equals_missing(&before));
    assert!(agg.drain().await.unwrap().is_empty());
}

/// A batch received (and sent) at `at`.
async fn send_at(log: &EmbeddedLog, events: Vec<serde_json::Value>, at: i64) {
    let body = json!({"v": 1, "site_id": "shop-1", "sent_at": at, "events": events}).to_string();
    let meta = RequestMeta {
        received_at: at,
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36".into(),
        ),
        ..Default::default()
    };
    let out = collect(body.as_bytes(), &meta, &CollectConfig::new("k", "backend")).unwrap();
    log.produce(crate::support::records(&out)).await.unwrap();
}

fn days(dir: &Path, table_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join(table_dir)) else { return Vec::new() };
    let mut out: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_whole_expired_days_of_each_layer_and_nothing_else() {
    use clickstream_backend::gold::GoldTable;
    use clickstream_backend::storage::retention::Retention;

    let dir = temp_dir("retention");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    let old = NOW - 12 * 24 * HOUR; // 2024-11-10
    let view = |id: &str, ts: i64| {
        json!({"event_id": id, "event_type": "page_view", "ts": ts, "anonymous_id": id, "session_id": "s",
               "page": {"url": "https://shop.example/", "path": "/"}})
    };
    send_at(&log, vec![view("old-1", old), view("old-2", old + MINUTE), json!({"event_type": "click"})], old).await;
    send_at(&log, vec![view("new-1", NOW), json!({"event_type": "click"})], NOW).await;
    let clock = Arc::new(FixedClock::new(NOW));
    let mut config = AggregateConfig::new(dir.path());
    config.retention = Retention { bronze_days: Some(5), silver_days: Some(8), rejects_days: Some(5), gold_days: None };
    let mut agg = Aggregator::open(log.clone(), config, Arc::new(Metrics::new()), clock.clone()).await.unwrap();
    agg.drain().await.unwrap();
    for table in [Table::Bronze.dir(), Table::Silver.dir(), Table::Rejects.dir(), GoldTable::Traffic1m.dir()] {
        assert_eq!(days(dir.path(), &table), ["dt=2024-11-10", "dt=2024-11-22"], "{table:?} before");
    }
    let gold_before = gold_tables(dir.path());

    let done = agg.maintain().await.unwrap();
    assert_eq!(done.expired.total_days(), 3, "{:?}", done.expired);
    for table in [Table::Bronze.dir(), Table::Silver.dir(), Table::Rejects.dir()] {
        assert_eq!(days(dir.path(), &table), ["dt=2024-11-22"], "{table:?} after");
    }
    assert_eq!(strings(&rows(dir.path(), Table::Silver), "event_id"), ["new-1"]);
    // Gold is kept forever here: untouched.
    assert_same_gold(&gold_tables(dir.path()), &gold_before, "Gold without a limit");

    // The removed days stay readable for the grace period, then go.
    let retired =
        || days(dir.path(), Path::new("_state/compact")).into_iter().filter(|d| d.starts_with("retired-")).count();
    assert_eq!(retired(), 3);
    clock.set(NOW + 11 * MINUTE);
    agg.maintain().await.unwrap();
    assert_eq!(retired(), 0);
}

fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name).unwrap().str().unwrap().iter().map(|s| s.unwrap_or("").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_trimmed_below_every_consumers_position_never_above() {
    use clickstream_backend::stream::{Record, Topic};

    let dir = temp_dir("trim");
    let log = EmbeddedLog::open(&dir.path().join("log"), 2).unwrap();
    // Ten records in partition 0 and three in partition 1, one produce each
    // so entries are small.
    let key_of = |p: u32| {
        (0..)
            .map(|i| format!("k-{i}"))
            .find(|k| clickstream_backend::stream::partition_for(k.as_bytes(), 2) == p)
            .unwrap()
    };
    let (k0, k1) = (key_of(0), key_of(1));
    for i in 0..10 {
        log.produce(vec![Record {
            topic: Topic::Events,
            key: k0.clone().into_bytes(),
            value: format!("r{i}").into_bytes(),
        }])
        .await
        .unwrap();
    }
    for i in 0..3 {
        log.produce(vec![Record {
            topic: Topic::Events,
            key: k1.clone().into_bytes(),
            value: format!("s{i}").into_bytes(),
        }])
        .await
        .unwrap();
    }
    let offsets =
        |fetched: Vec<clickstream_backend::stream::Fetched>| fetched.iter().map(|f| f.offset).collect::<Vec<_>>();

    // Nobody committed: nothing goes.
    assert_eq!(log.trim_committed().await.unwrap(), 0);
    // Two groups at 7 and 4 in partition 0; none in partition 1.
    log.commit("a", Topic::Events, 0, 7).await.unwrap();
    log.commit("b", Topic::Events, 0, 4).await.unwrap();
    assert_eq!(log.trim_committed().await.unwrap(), 4);
    assert_eq!(offsets(log.fetch(Topic::Events, 0, 0, 100).await.unwrap()), (4..10).collect::<Vec<_>>());
    assert_eq!(offsets(log.fetch(Topic::Events, 1, 0, 100).await.unwrap()), [0, 1, 2], "no group read partition 1");
    // b catches up past a: the lower one, a, now bounds the trim.
    log.commit("b", Topic::Events, 0, 10).await.unwrap();
    assert_eq!(log.trim_committed().await.unwrap(), 3);
    let left = log.fetch(Topic::Events, 0, 0, 100).await.unwrap();
    assert_eq!(offsets(left.clone()), [7, 8, 9], "what a has not read stays");
    assert_eq!(&left[0].value[..], b"r7");
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 10, "new records keep fresh offsets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_trims_the_log_to_what_the_aggregator_committed() {
    use clickstream_backend::stream::Topic;

    let dir = temp_dir("trim-aggregator");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 1).unwrap());
    send(&log, traffic()).await;
    let mut agg = Aggregator::open(
        log.clone(),
        AggregateConfig::new(dir.path()),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(NOW)),
    )
    .await
    .unwrap();
    agg.drain().await.unwrap();
    let end = log.end_offset(Topic::Events, 0).await.unwrap();
    let done = agg.maintain().await.unwrap();
    assert_eq!(done.log_trimmed, end + 1, "every event record and the one reject record");
    assert!(log.fetch(Topic::Events, 0, 0, 10).await.unwrap().is_empty());
    // Records produced after the trim are read as usual.
    send(
        &log,
        vec![json!({"event_id": "after", "event_type": "page_view", "ts": NOW, "anonymous_id": "a", "session_id": "s",
                           "page": {"url": "https://shop.example/", "path": "/"}})],
    )
    .await;
    assert_eq!(agg.drain().await.unwrap().silver_rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gold_rebuild_finds_no_difference_until_a_gold_file_is_tampered_with() {
    use clickstream_backend::gold::rebuild::{default_scratch, rebuild_and_compare};
    use clickstream_backend::gold::{GoldConfig, GoldTable};

    let dir = temp_dir("rebuild");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    for chunk in traffic().chunks(7) {
        send(&log, chunk.to_vec()).await;
    }
    let clock = Arc::new(FixedClock::new(NOW));
    let mut config = AggregateConfig::new(dir.path());
    config.max_records_per_partition = 4; // many incremental refreshes
    let mut agg = Aggregator::open(log.clone(), config, Arc::new(Metrics::new()), clock.clone()).await.unwrap();
    agg.drain().await.unwrap();
    // Rebuilt from compacted Silver too: the files differ, the rows do not.
    clock.set(NOW + 24 * HOUR);
    agg.compact().await.unwrap();
    drop(agg);

    let scratch = default_scratch(dir.path());
    let gold = GoldConfig::default();
    let report = rebuild_and_compare(dir.path(), &scratch, &gold, &mut |_, _| {}).unwrap();
    assert_eq!(report.differing_tables(), 0, "{:#?}", report.tables);
    assert_eq!(report.linked, report.silver_files, "the scratch directory is on the same file system");
    let sessions = report.tables.iter().find(|t| t.table == GoldTable::Sessions).unwrap();
    assert_eq!((sessions.live_rows, sessions.rebuilt_rows), (12, 12));
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_clickstream"))
            .args(["gold", "--rebuild", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("every Gold table equals its rebuild"));
    assert!(!scratch.exists(), "the scratch directory is removed unless --keep");

    // One hour of sessions gone from the live Gold, one traffic row changed.
    let sessions_file = parquet_files(&dir.path().join(GoldTable::Sessions.dir())).remove(0);
    std::fs::remove_file(&sessions_file).unwrap();
    let traffic_file = parquet_files(&dir.path().join(GoldTable::Traffic1m.dir())).remove(0);
    let mut df = LazyFrame::scan_parquet(PlRefPath::new(traffic_file.display().to_string()), Default::default())
        .unwrap()
        .collect()
        .unwrap();
    let mut events: Vec<Option<u32>> = df.column("events").unwrap().u32().unwrap().iter().collect();
    events[0] = events[0].map(|n| n + 1);
    df.with_column(Column::new("events".into(), events)).unwrap();
    ParquetWriter::new(std::fs::File::create(&traffic_file).unwrap()).finish(&mut df).unwrap();

    let report = rebuild_and_compare(dir.path(), &scratch, &gold, &mut |_, _| {}).unwrap();
    let differing: Vec<_> = report.tables.iter().filter(|t| t.differs()).map(|t| t.table).collect();
    assert_eq!(differing, [GoldTable::Traffic1m, GoldTable::Sessions]);
    let traffic = &report.tables[0];
    assert_eq!((traffic.only_live, traffic.only_rebuilt), (1, 1), "the changed row, before and after");
    assert_eq!(traffic.live_rows, traffic.rebuilt_rows);
    let sessions = report.tables.iter().find(|t| t.table == GoldTable::Sessions).unwrap();
    assert_eq!(sessions.only_live, 0);
    assert_eq!(sessions.only_rebuilt, sessions.rebuilt_rows - sessions.live_rows);
    assert!(sessions.only_rebuilt > 0);
    let out = cli(&["--keep"]);
    assert!(!out.status.success(), "a difference is a failure");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("sessions") && l.ends_with("DIFFERS")), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 Gold tables differ"));
    assert!(scratch.join("gold").exists(), "--keep keeps the rebuild");

    // Without Silver there is nothing to rebuild from: a clear refusal.
    let empty = temp_dir("rebuild-empty");
    let err = rebuild_and_compare(empty.path(), &default_scratch(empty.path()), &gold, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("no Silver files"), "{err}");
}

/// Writes `rows` rows to `path` as the Gold build replaces an hour: a whole
/// new file renamed over the old one.
/// Publishes a Gold-like hour file of `rows` rows in commit `seq`, the way
/// the Gold build replaces an hour.
fn replace_hour(data_dir: &Path, seq: u64, rows: usize) {
    let mut df = df!("n" => (0..rows as i64).collect::<Vec<_>>(), "page" => vec!["/home"; rows]).unwrap();
    let mut commit = Commit::new(data_dir, seq);
    commit.write_parquet_at(Path::new("gold/t/dt=2026-11-22/part-17.parquet"), &mut df).unwrap();
    commit.commit(Manifest::default(), 0).unwrap();
}

#[test]
fn a_gold_hour_replaced_during_reads_is_seen_whole_by_every_read() {
    // The dashboard once failed with "Invalid thrift: bad data": its query
    // read an hour's footer while planning, the Gold build replaced the
    // file, and the query read the new bytes at the old offsets (which
    // Polars may also read out of bounds). Reads now hold the files in
    // place, and a commit that replaces one waits for them.
    let dir = temp_dir("replaced");
    let data_dir = dir.path().to_path_buf();
    let path = data_dir.join("gold/t/dt=2026-11-22/part-17.parquet");
    replace_hour(&data_dir, 1, 10);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (data_dir, stop) = (data_dir.clone(), stop.clone());
        move || {
            let mut seq = 1;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                replace_hour(&data_dir, seq, if seq % 2 == 0 { 5000 } else { 10 });
            }
            seq - 1
        }
    });
    for _ in 0..300 {
        let df = retry_on_swap(&data_dir, || scan_files(std::slice::from_ref(&path))?.expect("one file").collect())
            .expect("no read fails while its file is replaced");
        assert!(df.height() == 10 || df.height() == 5000, "a read saw {} rows", df.height());
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0, "the file was replaced during the reads");
}
