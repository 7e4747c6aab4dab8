//! The embedded durable log: an append-only, partitioned log in one redb file.
//!
//! # Layout
//!
//! `dir/log.redb` holds:
//!
//! * one table per topic-partition, named `"<topic>/<partition>"` (for example
//!   `"clickstream-events/0"`). Its key is a `u64` offset and its value an
//!   *entry*: a run of consecutive records of that partition, keyed by the
//!   offset of its first record (see [`EntryBuilder`] for the byte layout);
//! * `meta`: the pinned partition count and the entry format version;
//! * `partition_ends`: per topic-partition, the offset the next record gets.
//!   It is written in the same transaction as the records, so offsets never go
//!   back, even when retention ([`EmbeddedLog::truncate_before`]) has emptied a
//!   partition;
//! * `consumer_offsets`: `"group/topic/partition"` → next offset to read.
//!
//! # Why entries of several records rather than one redb key per record
//!
//! Each redb insert rebuilds a B-tree leaf page, so its cost is nearly fixed
//! per key: measured here at about 8–12 µs of CPU per 450-byte record, which is
//! about half a core at 50,000 events/s before any HTTP or JSON work. Storing
//! all the records one commit writes to a partition as one value (split at
//! [`MAX_ENTRY_BYTES`]) costs about one insert per partition per commit,
//! around 1 µs per record. Offsets stay dense and per record: an entry keyed
//! `b` holding `n` records holds offsets `b..b + n`.
//!
//! # Why compressed chunks
//!
//! Once fsyncs are shared, a commit's time is mostly the bytes it writes:
//! redb writes each entry's pages whole, and this machine's disk syncs about
//! 300 MB/s. Events of one visitor repeat most of their bytes, so each
//! produce call frames its records per partition into a chunk and
//! compresses it with LZ4 on the caller's task ([`ChunkBuilder`]); an entry
//! is a run of such chunks. `bench ingest` measured about a quarter of the
//! bytes written per event and 1.3–1.8× the events/s (README, Benchmarks).
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
//! redb already checksums its pages, but a CRC-32 on every record catches what
//! page checksums cannot: bugs in our own framing, values written by other
//! tools, or a file edited or restored by hand. A record whose checksum does
//! not match is handed on marked as damaged ([`Fetched::damage`]), never as
//! data: the aggregator quarantines it as a `corrupt_record` bad row with its
//! position and reads on. The checksum is computed by the producing task, not
//! the writer, so the work spreads over all cores. A compressed chunk that
//! no longer decompresses loses all its records the same way.
//!
//! # Why the partition count is pinned
//!
//! A key's partition is `hash(key) % partitions`. Changing the count on an
//! existing log would send a visitor's new events to a different partition than
//! the old ones, breaking per-visitor order and sessionisation. So the count
//! given at the first open is stored and wins over later configuration (with a
//! warning).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, Durability, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{partition_for, EventStream, Fetched, Record, StreamError, Topic};

mod forget;
mod framing;
#[cfg(test)]
mod tests;
mod writer;

pub use forget::{forget_records, visit_records};
use framing::{checked_record_count, entry_count, ChunkBuilder, EntryBody, EntryBuilder, CHUNKED_ENTRY};
use writer::{run_writer, SlotChunk, WriteRequest};

/// The file name of the log inside its directory.
pub const LOG_FILE_NAME: &str = "log.redb";

/// At most this many produce/commit requests share one write transaction.
pub const MAX_REQUESTS_PER_COMMIT: usize = 64;

/// A write transaction stops taking more requests once it holds this many
/// bytes of records (a single larger request still goes through alone).
pub const MAX_BYTES_PER_COMMIT: usize = 8 * 1024 * 1024;

/// An entry stops growing once it reaches this size; the next record of the
/// partition starts a new entry. Bounds the work of a fetch that starts in the
/// middle of an entry.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// The largest record (key plus value) `produce` accepts.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// How many requests may wait for the writer before `produce` itself waits.
/// This is the back-pressure that keeps memory bounded under overload.
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// Fetches of at most this many records read inline on the async task; larger
/// ones move to the blocking pool so they do not stall other tasks.
const INLINE_FETCH_LIMIT: usize = 256;

