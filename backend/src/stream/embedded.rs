//! The embedded durable log: an append-only, partitioned log in one redb file.
//!
//! # Layout
//!
//! `dir/log.redb` holds:
//!
//! * one table per topic-partition, named `"<topic>/<partition>"` (for example
//!   `"clickstream-events/0"`), key = `u64` offset, value = one framed record
//!   (see [`encode_frame`]);
//! * `meta`: the pinned partition count and the frame format version;
//! * `partition_ends`: per topic-partition, the offset the next record gets.
//!   It is written in the same transaction as the records, so offsets never go
//!   back even when retention ([`EmbeddedLog::truncate_before`]) has emptied a
//!   partition;
//! * `consumer_offsets`: `"group/topic/partition"` → next offset to read.
//!
//! # Why a single writer thread (group commit)
//!
//! `produce` must answer only once the records are durable, and a durable redb
//! commit costs an `fsync`, which is far slower than writing a few kilobytes.
//! One fsync per produce call would cap throughput at the disk's fsync rate. So
//! every write goes to one dedicated thread, which takes everything that queued
//! up while the previous commit was syncing (up to [`MAX_REQUESTS_PER_COMMIT`]
//! requests or [`MAX_BYTES_PER_COMMIT`] bytes), writes it in ONE write
//! transaction, commits once, then answers every waiting caller. The busier the
//! log, the more requests share one fsync. The single writer is also what makes
//! offsets simple: it assigns them, dense from 0 per partition, in the order
//! requests arrive, so the records of one key keep their order.
//!
//! # Why checksums
//!
//! redb already checksums its pages, but a frame check on every record catches
//! what page checksums cannot: bugs in our own framing, values written by other
//! tools, or a file edited or restored by hand. A record whose checksum does not
//! match is reported as [`StreamError::Corrupt`] rather than handed on as data.
//!
//! # Why the partition count is pinned
//!
//! A key's partition is `hash(key) % partitions`. Changing the count on an
//! existing log would send a visitor's new events to a different partition than
//! the old ones, breaking per-visitor order and sessionisation. So the count
//! given at the first open is stored and wins over later configuration (with a
//! warning).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{partition_for, EventStream, Fetched, Record, StreamError, Topic};

/// The file name of the log inside its directory.
pub const LOG_FILE_NAME: &str = "log.redb";

/// At most this many produce/commit requests share one write transaction.
pub const MAX_REQUESTS_PER_COMMIT: usize = 64;

/// A write transaction stops taking more requests once it holds this many
/// bytes of frames (a single larger request still goes through alone).
pub const MAX_BYTES_PER_COMMIT: usize = 8 * 1024 * 1024;

/// How many requests may wait for the writer before `produce` itself waits.
/// This is the back-pressure that keeps memory bounded under overload.
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// Fetches of at most this many records read inline on the async task; larger
/// ones move to the blocking pool so they do not stall other tasks.
const INLINE_FETCH_LIMIT: usize = 256;

/// redb's page cache. The log is written once and read soon after, so a
/// modest cache is enough.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Version byte at the start of every frame.
const FRAME_VERSION: u8 = 1;

/// version (1) + checksum (4) + key length (4).
const FRAME_HEADER_LEN: usize = 9;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PARTITION_ENDS: TableDefinition<&str, u64> = TableDefinition::new("partition_ends");
const CONSUMER_OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("consumer_offsets");

const META_PARTITIONS: &str = "partitions";
const META_FRAME_VERSION: &str = "frame_version";

/// One topic-partition's table: offset → frame.
type PartitionTable<'a> = TableDefinition<'a, u64, &'static [u8]>;

/// A durable, append-only, partitioned log stored in one redb file.
///
/// Cheap to clone: clones share one database and one writer thread. When the
/// last clone is dropped, the writer finishes the requests already queued,
/// then stops, and the file is closed before `drop` returns (so the same
/// directory can be opened again right away).
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EmbeddedLog")
            .field("partitions", &self.partition_count())
            .finish_non_exhaustive()
    }
}

/// What the handles share. Its `Drop` stops the writer.
struct Inner {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    requests: Option<mpsc::Sender<WriteRequest>>,
    /// `None` only while dropping.
    writer: Option<JoinHandle<()>>,
}

/// What the handles and the writer thread share.
struct Shared {
    db: Database,
    layout: Layout,
    /// Per topic-partition slot: the offset the next record will get, counting
    /// only committed records. Written by the writer after each commit.
    ends: Vec<AtomicU64>,
}

