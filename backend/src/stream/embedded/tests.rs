//! The embedded log's tests: framing, produce and fetch, reopen, retention,
//! damage, concurrency, and the single owner of a directory.

use super::framing::{encode_record, Chunk};
use super::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "clickstream-embedded-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event(key: &str, value: &str) -> Record {
    Record { topic: Topic::Events, key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec() }
}

async fn fetch_all(log: &EmbeddedLog, topic: Topic, partition: u32) -> Vec<Fetched> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let chunk = log.fetch(topic, partition, from, 500).await.unwrap();
        let Some(last) = chunk.last() else { break };
        from = last.offset + 1;
        all.extend(chunk);
    }
    all
}

/// One bit at a time, straight from the definition, to check the tables.
fn crc32_bitwise(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn crc32_matches_the_standard_check_value_and_the_definition() {
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32fast::hash(b""), 0);
    let data: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(37) ^ (i >> 3)) as u8).collect();
    for len in 0..data.len() {
        assert_eq!(crc32fast::hash(&data[..len]), crc32_bitwise(&data[..len]), "length {len}");
    }
}

/// A format-1 entry (what builds before chunks wrote): header, then records.
fn plain_entry_of(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut entry = vec![1u8];
    entry.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (key, value) in records {
        entry.extend_from_slice(&encode_record(key, value).unwrap());
    }
    entry
}

type KeyAndValue = (Vec<u8>, Vec<u8>);

fn read_all(entry: &[u8]) -> Result<Vec<KeyAndValue>, String> {
    let body = EntryBody::open(entry)?;
    let mut reader = body.reader();
    let mut records = Vec::new();
    while let Some(record) = reader.next_record()? {
        let (key, value) = record.checked()?;
        records.push((key.to_vec(), value.to_vec()));
    }
    Ok(records)
}

#[test]
fn plain_entries_still_read_and_reject_damage() {
    let entry = plain_entry_of(&[(b"visitor", b"{\"a\":1}"), (b"", b""), (b"v2", b"x")]);
    assert_eq!(
        read_all(&entry).unwrap(),
        vec![(b"visitor".to_vec(), b"{\"a\":1}".to_vec()), (Vec::new(), Vec::new()), (b"v2".to_vec(), b"x".to_vec()),]
    );
    assert_eq!(checked_record_count(&entry), Ok(3));

    // Any flipped payload bit fails that record's checksum.
    let mut flipped = entry.clone();
    flipped[ENTRY_HEADER_LEN + RECORD_HEADER_LEN + 2] ^= 0x01;
    assert!(read_all(&flipped).unwrap_err().contains("checksum"));
    // Cut short, padded, or with a wrong count: the structure does not add up.
    assert!(read_all(&entry[..entry.len() - 1]).is_err());
    assert!(read_all(&entry[..3]).is_err());
    let mut padded = entry.clone();
    padded.push(0);
    assert!(read_all(&padded).unwrap_err().contains("stray"));
    let mut miscounted = entry.clone();
    miscounted[1] = 2;
    assert!(read_all(&miscounted).is_err());
    miscounted[1] = 4;
    assert!(read_all(&miscounted).is_err());
    let mut versioned = entry.clone();
    versioned[0] = 9;
    assert!(read_all(&versioned).unwrap_err().contains("format"));
    // A length field pointing past the end.
    let mut long_key = entry;
    long_key[ENTRY_HEADER_LEN + 4] = 0xff;
    long_key[ENTRY_HEADER_LEN + 7] = 0xff;
    assert!(read_all(&long_key).is_err());
}

/// Events of one visitor: most of their bytes repeat, as real ones do.
fn similar_records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let value = format!(
                r#"{{"event_id":"e-{i}","site_id":"shop-1","url":"https://shop.example/p/{}","ua":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
                i % 7
            );
            (b"visitor-1".to_vec(), value.into_bytes())
        })
        .collect()
}

fn chunk_of(records: &[(Vec<u8>, Vec<u8>)]) -> Chunk {
    let mut builder = ChunkBuilder::default();
    for (key, value) in records {
        builder.push_record(key, value).unwrap();
    }
    builder.finish()
}