/// redb's page cache. The log is written once and read soon after, so a
/// modest cache is enough.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The entry format this build writes (it reads format 1 too): the first
/// byte of every entry, and `meta`'s `entry_version`.
const ENTRY_VERSION: u8 = CHUNKED_ENTRY;

/// Entry header: version (1) + record count (4).
const ENTRY_HEADER_LEN: usize = 5;

/// Record header: CRC-32 (4) + key length (4) + value length (4).
const RECORD_HEADER_LEN: usize = 12;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PARTITION_ENDS: TableDefinition<&str, u64> = TableDefinition::new("partition_ends");
const CONSUMER_OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("consumer_offsets");

const META_PARTITIONS: &str = "partitions";
const META_ENTRY_VERSION: &str = "entry_version";

/// One topic-partition's table: offset of an entry's first record → entry.
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
        formatter.debug_struct("EmbeddedLog").field("partitions", &self.partition_count()).finish_non_exhaustive()
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
    /// `None` only after a failed write closed it and opening it again
    /// failed too ([`Shared::reopen`]); the next write tries again.
    db: RwLock<Option<Database>>,
    path: PathBuf,
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
        Layout { partitions, table_names }
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

/// Turns any redb error into `Unavailable`: the caller may retry later.
fn storage_error(error: impl Into<redb::Error>) -> StreamError {
    StreamError::Unavailable(format!("embedded log storage: {}", error.into()))
}

fn unavailable(context: &str, error: impl Display) -> StreamError {
    StreamError::Unavailable(format!("{context}: {error}"))
}

const CLOSED: &str = "the log file is closed after a failed write and could not be opened again yet";

