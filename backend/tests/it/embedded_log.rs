//! The embedded log survives `kill -9` of a writer process mid-append.
//!
//! The parent test re-executes this test binary, running only
//! [`writer_child`], which produces records as fast as it can and prints one
//! `ACK` line per record once its `produce` call has returned (that is, once
//! the record is durable). The parent kills the child with SIGKILL while it is
//! appending, reopens the log, and checks that every acknowledged record is
//! there, that every stored record passes its checksum, that offsets are dense,
//! and that each key's records are stored in the order they were produced.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clickstream_backend::stream::{partition_for, EmbeddedLog, EventStream, Record, Topic};

const CHILD_DIR_VAR: &str = "CLICKSTREAM_LOG_CHILD_DIR";
const CHILD_RUN_VAR: &str = "CLICKSTREAM_LOG_CHILD_RUN";
const PARTITIONS: u32 = 4;
const CHILD_TASKS: usize = 6;
const KEYS_PER_TASK: usize = 3;
const RECORDS_PER_BATCH: usize = 10;
/// The child stops by itself after this long, should the parent vanish.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// The parent kills the child at this many acks (varied per run) or after
/// this long, whichever comes first.
const KILL_AFTER_ACKS: usize = 2000;
const KILL_AFTER: Duration = Duration::from_secs(5);
/// How long the parent waits for the child's first ack before giving up.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);
const RUNS: usize = 3;

fn child_key(run: usize, task: usize, key: usize) -> String {
    format!("r{run}-t{task}-k{key}")
}

/// The record payload: the key, the per-key sequence number, and some padding
/// so batches are of a realistic size.
fn child_value(key: &str, seq: u64) -> String {
    format!("{key} {seq} {}", "x".repeat(200))
}