#[test]
fn chunked_entries_compress_round_trip_and_reject_damage() {
    let similar = similar_records(50);
    let chunk = chunk_of(&similar);
    assert!(chunk.bytes.len() * 3 < chunk.raw_len, "{} bytes stored for {}", chunk.bytes.len(), chunk.raw_len);
    let tiny = vec![(b"k".to_vec(), b"x".to_vec())];
    let mut builder = EntryBuilder::new(0);
    builder.push_chunk(&chunk);
    builder.push_chunk(&chunk_of(&tiny));
    builder.push(&encode_record(b"loose", b"one by one").unwrap());
    let (_, entry) = builder.finish();
    assert_eq!(entry[0], CHUNKED_ENTRY);
    let mut expected = similar.clone();
    expected.extend(tiny);
    expected.push((b"loose".to_vec(), b"one by one".to_vec()));
    assert_eq!(read_all(&entry).unwrap(), expected);
    assert_eq!(checked_record_count(&entry), Ok(52));

    // The first chunk is compressed: a flipped byte inside it, a cut, a
    // count that does not add up, an unknown codec, or a wild length.
    let first_chunk = ENTRY_HEADER_LEN;
    let mut flipped = entry.clone();
    flipped[first_chunk + 13 + 40] ^= 0x5a;
    assert!(read_all(&flipped).is_err());
    assert!(read_all(&entry[..entry.len() - 1]).is_err());
    assert!(read_all(&entry[..first_chunk + 20]).is_err());
    let mut padded = entry.clone();
    padded.push(0);
    assert!(read_all(&padded).unwrap_err().contains("chunk"));
    let mut miscounted = entry.clone();
    miscounted[1] = 53;
    assert!(read_all(&miscounted).is_err());
    let mut codec = entry.clone();
    codec[first_chunk] = 7;
    assert!(read_all(&codec).unwrap_err().contains("codec"));
    let mut wild = entry.clone();
    wild[first_chunk + 5..first_chunk + 9].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(read_all(&wild).unwrap_err().contains("more than a chunk holds"));

    // Damage in the last chunk leaves the records before it readable.
    let body = EntryBody::open(&entry[..entry.len() - 3]).unwrap();
    let mut reader = body.reader();
    let mut read = 0;
    let problem = loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                record.checked().unwrap();
                read += 1;
            }
            Ok(None) => panic!("a cut entry read to its end"),
            Err(problem) => break problem,
        }
    };
    assert_eq!(read, 51, "{problem}");
}

#[tokio::test]
async fn produce_then_fetch_round_trip() {
    let dir = TempDir::new("roundtrip");
    let log = EmbeddedLog::open(dir.path(), 4).unwrap();
    assert_eq!(log.partitions(Topic::Events), 4);
    assert_eq!(log.partitions(Topic::Rejects), 4);
    let record = event("visitor-1", "{\"page\":\"/\"}");
    let reject = Record { topic: Topic::Rejects, key: b"visitor-1".to_vec(), value: b"bad".to_vec() };
    log.produce(vec![record.clone(), reject]).await.unwrap();

    let partition = partition_for(b"visitor-1", 4);
    let events = log.fetch(Topic::Events, partition, 0, 10).await.unwrap();
    assert_eq!(
        events,
        vec![Fetched { partition, offset: 0, key: record.key.clone(), value: record.value.clone(), damage: None }]
    );
    let rejects = log.fetch(Topic::Rejects, partition, 0, 10).await.unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].value, b"bad");
    // At the end: empty, not an error.
    assert!(log.fetch(Topic::Events, partition, 1, 10).await.unwrap().is_empty());
    assert!(log.fetch(Topic::Events, partition, 0, 0).await.unwrap().is_empty());
    // Out of range partition.
    assert!(matches!(log.fetch(Topic::Events, 4, 0, 10).await, Err(StreamError::BadRequest(_))));
    assert!(matches!(log.end_offset(Topic::Events, 9).await, Err(StreamError::BadRequest(_))));
    // Empty produce is fine.
    log.produce(Vec::new()).await.unwrap();
    // An oversized record is refused, and nothing of its call is written.
    let huge = Record { topic: Topic::Events, key: b"visitor-1".to_vec(), value: vec![b'x'; MAX_RECORD_BYTES + 1] };
    assert!(matches!(log.produce(vec![event("visitor-1", "fine"), huge]).await, Err(StreamError::BadRequest(_))));
    assert_eq!(log.end_offset(Topic::Events, partition).await.unwrap(), 1);
}

