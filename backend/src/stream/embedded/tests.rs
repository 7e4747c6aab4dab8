//! The embedded log's tests: framing, produce and fetch, reopen, retention,
//! damage, concurrency, and the single owner of a directory.

use super::framing::{checked_record_count, encode_record, Chunk, EntryBuilder};
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
        vec![Fetched {
            partition,
            offset: 0,
            key: record.key.clone().into(),
            value: record.value.clone().into(),
            damage: None
        }]
    );
    let rejects = log.fetch(Topic::Rejects, partition, 0, 10).await.unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(&rejects[0].value[..], b"bad");
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
            let text = String::from_utf8(record.value.to_vec()).unwrap();
            let round: i64 = text.split(':').nth(1).unwrap().parse().unwrap();
            let previous = last_round.insert(record.key.to_vec(), round).unwrap_or(-1);
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
    assert_eq!(&records[899].value[..], b"999");
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
    let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
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

/// Changes the bytes of the entry of a partition that starts at `base`,
/// in place in its segment, behind the log's back, as a damaged disk or a
/// hand edit would.
fn damage_entry(dir: &std::path::Path, partition: u32, base: u64, damage: impl FnOnce(&mut [u8])) {
    let (path, position, len) = {
        let log = EmbeddedLog::open(dir, 1).unwrap();
        let slot = log.shared().layout.slot(Topic::Events, partition).unwrap();
        let index = log.shared().index().unwrap();
        let entry = index.slots[slot].iter().find(|e| e.base == base).copied().expect("an entry at that offset");
        (segment::segment_path(dir, entry.segment), entry.position as usize, entry.len as usize)
    };
    let mut bytes = std::fs::read(&path).unwrap();
    damage(&mut bytes[position..position + len]);
    std::fs::write(&path, bytes).unwrap();
}

/// Every segment's bytes, one after another.
fn segment_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for sequence in segment::list_segments(dir).unwrap() {
        all.extend(std::fs::read(segment::segment_path(dir, sequence)).unwrap());
    }
    all
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
        assert_eq!(&fetched.last().unwrap().value[..], b"payload-three", "the records after it read");
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
    // Make its chunk claim one more byte of records than it holds: its three
    // records are one compressed chunk, which reads whole or not at all.
    damage_entry(dir.path(), partition, 1, |entry| {
        let raw_len = ENTRY_HEADER_LEN + 5..ENTRY_HEADER_LEN + 9;
        let claimed = u32::from_le_bytes(entry[raw_len.clone()].try_into().unwrap()) + 1;
        entry[raw_len].copy_from_slice(&claimed.to_le_bytes());
    });
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let fetched = log.fetch(Topic::Events, partition, 0, 100).await.unwrap();
    let summary: Vec<(u64, bool)> = fetched.iter().map(|f| (f.offset, f.damage.is_some())).collect();
    assert_eq!(summary, [(0, false), (1, true), (2, true), (3, true), (4, false)]);
    assert!(fetched[2].damage.as_deref().unwrap().contains("does not decompress"), "{:?}", fetched[2].damage);
    assert_eq!(&fetched[4].value[..], b"after");
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
        let entries = log.shared().index().unwrap().slots[0].len();
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
            let text = String::from_utf8(record.value.to_vec()).unwrap();
            assert!(seen.insert(text.clone()), "duplicate {text}");
            let mut parts = text.split(':').skip(1);
            let call: usize = parts.next().unwrap().parse().unwrap();
            let item: usize = parts.next().unwrap().parse().unwrap();
            per_key_order.entry(record.key.to_vec()).or_default().push((call, item));
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
    let before = segment_bytes(dir.path());
    assert!(before.windows(6).any(|w| w == b"secret"));
    let forgotten = forget_records(dir.path(), &mut |_, value| value.starts_with(b"secret")).unwrap();
    assert_eq!(forgotten, 2);
    let bytes = segment_bytes(dir.path());
    assert!(!bytes.windows(6).any(|w| w == b"secret"), "no forgotten byte is left in the file");

    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    let kept: Vec<(u64, Vec<u8>)> =
        fetch_all(&log, Topic::Events, 0).await.into_iter().map(|f| (f.offset, f.value.to_vec())).collect();
    assert_eq!(kept, [(0, b"keep-0".to_vec()), (2, b"keep-2".to_vec()), (4, b"keep-4".to_vec())]);
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 5, "new records keep fresh offsets");
    assert_eq!(log.committed("g", Topic::Events, 0).await.unwrap(), Some(2), "consumer positions are kept");
    let mut seen = 0;
    drop(log);
    visit_records(dir.path(), &mut |_, _| seen += 1).unwrap();
    assert_eq!(seen, 3, "tombstones are not records");
}