fn open_database(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

impl Shared {
    fn begin_read(&self) -> Result<ReadTransaction, StreamError> {
        let db = self.db.read().map_err(|_| StreamError::Unavailable("embedded log lock poisoned".into()))?;
        db.as_ref().ok_or_else(|| StreamError::Unavailable(CLOSED.into()))?.begin_read().map_err(storage_error)
    }

    /// A write transaction; the error is the reason given to callers.
    fn begin_write(&self) -> Result<WriteTransaction, String> {
        let db = self.db.read().map_err(|_| "embedded log lock poisoned".to_string())?;
        db.as_ref().ok_or_else(|| CLOSED.to_string())?.begin_write().map_err(writer::describe)
    }

    /// Closes the file and opens it again. After an I/O error in a commit
    /// (a full disk), redb refuses every later transaction ("Previous I/O
    /// error occurred. Please close and re-open the database"), so without
    /// this the log would stay unwritable after space returned. Opening
    /// rolls the file back to its last durable commit: what failed was
    /// never acknowledged. Fails (leaving it closed) while a reader still
    /// holds the old file, or while the disk is still full; the writer
    /// tries again at its next request.
    fn reopen(&self) -> Result<(), String> {
        let mut db = self.db.write().map_err(|_| "embedded log lock poisoned".to_string())?;
        drop(db.take());
        *db = Some(open_database(&self.path).map_err(|e| format!("reopening {}: {e}", self.path.display()))?);
        tracing::debug!(path = %self.path.display(), "embedded log reopened after a failed write");
        Ok(())
    }

    fn is_open(&self) -> bool {
        self.db.read().is_ok_and(|db| db.is_some())
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir` (file `dir/log.redb`) with
    /// `partitions` partitions per topic.
    ///
    /// If the log already exists with another partition count, the stored
    /// count is kept and a warning is logged: see the module docs for why.
    /// Opening a directory that is already open (in this or another process)
    /// fails with `Unavailable`. After a crash, redb rolls the file back to
    /// its last durable commit while opening.
    pub fn open(dir: &Path, partitions: u32) -> Result<EmbeddedLog, StreamError> {
        if partitions == 0 {
            return Err(StreamError::BadRequest("a log needs at least one partition".to_string()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(&format!("creating log directory {}", dir.display()), e))?;
        let path: PathBuf = dir.join(LOG_FILE_NAME);
        let db = open_database(&path).map_err(|e| unavailable(&format!("opening log {}", path.display()), e))?;

        let (layout, ends) = prepare(&db, partitions, &path)?;
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db)),
            path,
            layout,
            ends: ends.into_iter().map(AtomicU64::new).collect(),
        });

        let (requests, queue) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("embedded-log-writer".to_string())
            .spawn(move || run_writer(&writer_shared, queue))
            .map_err(|e| unavailable("starting the log writer thread", e))?;

        tracing::debug!(
            path = %shared.path.display(),
            partitions = shared.layout.partitions,
            "embedded log open"
        );
        Ok(EmbeddedLog { inner: Arc::new(Inner { shared, requests: Some(requests), writer: Some(writer) }) })
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
    /// Blocking (one durable write transaction, which waits for the writer's
    /// current commit); from async code, call it in
    /// `tokio::task::spawn_blocking`.
    pub fn truncate_before(&self, topic: Topic, partition: u32, offset: u64) -> Result<u64, StreamError> {
        let shared = self.shared();
        let slot = shared.layout.slot(topic, partition)?;
        let table_name = &shared.layout.table_names[slot];
        let corrupt = |base: u64, problem: String| {
            StreamError::Corrupt(format!("{table_name} entry at offset {base}: {problem}"))
        };

        let mut txn = shared.begin_write().map_err(StreamError::Unavailable)?;
        txn.set_durability(Durability::Immediate);
        let mut removed = 0u64;
        {
            let mut table = txn.open_table(shared.layout.table(slot)).map_err(storage_error)?;

            // Entries wholly below `offset` go.
            let mut damaged: Option<(u64, String)> = None;
            table
                .retain_in(..offset, |base, entry| match entry_count(entry) {
                    Ok(count) if base.saturating_add(u64::from(count)) <= offset => {
                        removed += u64::from(count);
                        false
                    }
                    Ok(_) => true,
                    Err(problem) => {
                        damaged.get_or_insert((base, problem));
                        true
                    }
                })
                .map_err(storage_error)?;
            if let Some((base, problem)) = damaged {
                // Dropping the transaction without commit undoes the removals.
                return Err(corrupt(base, problem));
            }

            // An entry straddling `offset` is rewritten without its first
            // records, keyed by `offset`. Records keep their own checksums.
            let straddler = match table.range(..offset).map_err(storage_error)?.next_back() {
                Some(entry) => {
                    let (base, bytes) = entry.map_err(storage_error)?;
                    Some((base.value(), bytes.value().to_vec()))
                }
                None => None,
            };
            if let Some((base, bytes)) = straddler {
                let body = EntryBody::open(&bytes).map_err(|p| corrupt(base, p))?;
                let mut reader = body.reader();
                let mut kept = EntryBuilder::new(offset);
                let mut position = base;
                while let Some(record) = reader.next_record().map_err(|p| corrupt(base, p))? {
                    if position >= offset {
                        kept.push(record.bytes);
                    } else {
                        removed += 1;
                    }
                    position += 1;
                }
                table.remove(base).map_err(storage_error)?;
                if kept.count > 0 {
                    let (key, bytes) = kept.finish();
                    table.insert(key, bytes.as_slice()).map_err(storage_error)?;
                }
            }
        }
        txn.commit().map_err(storage_error)?;
        if removed > 0 {
            tracing::debug!(topic = topic.name(), partition, before = offset, removed, "log truncated");
        }
        Ok(removed)
    }

    /// [`EventStream::trim_committed`], blocking: the lowest committed
    /// position of each partition over every consumer group, then
    /// [`EmbeddedLog::truncate_before`] it.
    pub fn trim_to_committed(&self) -> Result<u64, StreamError> {
        let mut lowest: std::collections::BTreeMap<(Topic, u32), u64> = std::collections::BTreeMap::new();
        {
            let txn = self.shared().begin_read()?;
            let table = txn.open_table(CONSUMER_OFFSETS).map_err(storage_error)?;
            for entry in table.iter().map_err(storage_error)? {
                let (name, next) = entry.map_err(storage_error)?;
                // `group/topic/partition`; the group may itself hold slashes.
                let name = name.value();
                let mut parts = name.rsplitn(3, '/');
                let (Some(partition), Some(topic), Some(_group)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let (Some(topic), Ok(partition)) =
                    (Topic::ALL.into_iter().find(|t| t.name() == topic), partition.parse::<u32>())
                else {
                    continue;
                };
                let slot = lowest.entry((topic, partition)).or_insert(u64::MAX);
                *slot = (*slot).min(next.value());
            }
        }
        let mut removed = 0;
        for ((topic, partition), below) in lowest {
            if partition < self.partition_count() {
                removed += self.truncate_before(topic, partition, below)?;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "trimmed the log below every consumer's committed position");
        }
        Ok(removed)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Queues a request for the writer and waits for its answer.
    async fn send(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), StreamError>>) -> WriteRequest,
    ) -> Result<(), StreamError> {
        let requests =
            self.inner.requests.as_ref().ok_or_else(|| StreamError::Unavailable("the log is closing".to_string()))?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(make(reply))
            .await
            .map_err(|_| StreamError::Unavailable("the log writer has stopped".to_string()))?;
        answer.await.map_err(|_| StreamError::Unavailable("the log writer stopped before answering".to_string()))?
    }

    /// Reads up to `max` (at least 1) records of a slot from offset `from`.
    /// Blocking but short.
    ///
    /// A record that fails its checksum, or the records of an entry whose
    /// structure is damaged, are returned with [`Fetched::damage`] set, one
    /// per offset: the consumer quarantines them and the partition keeps
    /// moving. (An error here would stop every read of the partition, for
    /// good.)
    fn read_range(&self, slot: usize, from: u64, max: usize) -> Result<Vec<Fetched>, StreamError> {
        let shared = self.shared();
        let table_name = &shared.layout.table_names[slot];
        let partition = (slot % shared.layout.partitions as usize) as u32;
        let end = shared.ends[slot].load(Ordering::Acquire);
        let damaged = |offset: u64, value: &[u8], problem: &str| Fetched {
            partition,
            offset,
            key: Vec::new(),
            value: value.to_vec(),
            damage: Some(format!("{table_name} offset {offset}: {problem}")),
        };

        let txn = shared.begin_read()?;
        let table = txn.open_table(shared.layout.table(slot)).map_err(storage_error)?;
        // The entry holding `from`, if any, is the last one starting at or
        // before it.
        let start = match table.range(..=from).map_err(storage_error)?.next_back() {
            Some(entry) => entry.map_err(storage_error)?.0.value(),
            None => from,
        };
        let mut fetched = Vec::with_capacity(max.min(1024));
        let mut entries = table.range(start..).map_err(storage_error)?.peekable();
        while let Some(entry) = entries.next() {
            let (base, bytes) = entry.map_err(storage_error)?;
            let base = base.value();
            // Where this entry's offsets end: the next entry's first, or the
            // partition's end. Known even when its own header is damaged.
            let next_base = match entries.peek() {
                Some(Ok((next, _))) => next.value(),
                _ => end,
            };
            if next_base <= from {
                continue;
            }
            let mut offset = base;
            let problem = match EntryBody::open(bytes.value()) {
                Err(problem) => Some(problem),
                Ok(body) => {
                    let mut reader = body.reader();
                    loop {
                        match reader.next_record() {
                            Ok(None) => break None,
                            Err(problem) => break Some(problem),
                            Ok(Some(record)) => {
                                if offset >= from {
                                    fetched.push(match record.checked() {
                                        // Forgotten (`clickstream forget`): the
                                        // offset stays, nothing is read.
                                        Ok((key, value)) if forget::is_tombstone(key, value) => {
                                            offset += 1;
                                            continue;
                                        }
                                        Ok((key, value)) => Fetched {
                                            partition,
                                            offset,
                                            key: key.to_vec(),
                                            value: value.to_vec(),
                                            damage: None,
                                        },
                                        Err(problem) => damaged(offset, record.bytes, &problem),
                                    });
                                    if fetched.len() >= max {
                                        return Ok(fetched);
                                    }
                                }
                                offset += 1;
                            }
                        }
                    }
                }
            };
            if let Some(problem) = problem {
                // The rest of the entry cannot be walked: each offset it
                // covers becomes a damaged record.
                let problem = format!("entry at offset {base} is damaged: {problem}");
                for offset in offset.max(from)..next_base {
                    fetched.push(damaged(offset, &[], &problem));
                    if fetched.len() >= max {
                        return Ok(fetched);
                    }
                }
            }
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
        // Framing, checksums and compression happen here, on the callers'
        // threads, so the single writer only assigns offsets and copies
        // bytes. Each partition's records of this call become one chunk (or
        // a few, for calls over MAX_ENTRY_BYTES), in the order given.
        let layout = &self.shared().layout;
        let mut open: Vec<ChunkBuilder> = Vec::new();
        open.resize_with(layout.table_names.len(), ChunkBuilder::default);
        let mut chunks = Vec::new();
        for record in &records {
            let partition = partition_for(&record.key, layout.partitions);
            let slot = layout.slot(record.topic, partition)?;
            open[slot].push_record(&record.key, &record.value)?;
            if open[slot].is_full() {
                chunks.push(SlotChunk { slot, chunk: open[slot].finish() });
            }
        }
        drop(records);
        for (slot, builder) in open.iter_mut().enumerate() {
            if !builder.is_empty() {
                chunks.push(SlotChunk { slot, chunk: builder.finish() });
            }
        }
        let bytes = chunks.iter().map(|c| c.chunk.bytes.len()).sum();
        self.send(|reply| WriteRequest::Append { chunks, bytes, reply }).await
    }

    async fn fetch(&self, topic: Topic, partition: u32, from: u64, max: usize) -> Result<Vec<Fetched>, StreamError> {
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

    async fn commit(&self, group: &str, topic: Topic, partition: u32, next_offset: u64) -> Result<(), StreamError> {
        self.shared().layout.slot(topic, partition)?;
        let name = consumer_offset_name(group, topic, partition);
        self.send(|reply| WriteRequest::CommitOffset { name, next_offset, reply }).await
    }

    async fn trim_committed(&self) -> Result<u64, StreamError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || log.trim_to_committed())
            .await
            .map_err(|e| StreamError::Unavailable(format!("log trim task: {e}")))?
    }

    async fn committed(&self, group: &str, topic: Topic, partition: u32) -> Result<Option<u64>, StreamError> {
        self.shared().layout.slot(topic, partition)?;
        let name = consumer_offset_name(group, topic, partition);
        let txn = self.shared().begin_read()?;
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
        let stored_version = meta.get(META_ENTRY_VERSION).map_err(storage_error)?.map(|v| v.value());
        match stored_version {
            Some(version) if version > u64::from(ENTRY_VERSION) => {
                return Err(StreamError::Corrupt(format!(
                    "{} uses entry format {version}, this build reads formats up to {ENTRY_VERSION} (a newer clickstream wrote it)",
                    path.display()
                )));
            }
            Some(version) if version == u64::from(ENTRY_VERSION) => {}
            // New, or written by a build of format 1: its entries stay
            // readable, new ones are written in this build's format, and
            // the mark keeps an older build from misreading them.
            _ => {
                meta.insert(META_ENTRY_VERSION, u64::from(ENTRY_VERSION)).map_err(storage_error)?;
            }
        }
        let stored = meta.get(META_PARTITIONS).map_err(storage_error)?.map(|v| v.value());
        match stored {
            None => {
                meta.insert(META_PARTITIONS, u64::from(partitions)).map_err(storage_error)?;
                partitions
            }
            Some(stored) => {
                let stored = u32::try_from(stored).ok().filter(|count| *count > 0).ok_or_else(|| {
                    StreamError::Corrupt(format!("{} records an impossible partition count {stored}", path.display()))
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
            // Cross-check: `partition_ends` is written with the records, so
            // both agree unless the file was changed by other means.
            let after_last = match table.last().map_err(storage_error)? {
                None => 0,
                Some((base, bytes)) => match checked_record_count(bytes.value()) {
                    Ok(count) => base.value() + u64::from(count),
                    Err(problem) => {
                        tracing::warn!(
                            table = %name,
                            base = base.value(),
                            %problem,
                            "the last entry of a partition is damaged; using the stored end offset"
                        );
                        0
                    }
                },
            };
            let stored = stored_ends.get(name.as_str()).map_err(storage_error)?.map_or(0, |v| v.value());
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
