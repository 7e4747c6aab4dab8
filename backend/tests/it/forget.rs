//! Forgetting a person (`clickstream forget`) on a real data directory:
//! afterwards no file anywhere holds their ids, Gold equals a rebuild from
//! Silver, and neither the log nor a replay brings them back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clickstream_backend::aggregate::{AggregateConfig, Aggregator};
use clickstream_backend::clock::FixedClock;
use clickstream_backend::forget::{audit_path, forget, ForgetRequest, Subject};
use clickstream_backend::gold::rebuild::rebuild_and_compare;
use clickstream_backend::gold::GoldConfig;
use clickstream_backend::metrics::Metrics;
use clickstream_backend::storage::Table;
use clickstream_backend::stream::EmbeddedLog;
use polars::prelude::*;
use serde_json::json;

use crate::lifecycle::{rows, send, traffic, HOUR, MINUTE, NOW};
use crate::support::temp_dir;

const VISITOR: &str = "anon-forget-me-7f3c";
const SECOND_DEVICE: &str = "anon-other-device-88e1";
const USER: &str = "user-forget-me-19d2";

fn event(id: &str, anon: &str, user: Option<&str>, ts: i64) -> serde_json::Value {
    let mut e = json!({"event_id": id, "event_type": "page_view", "ts": ts, "anonymous_id": anon, "session_id": "s",
                       "page": {"url": "https://shop.example/p/1", "path": "/p/1"}});
    if let Some(user) = user {
        e["user_id"] = json!(user);
    }
    e
}

/// The person's traffic: views on a first device, signing in there, then
/// on a second device signed in, and an event too broken to keep.
fn their_events() -> Vec<serde_json::Value> {
    let start = NOW - 3 * HOUR + 20 * MINUTE;
    vec![
        event("p-1", VISITOR, None, start),
        event("p-2", VISITOR, None, start + MINUTE),
        event("p-3", VISITOR, Some(USER), start + 2 * MINUTE),
        event("p-4", SECOND_DEVICE, Some(USER), start + HOUR),
        event("p-5", SECOND_DEVICE, None, start + HOUR + MINUTE),
        json!({"event_id": "p-bad", "anonymous_id": VISITOR, "ts": start + 3 * MINUTE}),
    ]
}

fn every_file(dir: &Path) -> Vec<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut out = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Every file under `dir` that holds `id`: Parquet files by their decoded
/// text columns (their pages are compressed), the embedded log by its bytes
/// and its decoded records (its chunks are compressed), others by their bytes.
fn files_holding(dir: &Path, id: &str) -> Vec<PathBuf> {
    every_file(dir)
        .into_iter()
        .filter(|path| {
            if path.extension().is_some_and(|x| x == "parquet") {
                let df = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
                df.columns()
                    .iter()
                    .filter(|c| c.dtype() == &DataType::String)
                    .any(|c| c.str().unwrap().iter().flatten().any(|v| v.contains(id)))
            } else {
                let bytes = std::fs::read(path).unwrap();
                let holds = |bytes: &[u8]| bytes.windows(id.len()).any(|w| w == id.as_bytes());
                let mut in_records = false;
                if clickstream_backend::stream::is_log_file(path) {
                    clickstream_backend::stream::visit_records(path.parent().unwrap(), &mut |_, value| {
                        in_records |= holds(value);
                    })
                    .unwrap();
                }
                in_records || holds(&bytes)
            }
        })
        .collect()
}