/// Topic-partitions are numbered as slots: `topic_index * partitions + partition`.
struct Layout {
    partitions: u32,
    /// Per slot, the name of its table.
    table_names: Vec<String>,
}

impl Layout {
    fn new(partitions: u32) -> Layout {
        let table_names = Topic::ALL
            .iter()
            .flat_map(|topic| (0..partitions).map(move |p| format!("{}/{}", topic.name(), p)))
            .collect();
        Layout {
            partitions,
            table_names,
        }
    }

    fn slot(&self, topic: Topic, partition: u32) -> Result<usize, StreamError> {
        if partition >= self.partitions {
            return Err(StreamError::BadRequest(format!(
                "partition {partition} of {} does not exist (the log has {} partitions)",
                topic.name(),
                self.partitions
            )));
        }
        Ok(topic_index(topic) * self.partitions as usize + partition as usize)
    }

    fn table(&self, slot: usize) -> PartitionTable<'_> {
        TableDefinition::new(&self.table_names[slot])
    }
}

fn topic_index(topic: Topic) -> usize {
    match topic {
        Topic::Events => 0,
        Topic::Rejects => 1,
    }
}

/// A request to the writer thread.
enum WriteRequest {
    Append {
        records: Vec<EncodedRecord>,
        bytes: usize,
        reply: oneshot::Sender<Result<(), StreamError>>,
    },
    CommitOffset {
        name: String,
        next_offset: u64,
        reply: oneshot::Sender<Result<(), StreamError>>,
    },
}

impl WriteRequest {
    fn bytes(&self) -> usize {
        match self {
            WriteRequest::Append { bytes, .. } => *bytes,
            WriteRequest::CommitOffset { name, .. } => name.len() + 8,
        }
    }

    fn answer(self, outcome: Result<(), StreamError>) {
        let reply = match self {
            WriteRequest::Append { reply, .. } | WriteRequest::CommitOffset { reply, .. } => reply,
        };
        // The caller may have given up waiting (its future was dropped); the
        // write still happened, and nobody is left to tell.
        let _ = reply.send(outcome);
    }
}

/// A record already framed and routed, ready for the writer.
struct EncodedRecord {
    slot: usize,
    frame: Vec<u8>,
}

/// Turns any redb error into `Unavailable`: the caller may retry later.
fn storage_error(error: impl Into<redb::Error>) -> StreamError {
    StreamError::Unavailable(format!("embedded log storage: {}", error.into()))
}