/// Writes a log as the single-file (redb) builds left it: one partition,
/// the given entries of `clickstream-events/0`, and a consumer position.
fn write_legacy_log(dir: &Path, entry_version: u64, entries: &[(u64, Vec<u8>)], end: u64) {
    use redb::{Database, TableDefinition};
    let db = Database::create(dir.join(legacy::LEGACY_FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(TableDefinition::<&str, u64>::new("meta")).unwrap();
        meta.insert("partitions", 1).unwrap();
        meta.insert("entry_version", entry_version).unwrap();
        let mut table = txn.open_table(TableDefinition::<u64, &[u8]>::new("clickstream-events/0")).unwrap();
        for (base, entry) in entries {
            table.insert(*base, entry.as_slice()).unwrap();
        }
        let mut ends = txn.open_table(TableDefinition::<&str, u64>::new("partition_ends")).unwrap();
        ends.insert("clickstream-events/0", end).unwrap();
        let mut offsets = txn.open_table(TableDefinition::<&str, u64>::new("consumer_offsets")).unwrap();
        offsets.insert("silver/clickstream-events/0", 4).unwrap();
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_log_of_the_single_file_format_is_migrated_with_its_entries_as_they_were() {
    let dir = TempDir::new("legacy");
    // Retention had dropped offsets 0..2; a format-1 entry then a format-2 one.
    let old = plain_entry_of(&[(b"k", b"old-2"), (b"k", b"old-3")]);
    let mut newer = EntryBuilder::new(4);
    newer.push_chunk(&chunk_of(&[(b"k".to_vec(), b"old-4".to_vec())]));
    let (_, newer) = newer.finish();
    write_legacy_log(dir.path(), 2, &[(2, old), (4, newer)], 5);

    let log = EmbeddedLog::open(dir.path(), 3).unwrap();
    assert!(!dir.path().join(legacy::LEGACY_FILE_NAME).exists(), "the old file is gone once migrated");
    assert_eq!(log.partitions(Topic::Events), 1, "the stored partition count wins");
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 5);
    assert_eq!(log.committed("silver", Topic::Events, 0).await.unwrap(), Some(4));
    log.produce(vec![event("k", "new")]).await.unwrap();
    let read: Vec<(u64, Vec<u8>)> =
        fetch_all(&log, Topic::Events, 0).await.into_iter().map(|f| (f.offset, f.value.to_vec())).collect();
    assert_eq!(read, [(2, b"old-2".to_vec()), (3, b"old-3".to_vec()), (4, b"old-4".to_vec()), (5, b"new".to_vec())]);
    // The entries were copied as they were: format 1 stays format 1.
    let formats: Vec<u8> = {
        let index = log.shared().index().unwrap();
        index.slots[0]
            .iter()
            .map(|e| {
                let mut first = [0u8];
                index.files[&e.segment].read_exact_at(&mut first, e.position).unwrap();
                first[0]
            })
            .collect()
    };
    assert_eq!(formats, [1, 2, 2]);
    // Retention still counts what it drops across the migrated entries.
    assert_eq!(log.truncate_before(Topic::Events, 0, 4).unwrap(), 2);
    drop(log);
    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    assert_eq!(fetch_all(&log, Topic::Events, 0).await.first().map(|f| f.offset), Some(4));
}

#[tokio::test]
async fn a_log_from_a_newer_build_is_refused_not_misread() {
    let dir = TempDir::new("newer");
    write_legacy_log(dir.path(), 3, &[], 0);
    let refused = EmbeddedLog::open(dir.path(), 1).unwrap_err().to_string();
    assert!(refused.contains("entry format 3"), "{refused}");
    assert!(dir.path().join(legacy::LEGACY_FILE_NAME).exists(), "a refused log is left alone");

    let dir = TempDir::new("newer-segment");
    drop(EmbeddedLog::open(dir.path(), 1).unwrap());
    let path = segment::segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&(segment::SEGMENT_FORMAT + 1).to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let refused = EmbeddedLog::open(dir.path(), 1).unwrap_err().to_string();
    assert!(refused.contains("log format 2"), "{refused}");
}

#[tokio::test]
async fn a_torn_last_write_is_cut_and_the_log_goes_on() {
    let dir = TempDir::new("torn");
    {
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        log.produce(vec![event("k", "one"), event("k", "two")]).await.unwrap();
        log.produce(vec![event("k", "three")]).await.unwrap();
    }
    let path = segment::segment_path(dir.path(), 1);
    let file = std::fs::read(&path).unwrap();
    // The frames, then the zeros the appender wrote ahead of them.
    let frames_end = segment::scan(&path, usize::MAX).unwrap().valid_len as usize;
    assert!(file.len() > frames_end && file[frames_end..].iter().all(|b| *b == 0), "zeros follow the frames");
    let intact = file[..frames_end].to_vec();
    // Reopening with only zeros after the frames cuts nothing.
    drop(EmbeddedLog::open(dir.path(), 1).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), file);
    // The next frame as a crash would leave it: header and half the body,
    // over the zeros.
    let mut frame = Vec::new();
    let entry = {
        let mut builder = EntryBuilder::new(3);
        builder.push(&encode_record(b"k", b"never acknowledged").unwrap());
        builder.finish().1
    };
    writer::put_batch_frame(&mut frame, &[(0, 3, entry.as_slice())], std::iter::empty(), &[]);
    let mut torn = file.clone();
    torn[frames_end..frames_end + frame.len() / 2].copy_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(&path, &torn).unwrap();

    let log = EmbeddedLog::open(dir.path(), 1).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), intact, "the torn frame is cut off");
    assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 3);
    log.produce(vec![event("k", "four")]).await.unwrap();
    let values: Vec<Vec<u8>> = fetch_all(&log, Topic::Events, 0).await.into_iter().map(|f| f.value.to_vec()).collect();
    assert_eq!(values, [&b"one"[..], b"two", b"three", b"four"]);
}

