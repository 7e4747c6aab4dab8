//! The embedded durable log: an append-only, partitioned log in segment files.
//!
//! # Layout
//!
//! `dir/` holds segments (`00000000000000000001.seg`, …, see
//! [`segment`] for the byte layout) and `log.lock`. Each group commit
//! appends one *frame* to the newest segment with one `write` and one
//! `fdatasync`. A frame holds, per topic-partition (a *slot*), *entries*: a
//! run of consecutive records of that partition, found by the offset of its
//! first record (see [`framing::EntryBuilder`] for an entry's bytes), plus the
//! consumer positions and retention marks committed with it. Each segment
//! starts with a checkpoint of everything that is not records (partition
//! count, end offsets, retention marks, consumer positions), so retention
//! deletes whole old segments and loses no state. Opening reads every
//! segment once to rebuild an in-memory index (slot → where each entry is).
//!
//! # Why segments of our own rather than a B-tree (redb)
//!
//! Until this format the log was one redb file. A durable redb commit wrote
//! about 14 pages scattered over a sparse file, then synced: measured here
//! at ~0.82 ms per commit against ~0.33 ms for the same bytes appended in
//! one write, plus ~0.25 ms of B-tree CPU on the single writer. Since every
//! produce waits for its commit, that latency capped `bench ingest`. An
//! append-only log needs no B-tree: offsets are dense, entries arrive in
//! order, and the index of entries fits in memory. Logs written by the redb
//! format are migrated on first open ([`legacy`]). The newest segment is
//! written with zeros ahead of its end, so a frame's sync flushes only data
//! (`Appender::zero_ahead` in [`writer`]); recovery knows a zero tail from
//! a torn write.
//!
//! # Why compressed chunks
//!
//! Once fsyncs are shared, a commit's time is mostly the bytes it writes:
//! and this machine's disk syncs about
//! 300 MB/s. Events of one visitor repeat most of their bytes, so each
//! produce call frames its records per partition into a chunk and
//! compresses it with LZ4 on the caller's task ([`ChunkBuilder`]); an entry
//! is a run of such chunks. `bench ingest` measured about a quarter of the
//! bytes written per event and 1.3–1.8× the events/s (README, Benchmarks).
//!
//! # Why a single writer thread (group commit)
//!
//! `produce` must answer only once the records are durable, and a durable
//! commit costs an `fsync`, which is far slower than writing a few kilobytes.
//! One fsync per produce call would cap throughput at the disk's fsync rate. So
//! every write goes to one dedicated thread, which takes everything that queued
//! up while the previous commit was syncing (up to [`MAX_REQUESTS_PER_COMMIT`]
//! requests or [`MAX_BYTES_PER_COMMIT`] bytes), appends it as ONE frame,
//! syncs once, then answers every waiting caller. The busier the
//! log, the more requests share one fsync. The single writer is also what makes
//! offsets simple: it assigns them, dense from 0 per partition, in the order
//! requests arrive, so the records of one key keep their order.
//!
//! # Why checksums
//!
//! Frames carry checksums of their own (torn writes), but a CRC-32 on every
//! record catches what frame checksums cannot: bugs in our own framing, values written by other
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

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::{partition_for, EventStream, Fetched, Record, StreamError, Topic};

mod forget;
mod framing;
mod legacy;
mod segment;
#[cfg(test)]
mod tests;
mod writer;

pub use forget::{forget_records, visit_records};
use framing::{ChunkBuilder, EntryBody, CHUNKED_ENTRY};
use segment::{Checkpoint, Frame};
use writer::{run_writer, Appender, SlotChunk, WriteRequest};

/// The file that marks a log directory as open: held with an exclusive lock
/// by the process that has the log open.
pub const LOCK_FILE_NAME: &str = "log.lock";

/// Whether `path` is one of the embedded log's data files (a segment, or a
/// log of the earlier single-file format).
pub fn is_log_file(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".seg") || n == legacy::LEGACY_FILE_NAME)
}

/// At most this many produce/commit requests share one group commit.
pub const MAX_REQUESTS_PER_COMMIT: usize = 64;

/// A group commit stops taking more requests once it holds this many bytes
/// of records (a single larger request still goes through alone).
pub const MAX_BYTES_PER_COMMIT: usize = 8 * 1024 * 1024;