#[tokio::test]
async fn offsets_are_dense_ordered_and_keys_stick_to_partitions() {
    let dir = TempDir::new("ordering");
    let log = EmbeddedLog::open(dir.path(), 3).unwrap();
    let keys = ["alice", "bob", "carol", "dave", "erin"];
    for round in 0..20 {
        let batch = keys.iter().map(|key| event(key, &format!("{key}:{round}"))).collect();
        log.produce(batch).await.unwrap();
    }
    let mut total = 0;
    for partition in 0..3 {
        let records = fetch_all(&log, Topic::Events, partition).await;
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.offset, index as u64, "offsets are dense from 0");
            assert_eq!(record.partition, partition);
            assert_eq!(partition_for(&record.key, 3), partition, "same key, same partition");
        }
        assert_eq!(log.end_offset(Topic::Events, partition).await.unwrap(), records.len() as u64);
        // Per key, rounds come back in the order produced.
        let mut last_round: HashMap<Vec<u8>, i64> = HashMap::new();
        for record in &records {
            let text = String::from_utf8(record.value.clone()).unwrap();
            let round: i64 = text.split(':').nth(1).unwrap().parse().unwrap();
            let previous = last_round.insert(record.key.clone(), round).unwrap_or(-1);
            assert_eq!(round, previous + 1);
        }
        total += records.len();
    }
    assert_eq!(total, keys.len() * 20);
    // A smaller fetch window returns the first records only.
    let partition = partition_for(b"alice", 3);
    let window = log.fetch(Topic::Events, partition, 2, 3).await.unwrap();
    assert_eq!(window.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![2, 3, 4]);
}

#[tokio::test]
async fn large_fetch_goes_through_the_blocking_pool() {
    let dir = TempDir::new("largefetch");
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let batch: Vec<Record> = (0..1000).map(|i| event("k", &i.to_string())).collect();
    log.produce(batch).await.unwrap();
    let records = log.fetch(Topic::Events, 0, 100, 5000).await.unwrap();
    assert_eq!(records.len(), 900);
    assert_eq!(records[0].offset, 100);
    assert_eq!(records[899].value, b"999");
}

#[tokio::test]
async fn reopen_keeps_records_and_continues_offsets() {
    let dir = TempDir::new("reopen");
    {
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        log.produce(vec![event("a", "1"), event("a", "2")]).await.unwrap();
        log.commit("silver", Topic::Events, 0, 7).await.unwrap();
    }
    // Asking for another partition count keeps the stored one.
    let log = EmbeddedLog::open(dir.path(), 5).unwrap();
    assert_eq!(log.partitions(Topic::Events), 2);
    let partition = partition_for(b"a", 2);
    assert_eq!(log.end_offset(Topic::Events, partition).await.unwrap(), 2);
    log.produce(vec![event("a", "3")]).await.unwrap();
    let records = fetch_all(&log, Topic::Events, partition).await;
    let values: Vec<&[u8]> = records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(values, vec![b"1".as_slice(), b"2", b"3"]);
    assert_eq!(records[2].offset, 2);
    assert_eq!(log.committed("silver", Topic::Events, 0).await.unwrap(), Some(7));
}

