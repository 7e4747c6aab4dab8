//! The embedded log's single writer thread: the requests it takes and the
//! group commit that makes them durable together (see the module above for
//! why one writer).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use redb::Durability;
use tokio::sync::{mpsc, oneshot};

use super::framing::{Chunk, EntryBuilder};
use super::{Shared, StreamError, CONSUMER_OFFSETS, MAX_BYTES_PER_COMMIT, MAX_REQUESTS_PER_COMMIT, PARTITION_ENDS};

/// A request to the writer thread.
pub(super) enum WriteRequest {
    Append { chunks: Vec<SlotChunk>, bytes: usize, reply: oneshot::Sender<Result<(), StreamError>> },
    CommitOffset { name: String, next_offset: u64, reply: oneshot::Sender<Result<(), StreamError>> },
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

/// Records of one partition already framed, checksummed and compressed,
/// ready for the writer. A produce call's chunks of one slot keep its order.
pub(super) struct SlotChunk {
    pub(super) slot: usize,
    pub(super) chunk: Chunk,
}

/// The writer thread: group commit. Runs until every handle is gone and the
/// queue is empty.
pub(super) fn run_writer(shared: &Shared, mut queue: mpsc::Receiver<WriteRequest>) {
    // Next offset per slot, including records of the transaction in progress.
    let mut next: Vec<u64> = shared.ends.iter().map(|end| end.load(Ordering::Acquire)).collect();
    // A full disk fails every write until space returns: say so once, then
    // once a minute with the count, and when writes succeed again.
    let mut failing: Option<(u64, std::time::Instant)> = None;
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
        let outcome = if shared.is_open() { Ok(()) } else { shared.reopen() };
        match outcome.and_then(|()| write_batch(shared, &batch, &mut next)) {
            Ok(()) => {
                if let Some((failed, _)) = failing.take() {
                    tracing::info!(failed_writes = failed, "embedded log writes succeed again");
                }
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
                let now = std::time::Instant::now();
                match &mut failing {
                    Some((failed, last)) => {
                        *failed += 1;
                        if now.duration_since(*last) >= std::time::Duration::from_secs(60) {
                            tracing::warn!(failed_writes = *failed, "{reason} (still failing)");
                            *last = now;
                        }
                    }
                    None => {
                        tracing::warn!(requests = batch.len(), "{reason}");
                        failing = Some((1, now));
                    }
                }
                // Nothing of this transaction was kept: hand its offsets out again.
                for (next, end) in next.iter_mut().zip(&shared.ends) {
                    *next = end.load(Ordering::Acquire);
                }
                for request in batch {
                    request.answer(Err(StreamError::Unavailable(reason.clone())));
                }
                if let Err(e) = shared.reopen() {
                    tracing::warn!(error = %e, "embedded log not reopened; trying again at the next write");
                }
            }
        }
    }
    tracing::debug!("embedded log writer stopped");
}

/// Writes a batch of requests in one durable transaction. The error is the
/// reason given to every waiting caller.
pub(super) fn write_batch(shared: &Shared, batch: &[WriteRequest], next: &mut [u64]) -> Result<(), String> {
    // Assign offsets in arrival order and gather each partition's records
    // into as few entries as the size bound allows.
    let mut entries: BTreeMap<usize, Vec<EntryBuilder>> = BTreeMap::new();
    let mut consumer_offsets: Vec<(&str, u64)> = Vec::new();
    for request in batch {
        match request {
            WriteRequest::Append { chunks, .. } => {
                for SlotChunk { slot, chunk } in chunks {
                    let builders = entries.entry(*slot).or_default();
                    match builders.last_mut() {
                        Some(builder) if builder.has_room() => builder.push_chunk(chunk),
                        _ => {
                            let mut builder = EntryBuilder::new(next[*slot]);
                            builder.push_chunk(chunk);
                            builders.push(builder);
                        }
                    }
                    next[*slot] += u64::from(chunk.count);
                }
            }
            WriteRequest::CommitOffset { name, next_offset, .. } => {
                consumer_offsets.push((name.as_str(), *next_offset));
            }
        }
    }

    let mut txn = shared.begin_write()?;
    txn.set_durability(Durability::Immediate);
    if !entries.is_empty() {
        let mut ends = txn.open_table(PARTITION_ENDS).map_err(describe)?;
        for slot in entries.keys() {
            ends.insert(shared.layout.table_names[*slot].as_str(), next[*slot]).map_err(describe)?;
        }
    }
    for (slot, builders) in entries {
        let mut table = txn.open_table(shared.layout.table(slot)).map_err(describe)?;
        for builder in builders {
            let (base, bytes) = builder.finish();
            table.insert(base, bytes.as_slice()).map_err(describe)?;
        }
    }
    if !consumer_offsets.is_empty() {
        let mut table = txn.open_table(CONSUMER_OFFSETS).map_err(describe)?;
        for (name, offset) in consumer_offsets {
            table.insert(name, offset).map_err(describe)?;
        }
    }
    txn.commit().map_err(describe)?;
    Ok(())
}

/// The text of a storage error, for callers' `Unavailable`.
pub(super) fn describe(error: impl Into<redb::Error>) -> String {
    error.into().to_string()
}