fn unavailable(context: &str, error: impl Display) -> StreamError {
    StreamError::Unavailable(format!("{context}: {error}"))
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir` (file `dir/log.redb`) with
    /// `partitions` partitions per topic.
    ///
    /// If the log already exists with another partition count, the stored
    /// count is kept and a warning is logged: see the module docs for why.
    /// Opening the same directory twice at once (in this or another process)
    /// fails with `Unavailable`.
    pub fn open(dir: &Path, partitions: u32) -> Result<EmbeddedLog, StreamError> {
        if partitions == 0 {
            return Err(StreamError::BadRequest(
                "a log needs at least one partition".to_string(),
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(&format!("creating log directory {}", dir.display()), e))?;
        let path: PathBuf = dir.join(LOG_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| unavailable(&format!("opening log {}", path.display()), e))?;

        let (layout, ends) = prepare(&db, partitions, &path)?;
        let shared = Arc::new(Shared {
            db,
            layout,
            ends: ends.into_iter().map(AtomicU64::new).collect(),
        });

        let (requests, queue) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("embedded-log-writer".to_string())
            .spawn(move || run_writer(&writer_shared, queue))
            .map_err(|e| unavailable("starting the log writer thread", e))?;

        tracing::debug!(path = %path.display(), partitions = shared.layout.partitions, "embedded log open");
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                shared,
                requests: Some(requests),
                writer: Some(writer),
            }),
        })
    }

    /// The partition count of each topic (the pinned one, which may differ
    /// from what was asked at `open`).
    pub fn partition_count(&self) -> u32 {
        self.shared().layout.partitions
    }

    /// Retention: deletes the records of one partition with an offset below
    /// `offset` and returns how many were removed. End offsets do not move, so
    /// new records keep getting fresh offsets, and a later `fetch` from a
    /// removed offset starts at the first record kept.
    ///
    /// Blocking (one durable write transaction); from async code, call it in
    /// `tokio::task::spawn_blocking`.
    pub fn truncate_before(
        &self,
        topic: Topic,
        partition: u32,
        offset: u64,
    ) -> Result<u64, StreamError> {
        let shared = self.shared();
        let slot = shared.layout.slot(topic, partition)?;
        // Waits while the writer thread has a transaction open: redb allows one
        // writer at a time.
        let mut txn = shared.db.begin_write().map_err(storage_error)?;
        txn.set_durability(Durability::Immediate);
        let mut removed = 0u64;
        {
            let mut table = txn.open_table(shared.layout.table(slot)).map_err(storage_error)?;
            table
                .retain_in(..offset, |_, _| {
                    removed += 1;
                    false
                })
                .map_err(storage_error)?;
        }
        txn.commit().map_err(storage_error)?;
        if removed > 0 {
            tracing::debug!(topic = topic.name(), partition, before = offset, removed, "log truncated");
        }
        Ok(removed)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    async fn send(&self, make: impl FnOnce(oneshot::Sender<Result<(), StreamError>>) -> WriteRequest) -> Result<(), StreamError> {
        let requests = self
            .inner
            .requests
            .as_ref()
            .ok_or_else(|| StreamError::Unavailable("the log is closing".to_string()))?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| StreamError::Unavailable("the log writer has stopped".to_string()))?;
        answer.await.map_err(|_| {
            StreamError::Unavailable("the log writer stopped before answering".to_string())
        })?
    }

    /// Reads up to `max` records of a slot from offset `from`. Blocking but short.
    fn read_range(&self, slot: usize, from: u64, max: usize) -> Result<Vec<Fetched>, StreamError> {
        let shared = self.shared();
        let partition = (slot % shared.layout.partitions as usize) as u32;
        let txn = shared.db.begin_read().map_err(storage_error)?;
        let table = txn.open_table(shared.layout.table(slot)).map_err(storage_error)?;
        let mut fetched = Vec::with_capacity(max.min(1024));
        for entry in table.range(from..).map_err(storage_error)?.take(max) {
            let (offset, frame) = entry.map_err(storage_error)?;
            let offset = offset.value();
            let (key, value) = decode_frame(frame.value()).map_err(|problem| {
                StreamError::Corrupt(format!(
                    "{} offset {offset}: {problem}",
                    shared.layout.table_names[slot]
                ))
            })?;
            fetched.push(Fetched {
                partition,
                offset,
                key,
                value,
            });
        }
        Ok(fetched)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what is queued, then stop.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::warn!("the embedded log writer thread panicked");
            }
        }
    }
}

#[async_trait]
impl EventStream for EmbeddedLog {
    fn partitions(&self, _topic: Topic) -> u32 {
        self.partition_count()
    }

    async fn produce(&self, records: Vec<Record>) -> Result<(), StreamError> {
        if records.is_empty() {
            return Ok(());
        }
        // Framing and checksums are computed here, on the callers' threads, so
        // the single writer only assigns offsets and writes.
        let layout = &self.shared().layout;
        let mut encoded = Vec::with_capacity(records.len());
        let mut bytes = 0;
        for record in &records {
            let partition = partition_for(&record.key, layout.partitions);
            let slot = layout.slot(record.topic, partition)?;
            let frame = encode_frame(&record.key, &record.value)?;
            bytes += frame.len();
            encoded.push(EncodedRecord { slot, frame });
        }
        self.send(|reply| WriteRequest::Append {
            records: encoded,
            bytes,
            reply,
        })
        .await
    }

    async fn fetch(
        &self,
        topic: Topic,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<Fetched>, StreamError> {
        let slot = self.shared().layout.slot(topic, partition)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        if max <= INLINE_FETCH_LIMIT {
            return self.read_range(slot, from, max);
        }
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.read_range(slot, from, max))
            .await
            .map_err(|e| unavailable("log read task failed", e))?
    }

    async fn end_offset(&self, topic: Topic, partition: u32) -> Result<u64, StreamError> {
        let slot = self.shared().layout.slot(topic, partition)?;
        Ok(self.shared().ends[slot].load(Ordering::Acquire))
    }

    async fn commit(
        &self,
        group: &str,
        topic: Topic,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), StreamError> {
        self.shared().layout.slot(topic, partition)?;
        let name = consumer_offset_name(group, topic, partition);
        self.send(|reply| WriteRequest::CommitOffset {
            name,
            next_offset,
            reply,
        })
        .await
    }

    async fn committed(
        &self,
        group: &str,
        topic: Topic,
        partition: u32,
    ) -> Result<Option<u64>, StreamError> {
        self.shared().layout.slot(topic, partition)?;
        let name = consumer_offset_name(group, topic, partition);
        let txn = self.shared().db.begin_read().map_err(storage_error)?;
        let table = txn.open_table(CONSUMER_OFFSETS).map_err(storage_error)?;
        let stored = table.get(name.as_str()).map_err(storage_error)?;
        Ok(stored.map(|guard| guard.value()))
    }
}

fn consumer_offset_name(group: &str, topic: Topic, partition: u32) -> String {
    format!("{group}/{}/{partition}", topic.name())
}

/// First-open work in one write transaction: pins the partition count,
/// creates every table, and loads each partition's end offset.
fn prepare(db: &Database, partitions: u32, path: &Path) -> Result<(Layout, Vec<u64>), StreamError> {
    let mut txn = db.begin_write().map_err(storage_error)?;
    txn.set_durability(Durability::Immediate);
    let partitions = {
        let mut meta = txn.open_table(META).map_err(storage_error)?;
        let stored_version = meta.get(META_FRAME_VERSION).map_err(storage_error)?.map(|v| v.value());
        if let Some(version) = stored_version {
            if version != u64::from(FRAME_VERSION) {
                return Err(StreamError::Corrupt(format!(
                    "{} uses frame version {version}, this build reads version {FRAME_VERSION}",
                    path.display()
                )));
            }
        }
        meta.insert(META_FRAME_VERSION, u64::from(FRAME_VERSION))
            .map_err(storage_error)?;
        let stored = meta.get(META_PARTITIONS).map_err(storage_error)?.map(|v| v.value());
        match stored {
            None => {
                meta.insert(META_PARTITIONS, u64::from(partitions))
                    .map_err(storage_error)?;
                partitions
            }
            Some(stored) => {
                let stored = u32::try_from(stored)
                    .ok()
                    .filter(|count| *count > 0)
                    .ok_or_else(|| {
                        StreamError::Corrupt(format!(
                            "{} records an impossible partition count {stored}",
                            path.display()
                        ))
                    })?;
                if stored != partitions {
                    tracing::warn!(
                        path = %path.display(),
                        stored,
                        requested = partitions,
                        "the log already has {stored} partitions; keeping them, because changing \
                         the count would move keys to other partitions"
                    );
                }
                stored
            }
        }
    };

    let layout = Layout::new(partitions);
    let mut ends = Vec::with_capacity(layout.table_names.len());
    {
        let mut stored_ends = txn.open_table(PARTITION_ENDS).map_err(storage_error)?;
        for (slot, name) in layout.table_names.iter().enumerate() {
            let table = txn.open_table(layout.table(slot)).map_err(storage_error)?;
            let after_last = table
                .last()
                .map_err(storage_error)?
                .map_or(0, |(offset, _)| offset.value() + 1);
            let stored = stored_ends
                .get(name.as_str())
                .map_err(storage_error)?
                .map_or(0, |v| v.value());
            let end = after_last.max(stored);
            if end != stored {
                stored_ends.insert(name.as_str(), end).map_err(storage_error)?;
            }
            ends.push(end);
        }
    }
    txn.open_table(CONSUMER_OFFSETS).map_err(storage_error)?;
    txn.commit().map_err(storage_error)?;
    Ok((layout, ends))
}

/// The writer thread: group commit. Runs until every handle is gone and the
/// queue is empty.
fn run_writer(shared: &Shared, mut queue: mpsc::Receiver<WriteRequest>) {
    // Next offset per slot, including records of the transaction in progress.
    let mut next: Vec<u64> = shared.ends.iter().map(|end| end.load(Ordering::Acquire)).collect();
    while let Some(first) = queue.blocking_recv() {
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS_PER_COMMIT && bytes < MAX_BYTES_PER_COMMIT {
            match queue.try_recv() {
                Ok(request) => {
                    bytes += request.bytes();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        match write_batch(shared, &batch, &mut next) {
            Ok(()) => {
                // Publish before answering, so a caller whose produce returned
                // sees its records counted in `end_offset`.
                for (end, next) in shared.ends.iter().zip(&next) {
                    end.store(*next, Ordering::Release);
                }
                for request in batch {
                    request.answer(Ok(()));
                }
            }
            Err(error) => {
                let reason = format!("embedded log write failed: {error}");
                tracing::warn!(requests = batch.len(), "{reason}");
                // Nothing of this transaction was kept: hand its offsets out again.
                for (next, end) in next.iter_mut().zip(&shared.ends) {
                    *next = end.load(Ordering::Acquire);
                }
                for request in batch {
                    request.answer(Err(StreamError::Unavailable(reason.clone())));
                }
            }
        }
    }
    tracing::debug!("embedded log writer stopped");
}

/// Writes a batch of requests in one durable transaction.
fn write_batch(shared: &Shared, batch: &[WriteRequest], next: &mut [u64]) -> Result<(), redb::Error> {
    // Assign offsets in arrival order, grouped by table so each table is
    // opened once.
    let mut by_slot: BTreeMap<usize, Vec<(u64, &[u8])>> = BTreeMap::new();
    let mut consumer_offsets: Vec<(&str, u64)> = Vec::new();
    for request in batch {
        match request {
            WriteRequest::Append { records, .. } => {
                for record in records {
                    let offset = next[record.slot];
                    next[record.slot] += 1;
                    by_slot
                        .entry(record.slot)
                        .or_default()
                        .push((offset, record.frame.as_slice()));
                }
            }
            WriteRequest::CommitOffset {
                name, next_offset, ..
            } => consumer_offsets.push((name.as_str(), *next_offset)),
        }
    }

    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    for (slot, rows) in &by_slot {
        let mut table = txn.open_table(shared.layout.table(*slot))?;
        for (offset, frame) in rows {
            table.insert(*offset, *frame)?;
        }
    }
    if !by_slot.is_empty() {
        let mut ends = txn.open_table(PARTITION_ENDS)?;
        for slot in by_slot.keys() {
            ends.insert(shared.layout.table_names[*slot].as_str(), next[*slot])?;
        }
    }
    if !consumer_offsets.is_empty() {
        let mut table = txn.open_table(CONSUMER_OFFSETS)?;
        for (name, offset) in consumer_offsets {
            table.insert(name, offset)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Frames one record:
///
/// ```text
/// version: u8 | crc32: u32 LE | key length: u32 LE | key | value
/// ```
///
/// The CRC-32 (IEEE) covers everything after itself (key length, key, value).
fn encode_frame(key: &[u8], value: &[u8]) -> Result<Vec<u8>, StreamError> {
    let key_len = u32::try_from(key.len())
        .map_err(|_| StreamError::BadRequest(format!("record key too long: {} bytes", key.len())))?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + key.len() + value.len());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&key_len.to_le_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(value);
    let checksum = crc32(&frame[5..]);
    frame[1..5].copy_from_slice(&checksum.to_le_bytes());
    Ok(frame)
}