#[tokio::test]
async fn consumer_offsets_commit_and_read_back() {
    let dir = TempDir::new("offsets");
    let log = EmbeddedLog::open(dir.path(), 2).unwrap();
    assert_eq!(log.committed("g", Topic::Events, 1).await.unwrap(), None);
    log.commit("g", Topic::Events, 1, 10).await.unwrap();
    log.commit("g", Topic::Events, 1, 12).await.unwrap();
    log.commit("other", Topic::Events, 1, 3).await.unwrap();
    assert_eq!(log.committed("g", Topic::Events, 1).await.unwrap(), Some(12));
    assert_eq!(log.committed("other", Topic::Events, 1).await.unwrap(), Some(3));
    assert_eq!(log.committed("g", Topic::Rejects, 1).await.unwrap(), None);
    assert_eq!(log.committed("g", Topic::Events, 0).await.unwrap(), None);
    assert!(matches!(log.commit("g", Topic::Events, 2, 1).await, Err(StreamError::BadRequest(_))));
}

#[tokio::test]
async fn truncate_before_removes_old_records_and_keeps_end_offsets() {
    let dir = TempDir::new("truncate");
    {
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        let batch = (0..10).map(|i| event("k", &i.to_string())).collect();
        log.produce(batch).await.unwrap();
        assert_eq!(log.truncate_before(Topic::Events, 0, 4).unwrap(), 4);
        assert_eq!(log.truncate_before(Topic::Events, 0, 4).unwrap(), 0);
        let records = log.fetch(Topic::Events, 0, 0, 100).await.unwrap();
        assert_eq!(records.first().map(|r| r.offset), Some(4));
        assert_eq!(records.len(), 6);
        assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 10);
        // Truncating everything still keeps the end.
        assert_eq!(log.truncate_before(Topic::Events, 0, 100).unwrap(), 6);
        assert!(log.fetch(Topic::Events, 0, 0, 100).await.unwrap().is_empty());
        assert!(matches!(log.truncate_before(Topic::Events, 1, 0), Err(StreamError::BadRequest(_))));
    }
    // After a reopen of an emptied partition, offsets continue, not restart.
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 10);
    log.produce(vec![event("k", "next")]).await.unwrap();
    let records = log.fetch(Topic::Events, 0, 0, 100).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, 10);
}