#[tokio::test]
async fn segments_roll_and_retention_deletes_the_ones_nothing_needs() {
    let dir = TempDir::new("segments");
    let padding = "p".repeat(300);
    {
        let log = EmbeddedLog::open_with(dir.path(), 2, 8 * 1024).unwrap();
        for i in 0..200 {
            // Random-looking values, so compression keeps them large.
            let value = format!("{i} {:x} {padding}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            log.produce(vec![event("a", &value), event("b", &value)]).await.unwrap();
        }
        log.commit("g", Topic::Events, partition_for(b"a", 2), 150).await.unwrap();
        log.commit("g", Topic::Events, partition_for(b"b", 2), 120).await.unwrap();
        let segments = segment::list_segments(dir.path()).unwrap();
        assert!(segments.len() >= 4, "{} segments", segments.len());

        assert!(log.trim_to_committed().unwrap() > 0);
        let after = segment::list_segments(dir.path()).unwrap();
        assert!(after.len() < segments.len() && after[0] > segments[0], "{segments:?} -> {after:?}");
        let a = fetch_all(&log, Topic::Events, partition_for(b"a", 2)).await;
        assert_eq!(a.first().map(|f| f.offset), Some(150));
        assert_eq!(a.len(), 50);
    }
    // Everything outside the records survives the deleted segments.
    let log = EmbeddedLog::open(dir.path(), 2).unwrap();
    let (pa, pb) = (partition_for(b"a", 2), partition_for(b"b", 2));
    assert_eq!(log.end_offset(Topic::Events, pa).await.unwrap(), 200);
    assert_eq!(log.committed("g", Topic::Events, pb).await.unwrap(), Some(120));
    let b = fetch_all(&log, Topic::Events, pb).await;
    assert_eq!(b.iter().map(|f| f.offset).collect::<Vec<_>>(), (120..200).collect::<Vec<_>>());
    assert!(b[0].value.starts_with(b"120 "));
}