fn anonymous_ids(dir: &Path) -> Vec<String> {
    let df = rows(dir, Table::Silver);
    df.column("anonymous_id").unwrap().str().unwrap().iter().flatten().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_visitor_leaves_no_trace_and_gold_is_as_rebuilt() {
    let dir = temp_dir("forget");
    let log_dir = dir.path().join("log");
    let clock = Arc::new(FixedClock::new(NOW));
    let mut config = AggregateConfig::new(dir.path());
    config.max_records_per_partition = 5; // several files per partition
    {
        let log = Arc::new(EmbeddedLog::open(&log_dir, 2).unwrap());
        let mut traffic = traffic();
        traffic.extend(their_events());
        for chunk in traffic.chunks(9) {
            send(&log, chunk.to_vec()).await;
        }
        let mut agg =
            Aggregator::open(log.clone(), config.clone(), Arc::new(Metrics::new()), clock.clone()).await.unwrap();
        agg.drain().await.unwrap();
        // A compaction keeps the files it replaced as a safety copy for a
        // while: the person is in those too.
        clock.set(NOW + 24 * HOUR);
        agg.compact().await.unwrap().unwrap();
        clock.set(NOW);
        // Not aggregated yet when the request comes: in the log only.
        send(
            &log,
            vec![event("p-6", SECOND_DEVICE, None, NOW - 5 * MINUTE), event("o-1", "a-other", None, NOW - 5 * MINUTE)],
        )
        .await;
    }
    std::fs::write(
        dir.path().join("_state/alerts.log"),
        format!("{{\"rule\":\"bots\",\"visitors\":\"{VISITOR}, a-3\"}}\n"),
    )
    .unwrap();
    for id in [VISITOR, SECOND_DEVICE, USER] {
        assert!(!files_holding(dir.path(), id).is_empty(), "the person's {id} is in the data before");
    }
    let silver_before = rows(dir.path(), Table::Silver).height();

    let request = ForgetRequest { site_id: "shop-1".into(), subject: Subject::Visitor(VISITOR.into()) };
    let report = forget(&config, &request, NOW).unwrap();
    assert_eq!((report.anonymous_ids, report.user_ids), (2, 1), "the visitor signed in: their other device goes too");
    assert_eq!(report.rows_removed["silver"], 5, "{report}");
    assert_eq!(report.rows_removed["bronze"], 5, "{report}");
    assert_eq!(report.rows_removed["rejects"], 1, "{report}");
    assert_eq!(report.log_records_forgotten, 7, "six events (one unread) and the bad row: {report}");
    assert_eq!(report.alert_lines_redacted, 1);
    assert!(report.retired_copies_removed > 0);
    assert_eq!(rows(dir.path(), Table::Silver).height(), silver_before - 5);

    for id in [VISITOR, SECOND_DEVICE, USER] {
        assert_eq!(files_holding(dir.path(), id), Vec::<PathBuf>::new(), "files still holding {id}");
    }
    let scratch = temp_dir("forget-rebuild");
    let rebuilt = rebuild_and_compare(dir.path(), scratch.path(), &GoldConfig::default(), &mut |_, _| {}).unwrap();
    assert_eq!(rebuilt.differing_tables(), 0, "Gold after forget vs a rebuild: {:?}", rebuilt.tables);
    let audit = std::fs::read_to_string(audit_path(dir.path())).unwrap();
    assert!(audit.contains(&request.fingerprint()), "{audit}");

    // The aggregator reads on: the other visitor's unread event arrives,
    // the person's does not.
    let log = Arc::new(EmbeddedLog::open(&log_dir, 2).unwrap());
    let mut agg = Aggregator::open(log.clone(), config.clone(), Arc::new(Metrics::new()), clock.clone()).await.unwrap();
    assert_eq!(agg.drain().await.unwrap().silver_rows, 1);
    assert!(anonymous_ids(dir.path()).contains(&"a-other".to_string()));

    // A replay of a stream forget could not edit (Fluvio's), days later:
    // the forgotten event ids are not written again.
    clock.set(NOW + 3 * 24 * HOUR);
    send(&log, their_events()).await;
    let step = agg.drain().await.unwrap();
    assert_eq!((step.silver_rows, step.duplicates), (0, 5), "{step:?}");
    assert!(!anonymous_ids(dir.path()).iter().any(|a| a == VISITOR || a == SECOND_DEVICE));
}