/// Rewrites the entry stored under `base` of a partition behind the log's
/// back, as a damaged disk or a hand edit would.
fn damage_entry(dir: &std::path::Path, partition: u32, base: u64, damage: impl FnOnce(&mut Vec<u8>)) {
    let db = Database::create(dir.join(LOG_FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let name = format!("{}/{}", Topic::Events.name(), partition);
        let mut table = txn.open_table(PartitionTable::new(&name)).unwrap();
        let mut entry = table.get(base).unwrap().unwrap().value().to_vec();
        damage(&mut entry);
        table.insert(base, entry.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_damaged_record_is_handed_on_marked_and_the_partition_moves_on() {
    let dir = TempDir::new("corrupt");
    let partition = partition_for(b"victim", 2);
    {
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        // Produce calls in a row: one commit each, one entry each (keys 0, 1, 2).
        for payload in ["payload-one", "payload-two", "payload-three"] {
            log.produce(vec![event("victim", payload)]).await.unwrap();
        }
    }
    damage_entry(dir.path(), partition, 1, |entry| {
        let last = entry.len() - 1;
        entry[last] ^= 0x20;
    });
    let log = EmbeddedLog::open(dir.path(), 2).unwrap();
    assert_eq!(log.end_offset(Topic::Events, partition).await.unwrap(), 3);
    for from in [0, 1] {
        let fetched = log.fetch(Topic::Events, partition, from, 10).await.unwrap();
        let offsets: Vec<u64> = fetched.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, (from..3).collect::<Vec<_>>(), "every offset once, the damaged one too");
        let damaged: Vec<&Fetched> = fetched.iter().filter(|f| f.damage.is_some()).collect();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].offset, 1);
        let why = damaged[0].damage.as_deref().unwrap();
        assert!(why.contains("offset 1") && why.contains("checksum mismatch"), "{why}");
        assert_eq!(fetched.last().unwrap().value, b"payload-three", "the records after it read");
    }
}

#[tokio::test]
async fn every_offset_of_an_entry_with_a_damaged_structure_is_handed_on_marked() {
    let dir = TempDir::new("corrupt-entry");
    let partition = partition_for(b"victim", 1);
    {
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.produce(vec![event("victim", "before")]).await.unwrap();
        // One produce of three records: one entry at offset 1 holding 1..4.
        log.produce((0..3).map(|i| event("victim", &format!("inside-{i}"))).collect()).await.unwrap();
        log.produce(vec![event("victim", "after")]).await.unwrap();
    }
    // Cut the entry short: its three records are one compressed chunk, and
    // a compressed chunk reads whole or not at all.
    damage_entry(dir.path(), partition, 1, |entry| entry.truncate(entry.len() - 5));
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let fetched = log.fetch(Topic::Events, partition, 0, 100).await.unwrap();
    let summary: Vec<(u64, bool)> = fetched.iter().map(|f| (f.offset, f.damage.is_some())).collect();
    assert_eq!(summary, [(0, false), (1, true), (2, true), (3, true), (4, false)]);
    assert!(fetched[2].damage.as_deref().unwrap().contains("does not decompress"), "{:?}", fetched[2].damage);
    assert_eq!(fetched[4].value, b"after");
    // Reading from inside the damaged part gives the same answer.
    let from_3 = log.fetch(Topic::Events, partition, 3, 100).await.unwrap();
    assert_eq!(from_3.iter().map(|f| (f.offset, f.damage.is_some())).collect::<Vec<_>>(), [(3, true), (4, false)]);
}

#[tokio::test]
async fn big_produces_split_into_entries_and_fetch_across_them() {
    const COUNT: u64 = 3000;
    let dir = TempDir::new("entries");
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let padding = "p".repeat(200);
    let batch = (0..COUNT).map(|i| event("k", &format!("{i} {padding}"))).collect();
    log.produce(batch).await.unwrap();
    {
        let txn = log.shared().begin_read().unwrap();
        let table = txn.open_table(log.shared().layout.table(0)).unwrap();
        let entries = table.iter().unwrap().count();
        assert!(entries >= 3, "{entries} entries for ~640 KB of records");
    }
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), COUNT);
    for from in [0, 1, 1229, 1230, 1231, 2999, 3000, 5000] {
        for max in [1usize, 7, 1000, 5000] {
            let records = log.fetch(Topic::Events, 0, from, max).await.unwrap();
            let expected: Vec<u64> = (from..COUNT.min(from + max as u64)).collect();
            let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, expected, "from {from} max {max}");
            for record in records {
                assert_eq!(record.value, format!("{} {padding}", record.offset).into_bytes());
            }
        }
    }
    // Retention across entry boundaries, with one entry cut in two.
    assert_eq!(log.truncate_before(Topic::Events, 0, 1500).unwrap(), 1500);
    let records = log.fetch(Topic::Events, 0, 0, 5000).await.unwrap();
    assert_eq!(records.len(), 1500);
    assert_eq!(records[0].offset, 1500);
    assert_eq!(records[1499].offset, COUNT - 1);
    log.produce(vec![event("k", "late")]).await.unwrap();
    let last = log.fetch(Topic::Events, 0, COUNT, 10).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].offset, COUNT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_producers_are_all_acked_and_stored_once() {
    const TASKS: usize = 8;
    const CALLS: usize = 200;
    const PER_CALL: usize = 3;
    let dir = TempDir::new("concurrent");
    let log = EmbeddedLog::open(dir.path(), 4).unwrap();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for call in 0..CALLS {
                let batch = (0..PER_CALL).map(|i| event(&format!("t{task}"), &format!("t{task}:{call}:{i}"))).collect();
                log.produce(batch).await?;
            }
            Ok::<(), StreamError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    let mut seen = HashSet::new();
    let mut per_key_order: HashMap<Vec<u8>, Vec<(usize, usize)>> = HashMap::new();
    for partition in 0..4 {
        let records = fetch_all(&log, Topic::Events, partition).await;
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.offset, index as u64);
            let text = String::from_utf8(record.value.clone()).unwrap();
            assert!(seen.insert(text.clone()), "duplicate {text}");
            let mut parts = text.split(':').skip(1);
            let call: usize = parts.next().unwrap().parse().unwrap();
            let item: usize = parts.next().unwrap().parse().unwrap();
            per_key_order.entry(record.key.clone()).or_default().push((call, item));
        }
    }
    assert_eq!(seen.len(), TASKS * CALLS * PER_CALL);
    for (key, order) in per_key_order {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "order of key {key:?}");
    }
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("twice");
    let _log = EmbeddedLog::open(dir.path(), 1).unwrap();
    assert!(matches!(EmbeddedLog::open(dir.path(), 1), Err(StreamError::Unavailable(_))));
}