/// Checks and splits a frame into (key, value). The error says what is wrong.
fn decode_frame(frame: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    if frame.len() < FRAME_HEADER_LEN {
        return Err(format!("frame of {} bytes is shorter than its header", frame.len()));
    }
    if frame[0] != FRAME_VERSION {
        return Err(format!("unknown frame version {}", frame[0]));
    }
    let stored = u32::from_le_bytes([frame[1], frame[2], frame[3], frame[4]]);
    let computed = crc32(&frame[5..]);
    if stored != computed {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
        ));
    }
    let key_len = u32::from_le_bytes([frame[5], frame[6], frame[7], frame[8]]) as usize;
    let body = &frame[FRAME_HEADER_LEN..];
    if key_len > body.len() {
        return Err(format!(
            "key length {key_len} exceeds the {} bytes of the frame body",
            body.len()
        ));
    }
    let (key, value) = body.split_at(key_len);
    Ok((key.to_vec(), value.to_vec()))
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as used by zlib
/// and Ethernet.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc = CRC32_TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC32_TABLE: [u32; 256] = crc32_table();

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut value = index as u32;
        let mut bit = 0;
        while bit < 8 {
            value = if value & 1 == 1 {
                (value >> 1) ^ 0xEDB8_8320
            } else {
                value >> 1
            };
            bit += 1;
        }
        table[index] = value;
        index += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::AtomicUsize;

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
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
        Record {
            topic: Topic::Events,
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }
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

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn frames_round_trip_and_reject_damage() {
        let frame = encode_frame(b"visitor", b"{\"a\":1}").unwrap();
        assert_eq!(
            decode_frame(&frame).unwrap(),
            (b"visitor".to_vec(), b"{\"a\":1}".to_vec())
        );
        let mut flipped = frame.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert!(decode_frame(&flipped).unwrap_err().contains("checksum"));
        assert!(decode_frame(&frame[..4]).is_err());
        assert!(decode_frame(&frame[..frame.len() - 1]).is_err());
    }

    #[tokio::test]
    async fn produce_then_fetch_round_trip() {
        let dir = TempDir::new("roundtrip");
        let log = EmbeddedLog::open(dir.path(), 4).unwrap();
        assert_eq!(log.partitions(Topic::Events), 4);
        assert_eq!(log.partitions(Topic::Rejects), 4);
        let record = event("visitor-1", "{\"page\":\"/\"}");
        let reject = Record {
            topic: Topic::Rejects,
            key: b"visitor-1".to_vec(),
            value: b"bad".to_vec(),
        };
        log.produce(vec![record.clone(), reject]).await.unwrap();

        let partition = partition_for(b"visitor-1", 4);
        let events = log.fetch(Topic::Events, partition, 0, 10).await.unwrap();
        assert_eq!(
            events,
            vec![Fetched {
                partition,
                offset: 0,
                key: record.key.clone(),
                value: record.value.clone(),
            }]
        );
        let rejects = log.fetch(Topic::Rejects, partition, 0, 10).await.unwrap();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].value, b"bad");
        // At the end: empty, not an error.
        assert!(log.fetch(Topic::Events, partition, 1, 10).await.unwrap().is_empty());
        assert!(log.fetch(Topic::Events, partition, 0, 0).await.unwrap().is_empty());
        // Out of range partition.
        assert!(matches!(
            log.fetch(Topic::Events, 4, 0, 10).await,
            Err(StreamError::BadRequest(_))
        ));
        assert!(matches!(
            log.end_offset(Topic::Events, 9).await,
            Err(StreamError::BadRequest(_))
        ));
        // Empty produce is fine.
        log.produce(Vec::new()).await.unwrap();
    }

    #[tokio::test]
    async fn offsets_are_dense_ordered_and_keys_stick_to_partitions() {
        let dir = TempDir::new("ordering");
        let log = EmbeddedLog::open(dir.path(), 3).unwrap();
        let keys = ["alice", "bob", "carol", "dave", "erin"];
        for round in 0..20 {
            let batch = keys
                .iter()
                .map(|key| event(key, &format!("{key}:{round}")))
                .collect();
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
            assert_eq!(
                log.end_offset(Topic::Events, partition).await.unwrap(),
                records.len() as u64
            );
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
        assert_eq!(
            log.committed("silver", Topic::Events, 0).await.unwrap(),
            Some(7)
        );
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
        assert!(matches!(
            log.commit("g", Topic::Events, 2, 1).await,
            Err(StreamError::BadRequest(_))
        ));
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
            assert!(matches!(
                log.truncate_before(Topic::Events, 1, 0),
                Err(StreamError::BadRequest(_))
            ));
        }
        // After a reopen of an emptied partition, offsets continue, not restart.
        let log = EmbeddedLog::open(dir.path(), 1).unwrap();
        assert_eq!(log.end_offset(Topic::Events, 0).await.unwrap(), 10);
        log.produce(vec![event("k", "next")]).await.unwrap();
        let records = log.fetch(Topic::Events, 0, 0, 100).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].offset, 10);
    }

    #[tokio::test]
    async fn a_damaged_record_is_reported_corrupt() {
        let dir = TempDir::new("corrupt");
        let partition = partition_for(b"victim", 2);
        {
            let log = EmbeddedLog::open(dir.path(), 2).unwrap();
            log.produce(vec![event("victim", "payload-one"), event("victim", "payload-two")])
                .await
                .unwrap();
        }
        {
            // Damage offset 1 behind the log's back.
            let db = Database::create(dir.path().join(LOG_FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let name = format!("{}/{}", Topic::Events.name(), partition);
                let mut table = txn.open_table(PartitionTable::new(&name)).unwrap();
                let mut frame = table.get(1u64).unwrap().unwrap().value().to_vec();
                let last = frame.len() - 1;
                frame[last] ^= 0x20;
                table.insert(1u64, frame.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let log = EmbeddedLog::open(dir.path(), 2).unwrap();
        // The intact record still reads.
        let first = log.fetch(Topic::Events, partition, 0, 1).await.unwrap();
        assert_eq!(first[0].value, b"payload-one");
        match log.fetch(Topic::Events, partition, 0, 10).await {
            Err(StreamError::Corrupt(message)) => assert!(message.contains("offset 1"), "{message}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
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
                    let batch = (0..PER_CALL)
                        .map(|i| event(&format!("t{task}"), &format!("t{task}:{call}:{i}")))
                        .collect();
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
        assert!(matches!(
            EmbeddedLog::open(dir.path(), 1),
            Err(StreamError::Unavailable(_))
        ));
    }
}