/// An entry stops growing once it reaches this size; the next record of the
/// partition starts a new entry. Bounds the work of a fetch that starts in the
/// middle of an entry.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// The largest record (key plus value) `produce` accepts.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// A new segment is started once the newest reaches this size. Retention
/// deletes whole segments, so this is also the granularity of the disk space
/// it frees.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// How far ahead of its last frame the newest segment is kept written with
/// zeros, by default (writer.rs, `Appender::zero_ahead`, says why).
pub const ZERO_AHEAD_BYTES: u64 = 8 * 1024 * 1024;

/// The environment variable that sets it, in MiB (0 turns it off: frames
/// are appended to the end of the file). When the disk fills, the log still
/// takes up to that much into the space it wrote ahead, then answers
/// writes with `Unavailable` (ingest: 503) until space returns.
pub const ZERO_AHEAD_VAR: &str = "CLICKSTREAM_LOG_ZERO_AHEAD_MIB";

fn zero_ahead_setting() -> u64 {
    match std::env::var(ZERO_AHEAD_VAR) {
        Ok(mib) => match mib.trim().parse::<u64>() {
            Ok(mib) => mib.saturating_mul(1024 * 1024),
            Err(_) => {
                tracing::warn!(value = %mib, "{ZERO_AHEAD_VAR} is not a whole number of MiB; using the default");
                ZERO_AHEAD_BYTES
            }
        },
        Err(_) => ZERO_AHEAD_BYTES,
    }
}

/// How many requests may wait for the writer before `produce` itself waits.
/// This is the back-pressure that keeps memory bounded under overload.
const WRITE_QUEUE_CAPACITY: usize = 1024;

/// Fetches of at most this many records read inline on the async task; larger
/// ones move to the blocking pool so they do not stall other tasks.
const INLINE_FETCH_LIMIT: usize = 256;

/// The entry format this build writes (it reads format 1 too), recorded in
/// every checkpoint.
const ENTRY_VERSION: u8 = CHUNKED_ENTRY;

/// Entry header: version (1) + record count (4).
const ENTRY_HEADER_LEN: usize = 5;

/// Record header: CRC-32 (4) + key length (4) + value length (4).
const RECORD_HEADER_LEN: usize = 12;

/// A durable, append-only, partitioned log stored in segment files.
///
/// Cheap to clone: clones share one index and one writer thread. When the
/// last clone is dropped, the writer finishes the requests already queued,
/// then stops, and the directory's lock is released before `drop` returns
/// (so the same directory can be opened again right away).
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
    dir: PathBuf,
    layout: Layout,
    /// Per slot, the offset the next record will get, counting only durable
    /// records. Written with the index, under its lock.
    ends: Vec<AtomicU64>,
    index: RwLock<Index>,
    /// The newest segment, which every write appends to. Held by the writer
    /// for a group commit and by retention for its mark.
    appender: Mutex<Appender>,
    /// Size at which the newest segment is closed and a new one started.
    segment_bytes: u64,
    /// How far ahead of its last frame the newest segment is written with
    /// zeros ([`ZERO_AHEAD_VAR`]).
    zero_ahead: u64,
    /// Holds the directory's exclusive lock while the log is open.
    _lock: File,
}

/// Where every durable entry is, and the state outside the records.
struct Index {
    /// Per slot, its entries in offset order.
    slots: Vec<Vec<Located>>,
    /// Per slot, the first offset retention keeps.
    starts: Vec<u64>,
    /// `group/topic/partition` → next offset to read.
    offsets: BTreeMap<String, u64>,
    /// Segment sequence → the file, open for reading.
    files: BTreeMap<u64, Arc<File>>,
}

/// One entry's place on disk.
#[derive(Clone, Copy, Debug)]
struct Located {
    base: u64,
    /// The record count its header claims; `None` when the header is
    /// damaged (its span is then up to the next entry).
    count: Option<u32>,
    segment: u64,
    position: u64,
    len: u32,
}

/// Topic-partitions are numbered as slots: `topic_index * partitions + partition`.
struct Layout {
    partitions: u32,
    /// Per slot, its name in messages (`clickstream-events/0`).
    names: Vec<String>,
}