#[tokio::test]
async fn forgotten_records_keep_their_offsets_and_leave_no_bytes_in_the_file() {
    let dir = TempDir::new("forget");
    {
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        let values = ["keep-0", "secret-1", "keep-2", "secret-3", "keep-4"];
        log.produce(values.iter().map(|v| event("k", v)).collect()).await.unwrap();
        log.commit("g", Topic::Events, 0, 2).await.unwrap();
    }
    // Compressed or not, the file held them before (LZ4 writes a string's
    // first occurrence as it is), so the check below can fail.
    let before = std::fs::read(dir.path().join(LOG_FILE_NAME)).unwrap();
    assert!(before.windows(6).any(|w| w == b"secret"));
    let forgotten = forget_records(dir.path(), &mut |_, value| value.starts_with(b"secret")).unwrap();
    assert_eq!(forgotten, 2);
    let bytes = std::fs::read(dir.path().join(LOG_FILE_NAME)).unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"secret"), "no forgotten byte is left in the file");

    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let kept: Vec<(u64, Vec<u8>)> =
        fetch_all(&log, Topic::Events, 0).await.into_iter().map(|f| (f.offset, f.value)).collect();
    assert_eq!(kept, [(0, b"keep-0".to_vec()), (2, b"keep-2".to_vec()), (4, b"keep-4".to_vec())]);
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 5, "new records keep fresh offsets");
    assert_eq!(log.committed("g", Topic::Events, 0).await.unwrap(), Some(2), "consumer positions are kept");
    let mut seen = 0;
    drop(log);
    visit_records(dir.path(), &mut |_, _| seen += 1).unwrap();
    assert_eq!(seen, 3, "tombstones are not records");
}

#[tokio::test]
async fn a_log_written_in_format_1_reads_on_and_takes_new_records_in_format_2() {
    let dir = TempDir::new("format-1");
    {
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.produce((0..3).map(|i| event("k", &format!("old-{i}"))).collect()).await.unwrap();
    }
    // Rewrite the file as a format-1 build left it.
    {
        let db = Database::create(dir.path().join(LOG_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let name = format!("{}/0", Topic::Events.name());
            let mut table = txn.open_table(PartitionTable::new(&name)).unwrap();
            let entry = table.get(0).unwrap().unwrap().value().to_vec();
            let records = read_all(&entry).unwrap();
            let borrowed: Vec<(&[u8], &[u8])> = records.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            table.insert(0, plain_entry_of(&borrowed).as_slice()).unwrap();
            txn.open_table(META).unwrap().insert(META_ENTRY_VERSION, 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    log.produce(vec![event("k", "new")]).await.unwrap();
    let values: Vec<Vec<u8>> = fetch_all(&log, Topic::Events, 0).await.into_iter().map(|f| f.value).collect();
    assert_eq!(values, [&b"old-0"[..], b"old-1", b"old-2", b"new"]);
    let txn = log.shared().begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(meta.get(META_ENTRY_VERSION).unwrap().unwrap().value(), 2, "marked so older builds refuse it");
    let table = txn.open_table(log.shared().layout.table(0)).unwrap();
    let formats: Vec<u8> = table.iter().unwrap().map(|e| e.unwrap().1.value()[0]).collect();
    assert_eq!(formats, [1, 2]);
    drop((table, meta, txn, log));

    // A log from a newer build is refused with a clear error, not misread.
    {
        let db = Database::create(dir.path().join(LOG_FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(META_ENTRY_VERSION, 3).unwrap();
        txn.commit().unwrap();
    }
    let Err(refused) = EmbeddedLog::open(dir.path(), 1) else { panic!("a format-3 log was opened") };
    let refused = refused.to_string();
    assert!(refused.contains("entry format 3"), "{refused}");
}