/// Not a real test: does nothing unless started by
/// [`log_survives_kill_9_mid_append`] with the child environment.
#[test]
fn writer_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let run: usize = std::env::var(CHILD_RUN_VAR).ok().and_then(|run| run.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let log = EmbeddedLog::open(Path::new(&dir), PARTITIONS).expect("open log");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..CHILD_TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let keys: Vec<String> = (0..KEYS_PER_TASK).map(|k| child_key(run, task, k)).collect();
                let mut next_seq = [0u64; KEYS_PER_TASK];
                while started.elapsed() < CHILD_LIFETIME {
                    let mut batch = Vec::with_capacity(RECORDS_PER_BATCH);
                    let mut acks = String::new();
                    for i in 0..RECORDS_PER_BATCH {
                        let k = (i + task) % KEYS_PER_TASK;
                        let seq = next_seq[k];
                        next_seq[k] += 1;
                        batch.push(Record {
                            topic: Topic::Events,
                            key: keys[k].as_bytes().to_vec(),
                            value: child_value(&keys[k], seq).into_bytes(),
                        });
                        acks.push_str(&format!("ACK {} {seq} .\n", keys[k]));
                    }
                    if let Err(error) = log.produce(batch).await {
                        eprintln!("child produce failed: {error}");
                        return;
                    }
                    let mut stdout = std::io::stdout().lock();
                    if stdout.write_all(acks.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                        // The parent is gone.
                        return;
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// Parses `ACK <key> <seq> .` lines; anything else (the test harness's own
/// output, a line cut short by the kill) is ignored.
fn parse_ack(line: &str) -> Option<(String, u64)> {
    let line = line.strip_suffix('\n')?;
    let mut parts = line.split(' ');
    if parts.next()? != "ACK" {
        return None;
    }
    let key = parts.next()?.to_string();
    let seq = parts.next()?.parse().ok()?;
    if parts.next()? != "." || parts.next().is_some() {
        return None;
    }
    Some((key, seq))
}

fn unique_temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("clickstream-kill9-{}-{nanos}", std::process::id()))
}

/// Runs one child, kills it mid-append, and returns the (key, seq) it acked.
fn run_and_kill_child(dir: &Path, run: usize) -> Vec<(String, u64)> {
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "embedded_log::writer_child", "--nocapture"])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_RUN_VAR, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");

    // Read on a thread so the parent can wait with a timeout.
    let (lines_tx, lines_rx) = mpsc::channel::<(String, u64)>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(ack) = parse_ack(&line) {
                        if lines_tx.send(ack).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });

    // Vary the kill point between runs so it lands at different moments.
    let kill_at = KILL_AFTER_ACKS + run * 337;
    let mut acked = Vec::new();
    let spawned = Instant::now();
    let mut first_ack_at: Option<Instant> = None;
    while acked.len() < kill_at {
        let deadline = match first_ack_at {
            Some(first) => first + KILL_AFTER,
            None => spawned + FIRST_ACK_TIMEOUT,
        };
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match lines_rx.recv_timeout(left) {
            Ok(ack) => {
                first_ack_at.get_or_insert_with(Instant::now);
                acked.push(ack);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("wait for the child");
    reader.join().expect("reader thread");
    // Lines read before the kill are acks too.
    acked.extend(lines_rx.try_iter());
    assert!(!status.success(), "run {run}: the child finished by itself ({status}) instead of being killed mid-append");
    assert!(!acked.is_empty(), "run {run}: the child acked nothing");
    acked
}

/// Reopens the log and checks it against everything acked so far.
async fn verify(dir: &Path, acked: &BTreeMap<String, u64>, run: usize) {
    let log = EmbeddedLog::open(dir, PARTITIONS).expect("reopen after kill");
    let mut stored: HashMap<String, Vec<u64>> = HashMap::new();
    let mut total = 0usize;
    for partition in 0..PARTITIONS {
        let mut expected_offset = 0u64;
        // Bounded: at most this many fetches of 1000.
        for _ in 0..10_000 {
            let chunk = log
                .fetch(Topic::Events, partition, expected_offset, 1000)
                .await
                .unwrap_or_else(|e| panic!("run {run}: partition {partition}: {e}"));
            if chunk.is_empty() {
                break;
            }
            for record in chunk {
                assert_eq!(record.offset, expected_offset, "run {run}: offsets of partition {partition} are not dense");
                expected_offset += 1;
                let key = String::from_utf8(record.key.to_vec()).expect("utf-8 key");
                assert_eq!(partition_for(&record.key, PARTITIONS), partition);
                let value = String::from_utf8(record.value.to_vec()).expect("utf-8 value");
                let mut parts = value.split(' ');
                assert_eq!(parts.next(), Some(key.as_str()), "value names its key");
                let seq: u64 = parts.next().and_then(|s| s.parse().ok()).expect("seq");
                stored.entry(key).or_default().push(seq);
                total += 1;
            }
        }
        assert_eq!(
            log.end_offset(Topic::Events, partition).await.unwrap(),
            expected_offset,
            "run {run}: end offset of partition {partition}"
        );
    }
    // No rejects were ever produced.
    for partition in 0..PARTITIONS {
        assert!(log.fetch(Topic::Rejects, partition, 0, 10).await.unwrap().is_empty());
    }

    // Per key: exactly 0, 1, 2, ... in offset order (so: stored in the order
    // produced, no duplicates, no holes), and covering every acked seq.
    for (key, seqs) in &stored {
        for (index, seq) in seqs.iter().enumerate() {
            assert_eq!(*seq, index as u64, "run {run}: key {key} stored out of order or with a hole");
        }
    }
    for (key, highest_acked) in acked {
        let count = stored.get(key).map_or(0, Vec::len) as u64;
        assert!(
            count > *highest_acked,
            "run {run}: key {key}: seq {highest_acked} was acked but only {count} records are stored"
        );
    }
    eprintln!("run {run}: {} keys acked, {total} records stored, all acked records present", acked.len());
}

#[test]
fn log_survives_kill_9_mid_append() {
    let dir = unique_temp_dir();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // Highest acked seq per key, over all runs (the log accumulates across
    // crashes; each run writes its own keys).
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    for run in 0..RUNS {
        let acks = run_and_kill_child(&dir, run);
        let mut last_per_key: HashMap<&str, u64> = HashMap::new();
        for (key, seq) in &acks {
            // The child acks each key's records in order.
            if let Some(previous) = last_per_key.insert(key.as_str(), *seq) {
                assert_eq!(*seq, previous + 1, "run {run}: acks of {key} out of order");
            }
        }
        for (key, seq) in &acks {
            let highest = acked.entry(key.clone()).or_insert(*seq);
            *highest = (*highest).max(*seq);
        }
        eprintln!("run {run}: child killed after {} acked records", acks.len());
        runtime.block_on(verify(&dir, &acked, run));
    }

    // After the crashes the log still takes writes, continuing the offsets.
    runtime.block_on(async {
        let log = EmbeddedLog::open(&dir, PARTITIONS).expect("reopen");
        let key = child_key(0, 0, 0);
        let partition = partition_for(key.as_bytes(), PARTITIONS);
        let end = log.end_offset(Topic::Events, partition).await.unwrap();
        log.produce(vec![Record { topic: Topic::Events, key: key.clone().into_bytes(), value: b"after".to_vec() }])
            .await
            .unwrap();
        let fetched = log.fetch(Topic::Events, partition, end, 10).await.unwrap();
        assert_eq!(fetched.len(), 1);
        assert_eq!(fetched[0].offset, end);
        assert_eq!(&fetched[0].value[..], b"after");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