impl Layout {
    fn new(partitions: u32) -> Layout {
        let names = Topic::ALL
            .iter()
            .flat_map(|topic| (0..partitions).map(move |p| format!("{}/{}", topic.name(), p)))
            .collect();
        Layout { partitions, names }
    }

    fn slots(&self) -> usize {
        self.names.len()
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

    fn topic(&self, slot: usize) -> Topic {
        Topic::ALL[slot / self.partitions as usize]
    }
}

fn topic_index(topic: Topic) -> usize {
    match topic {
        Topic::Events => 0,
        Topic::Rejects => 1,
    }
}

fn unavailable(context: &str, error: impl Display) -> StreamError {
    StreamError::Unavailable(format!("{context}: {error}"))
}

fn poisoned() -> StreamError {
    StreamError::Unavailable("embedded log lock poisoned".to_string())
}

/// Takes the directory's exclusive lock, or says who holds it.
fn lock_directory(dir: &Path) -> Result<File, StreamError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| unavailable(&format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StreamError::Unavailable(format!(
            "the log in {} is open in another process (is `clickstream serve` or `aggregate` running on it?)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(unavailable(&format!("locking {}", path.display()), e)),
    }
}

impl Shared {
    fn index(&self) -> Result<RwLockReadGuard<'_, Index>, StreamError> {
        self.index.read().map_err(|_| poisoned())
    }
}

/// The state recovery rebuilds from the segments.
struct Recovered {
    checkpoint: Checkpoint,
    slots: Vec<Vec<Located>>,
    files: BTreeMap<u64, Arc<File>>,
    /// The newest segment: its sequence, where its intact frames end, and
    /// where the zeros after them end.
    newest: Option<(u64, u64, u64)>,
}

/// Reads every segment in order and rebuilds the index. Cuts a torn last
/// frame off the newest segment.
fn recover(dir: &Path, sequences: &[u64]) -> Result<Recovered, StreamError> {
    let mut checkpoint: Option<Checkpoint> = None;
    let mut slots: Vec<Vec<Located>> = Vec::new();
    let mut files = BTreeMap::new();
    let mut newest = None;
    for (i, &sequence) in sequences.iter().enumerate() {
        let path = segment::segment_path(dir, sequence);
        let corrupt = |problem: String| StreamError::Corrupt(format!("log segment {}: {problem}", path.display()));
        let scanned =
            segment::scan(&path, checkpoint.as_ref().map_or(usize::MAX, |c| c.starts.len())).map_err(corrupt)?;
        let last = i + 1 == sequences.len();
        if scanned.frames.is_empty() {
            if last {
                // Created while rolling and never completed: it holds nothing.
                std::fs::remove_file(&path).map_err(|e| unavailable(&format!("removing {}", path.display()), e))?;
                continue;
            }
            return Err(corrupt("holds no readable frame".to_string()));
        }
        if scanned.damaged_frames > 0 {
            tracing::warn!(
                segment = %path.display(),
                frames = scanned.damaged_frames,
                "log frames fail their checksum; their records are checked one by one as they are read"
            );
        }
        // Zeros after the last frame are the appender's, written ahead of
        // time (writer.rs, `zero_ahead`): nothing was lost there.
        let zero_tail = scanned.bytes[scanned.valid_len as usize..].iter().all(|b| *b == 0);
        if scanned.valid_len < scanned.file_len && !zero_tail {
            if last {
                tracing::warn!(
                    segment = %path.display(),
                    cut_bytes = scanned.file_len - scanned.valid_len,
                    "cutting a torn write off the end of the log (it was never acknowledged)"
                );
                let file = std::fs::OpenOptions::new().write(true).open(&path);
                file.and_then(|f| f.set_len(scanned.valid_len).and_then(|()| f.sync_all()))
                    .map_err(|e| unavailable(&format!("cutting the torn end of {}", path.display()), e))?;
            } else {
                tracing::error!(
                    segment = %path.display(),
                    unreadable_bytes = scanned.file_len - scanned.valid_len,
                    "a log segment is damaged: the records after its last readable frame are lost"
                );
            }
        }
        for (_, frame) in scanned.frames {
            match frame {
                Frame::Checkpoint(read) => {
                    if read.starts.len() != 2 * read.partitions as usize || read.partitions == 0 {
                        return Err(corrupt(format!("checkpoint with {} partitions", read.partitions)));
                    }
                    if read.entry_format > ENTRY_VERSION {
                        return Err(corrupt(format!(
                            "uses entry format {}, this build reads formats up to {ENTRY_VERSION} (a newer clickstream wrote it)",
                            read.entry_format
                        )));
                    }
                    if let Some(known) = &checkpoint {
                        if known.partitions != read.partitions {
                            return Err(corrupt(format!(
                                "has {} partitions, the segments before it {}",
                                read.partitions, known.partitions
                            )));
                        }
                    }
                    if slots.is_empty() {
                        slots = vec![Vec::new(); read.starts.len()];
                    }
                    checkpoint = Some(read);
                }
                Frame::Batch { entries, offsets, marks } => {
                    let Some(state) = checkpoint.as_mut() else {
                        return Err(corrupt("records before the first checkpoint".to_string()));
                    };
                    for entry in entries {
                        let count = entry.count.ok();
                        if let Some(count) = count {
                            let end = &mut state.ends[entry.slot];
                            *end = (*end).max(entry.base + u64::from(count));
                        }
                        slots[entry.slot].push(Located {
                            base: entry.base,
                            count,
                            segment: sequence,
                            position: entry.position,
                            len: entry.len,
                        });
                    }
                    state.offsets.extend(offsets);
                    for (slot, start) in marks {
                        state.starts[slot] = state.starts[slot].max(start);
                    }
                }
            }
        }
        let file = File::open(&path).map_err(|e| unavailable(&format!("opening {}", path.display()), e))?;
        files.insert(sequence, Arc::new(file));
        let zeroed = if zero_tail { scanned.file_len } else { scanned.valid_len };
        newest = Some((sequence, scanned.valid_len, zeroed));
    }
    let checkpoint = checkpoint.unwrap_or_default();
    for (slot, entries) in slots.iter_mut().enumerate() {
        drop_below(entries, checkpoint.starts[slot]);
    }
    Ok(Recovered { checkpoint, slots, files, newest })
}

/// The records an entry covers: its count, or up to the next entry's base.
fn span(entries: &[Located], i: usize, end: u64) -> u64 {
    let next = entries.get(i + 1).map_or(end, |next| next.base);
    match entries[i].count {
        Some(count) => u64::from(count),
        None => next.saturating_sub(entries[i].base),
    }
}

/// Removes the entries wholly below `start` from a slot's index.
fn drop_below(entries: &mut Vec<Located>, start: u64) {
    let dead = entries
        .iter()
        .enumerate()
        .take_while(|(i, e)| {
            let next = entries.get(i + 1).map(|n| n.base);
            match e.count {
                Some(count) => e.base + u64::from(count) <= start,
                None => next.is_some_and(|next| next <= start),
            }
        })
        .count();
    entries.drain(..dead);
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir` with `partitions` partitions per
    /// topic.
    ///
    /// If the log already exists with another partition count, the stored
    /// count is kept and a warning is logged: see the module docs for why.
    /// Opening a directory that is already open (in this or another process)
    /// fails with `Unavailable`. After a crash, a torn last write (never
    /// acknowledged) is cut off. A log of the earlier single-file format is
    /// migrated first.
    pub fn open(dir: &Path, partitions: u32) -> Result<EmbeddedLog, StreamError> {
        EmbeddedLog::open_with(dir, partitions, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, partitions: u32, segment_bytes: u64) -> Result<EmbeddedLog, StreamError> {
        if partitions == 0 {
            return Err(StreamError::BadRequest("a log needs at least one partition".to_string()));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(&format!("creating log directory {}", dir.display()), e))?;
        let lock = lock_directory(dir)?;
        legacy::migrate_if_present(dir)?;
        let list = |dir: &Path| {
            segment::list_segments(dir).map_err(|e| unavailable(&format!("listing log directory {}", dir.display()), e))
        };
        let mut recovered = recover(dir, &list(dir)?)?;
        let newest = match recovered.newest {
            Some(newest) => newest,
            None => {
                // A new log: its first segment pins the partition count.
                let checkpoint = Checkpoint {
                    partitions,
                    entry_format: ENTRY_VERSION,
                    starts: vec![0; 2 * partitions as usize],
                    ends: vec![0; 2 * partitions as usize],
                    offsets: BTreeMap::new(),
                };
                let len = writer::create_segment(dir, 1, &checkpoint)
                    .map_err(|e| unavailable(&format!("creating the first segment in {}", dir.display()), e))?;
                recovered = recover(dir, &list(dir)?)?;
                (1, len, len)
            }
        };
        let checkpoint = recovered.checkpoint;
        if checkpoint.partitions != partitions {
            tracing::warn!(
                dir = %dir.display(),
                stored = checkpoint.partitions,
                requested = partitions,
                "the log already has {} partitions; keeping them, because changing \
                 the count would move keys to other partitions",
                checkpoint.partitions
            );
        }
        let layout = Layout::new(checkpoint.partitions);
        let appender = Appender::open(dir, newest.0, newest.1, newest.2)
            .map_err(|e| unavailable(&format!("opening the newest segment in {}", dir.display()), e))?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            ends: checkpoint.ends.iter().map(|end| AtomicU64::new(*end)).collect(),
            index: RwLock::new(Index {
                slots: recovered.slots,
                starts: checkpoint.starts,
                offsets: checkpoint.offsets,
                files: recovered.files,
            }),
            layout,
            appender: Mutex::new(appender),
            segment_bytes,
            zero_ahead: zero_ahead_setting(),
            _lock: lock,
        });

        let (requests, queue) = mpsc::channel(WRITE_QUEUE_CAPACITY);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("embedded-log-writer".to_string())
            .spawn(move || run_writer(&writer_shared, queue))
            .map_err(|e| unavailable("starting the log writer thread", e))?;

        tracing::debug!(dir = %dir.display(), partitions = shared.layout.partitions, "embedded log open");
        Ok(EmbeddedLog { inner: Arc::new(Inner { shared, requests: Some(requests), writer: Some(writer) }) })
    }

    /// The partition count of each topic (the pinned one, which may differ
    /// from what was asked at `open`).
    pub fn partition_count(&self) -> u32 {
        self.shared().layout.partitions
    }

    /// Retention: drops the records of one partition with an offset below
    /// `offset` and returns how many went. End offsets do not move, so new
    /// records keep getting fresh offsets, and a later `fetch` from a removed
    /// offset starts at the first record kept. The mark is durable when this
    /// returns; segments that hold nothing kept any more are deleted.
    ///
    /// Blocking (one synced append, which waits for the writer's current
    /// commit); from async code, call it in `tokio::task::spawn_blocking`.
    pub fn truncate_before(&self, topic: Topic, partition: u32, offset: u64) -> Result<u64, StreamError> {
        let slot = self.shared().layout.slot(topic, partition)?;
        self.truncate_slots(&[(slot, offset)])
    }

    /// [`EmbeddedLog::truncate_before`] for several slots at once: one
    /// synced frame holds every mark.
    fn truncate_slots(&self, marks: &[(usize, u64)]) -> Result<u64, StreamError> {
        let shared = self.shared();
        let mut appender = shared.appender.lock().map_err(|_| poisoned())?;
        let mut moved = Vec::with_capacity(marks.len());
        let mut removed = 0;
        {
            let index = shared.index()?;
            for &(slot, offset) in marks {
                // Nothing at or past the end exists yet: a mark there would
                // hide records produced later.
                let end = shared.ends[slot].load(Ordering::Acquire);
                let offset = offset.min(end);
                let start = index.starts[slot];
                if offset <= start {
                    continue;
                }
                let entries = &index.slots[slot];
                let mut dropped = 0;
                for (i, entry) in entries.iter().enumerate() {
                    let first = entry.base.max(start);
                    if first >= offset {
                        break;
                    }
                    dropped += (entry.base + span(entries, i, end)).min(offset).saturating_sub(first);
                }
                if dropped > 0 {
                    tracing::debug!(slot = %shared.layout.names[slot], before = offset, dropped, "log truncated");
                }
                removed += dropped;
                moved.push((slot, offset));
            }
        }
        if moved.is_empty() {
            return Ok(0);
        }
        let mut frame = Vec::new();
        writer::put_batch_frame(&mut frame, &[], std::iter::empty(), &moved);
        appender
            .append(shared, &frame)
            .map_err(|e| StreamError::Unavailable(format!("embedded log write failed: {e}")))?;
        let obsolete = {
            let mut index = shared.index.write().map_err(|_| poisoned())?;
            for &(slot, offset) in &moved {
                index.starts[slot] = offset;
                drop_below(&mut index.slots[slot], offset);
            }
            // The oldest segment still needed: the one of the first entry
            // any slot keeps, or the newest.
            let keep_from = index.slots.iter().filter_map(|entries| entries.first().map(|e| e.segment)).min();
            let keep_from = keep_from.unwrap_or(appender.sequence).min(appender.sequence);
            let obsolete: Vec<u64> = index.files.range(..keep_from).map(|(sequence, _)| *sequence).collect();
            for sequence in &obsolete {
                index.files.remove(sequence);
            }
            obsolete
        };
        drop(appender);
        for sequence in obsolete {
            let path = segment::segment_path(&shared.dir, sequence);
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(segment = %path.display(), "log segment deleted by retention"),
                Err(e) => tracing::warn!(segment = %path.display(), error = %e, "could not delete a log segment"),
            }
        }
        Ok(removed)
    }

    /// [`EventStream::trim_committed`], blocking: the lowest committed
    /// position of each partition over every consumer group, then
    /// [`EmbeddedLog::truncate_before`] it, all marks in one synced write.
    pub fn trim_to_committed(&self) -> Result<u64, StreamError> {
        let mut lowest: BTreeMap<usize, u64> = BTreeMap::new();
        let layout = &self.shared().layout;
        for (name, next) in &self.shared().index()?.offsets {
            // `group/topic/partition`; the group may itself hold slashes.
            let mut parts = name.rsplitn(3, '/');
            let (Some(partition), Some(topic), Some(_group)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Some(topic), Ok(partition)) =
                (Topic::ALL.into_iter().find(|t| t.name() == topic), partition.parse::<u32>())
            else {
                continue;
            };
            let Ok(slot) = layout.slot(topic, partition) else { continue };
            let lowest = lowest.entry(slot).or_insert(u64::MAX);
            *lowest = (*lowest).min(*next);
        }
        let marks: Vec<(usize, u64)> = lowest.into_iter().collect();
        let removed = self.truncate_slots(&marks)?;
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
        let name = &shared.layout.names[slot];
        let partition = (slot % shared.layout.partitions as usize) as u32;
        let damaged = |offset: u64, value: &[u8], problem: &str| Fetched {
            partition,
            offset,
            key: Bytes::new(),
            value: Bytes::copy_from_slice(value),
            damage: Some(format!("{name} offset {offset}: {problem}")),
        };

        // Under the lock, only note which entries to read (with the span
        // each covers); the reads themselves happen after it is released.
        let (from, plan) = {
            let index = shared.index()?;
            let end = shared.ends[slot].load(Ordering::Acquire);
            let from = from.max(index.starts[slot]);
            let entries = &index.slots[slot];
            // The entry holding `from` is the last one starting at or before it.
            let first = entries.partition_point(|e| e.base <= from).saturating_sub(1);
            let mut plan = Vec::new();
            let mut planned = 0u64;
            for i in first..entries.len() {
                let entry = entries[i];
                let next_base = entry.base + span(entries, i, end);
                if next_base <= from {
                    continue;
                }
                let file = index.files.get(&entry.segment).cloned();
                plan.push((entry, next_base, file));
                planned += next_base - entry.base.max(from);
                if planned >= max as u64 {
                    break;
                }
            }
            (from, plan)
        };

        let mut fetched = Vec::with_capacity(max.min(1024));
        for (entry, next_base, file) in plan {
            let base = entry.base;
            let mut bytes = vec![0; entry.len as usize];
            let read = match &file {
                Some(file) => file.read_exact_at(&mut bytes, entry.position).map_err(|e| e.to_string()),
                None => Err("its segment is gone".to_string()),
            };
            if let Err(problem) = read {
                return Err(StreamError::Unavailable(format!("reading {name} entry at offset {base}: {problem}")));
            }
            let mut offset = base;
            let problem = match EntryBody::open_shared(bytes.into()) {
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
                                            key: body.share(key),
                                            value: body.share(value),
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
        open.resize_with(layout.slots(), ChunkBuilder::default);
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
        Ok(self.shared().index()?.offsets.get(&name).copied())
    }
}

fn consumer_offset_name(group: &str, topic: Topic, partition: u32) -> String {
    format!("{group}/{}/{partition}", topic.name())
}
