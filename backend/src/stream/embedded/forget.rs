//! Forgetting records of a closed log (`clickstream forget`).
//!
//! A forgotten record becomes a *tombstone*: a record with an empty key and
//! an empty value, which keeps its offset (offsets stay dense, consumer
//! positions stay valid) and which reads skip. Real records always have a
//! value (a JSON document), so the two never mix.
//!
//! Each segment that holds a forgotten record is copied, frame by frame,
//! into a new file that never held it, which then replaces the old one in
//! one rename: the forgotten bytes are not left behind in the file.

use std::path::Path;

use super::framing::{encode_record, EntryBody, EntryBuilder};
use super::segment::{self, Frame};
use super::writer::put_batch_frame;
use super::{legacy, lock_directory, unavailable, Layout, Topic};
use crate::stream::StreamError;

/// Whether a checked record is a tombstone left by [`forget_records`].
pub(super) fn is_tombstone(key: &[u8], value: &[u8]) -> bool {
    key.is_empty() && value.is_empty()
}

/// Calls `each` with every segment of the closed log in `dir`, oldest first,
/// read whole one at a time (a large log is never all in memory), and the
/// log's layout from the segment's own checkpoint (every segment starts
/// with one).
fn for_each_segment(
    dir: &Path,
    mut each: impl FnMut(&Path, &segment::Scanned, &Layout) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    let sequences =
        segment::list_segments(dir).map_err(|e| unavailable(&format!("listing log directory {}", dir.display()), e))?;
    for sequence in sequences {
        let path = segment::segment_path(dir, sequence);
        let scanned = segment::scan(&path, usize::MAX)
            .map_err(|problem| StreamError::Corrupt(format!("log segment {}: {problem}", path.display())))?;
        let layout = scanned.frames.iter().find_map(|(_, frame)| match frame {
            Frame::Checkpoint(checkpoint) => Some(Layout::new(checkpoint.partitions)),
            Frame::Batch { .. } => None,
        });
        // A segment without a checkpoint holds nothing readable (see recovery).
        if let Some(layout) = layout {
            each(&path, &scanned, &layout)?;
        }
    }
    Ok(())
}

/// Opens a closed log for offline work: takes its lock (so `serve` cannot
/// be writing it) and migrates an earlier-format file first.
fn lock_closed(dir: &Path) -> Result<Option<std::fs::File>, StreamError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let lock = lock_directory(dir)?;
    legacy::migrate_if_present(dir)?;
    Ok(Some(lock))
}

/// Calls `visit` with the topic and value of every intact record of the log
/// in `dir`. The log must not be open elsewhere (its lock says so). A
/// directory without a log has no records.
pub fn visit_records(dir: &Path, visit: &mut dyn FnMut(Topic, &[u8])) -> Result<(), StreamError> {
    let Some(_lock) = lock_closed(dir)? else { return Ok(()) };
    for_each_segment(dir, |_, scanned, layout| {
        for (_, frame) in &scanned.frames {
            let Frame::Batch { entries, .. } = frame else { continue };
            for entry in entries {
                let at = entry.position as usize;
                let Some(bytes) = scanned.bytes.get(at..at + entry.len as usize) else { continue };
                let Ok(body) = EntryBody::open(bytes) else { continue };
                let mut reader = body.reader();
                while let Ok(Some(record)) = reader.next_record() {
                    if let Ok((key, value)) = record.checked() {
                        if !is_tombstone(key, value) {
                            visit(layout.topic(entry.slot), value);
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// Rewrites the log in `dir` (which must not be open elsewhere) with every
/// record `forget` says yes to replaced by a tombstone, and returns how many
/// were. Damaged entries and records are copied as they are (the consumer
/// quarantines them). Each rewritten segment replaces the old one only once
/// it is complete and durable: a crash leaves the old one, and running again
/// finishes the work.
pub fn forget_records(dir: &Path, forget: &mut dyn FnMut(Topic, &[u8]) -> bool) -> Result<u64, StreamError> {
    let Some(_lock) = lock_closed(dir)? else { return Ok(0) };
    let tombstone = encode_record(&[], &[])?;
    let mut forgotten = 0;
    for_each_segment(dir, |path, scanned, layout| {
        let mut rewritten = segment::file_header().to_vec();
        let mut forgotten_here = 0;
        for (_, frame) in &scanned.frames {
            match frame {
                Frame::Checkpoint(checkpoint) => segment::put_checkpoint(&mut rewritten, checkpoint),
                Frame::Batch { entries, offsets, marks } => {
                    let mut kept: Vec<(usize, u64, Vec<u8>)> = Vec::with_capacity(entries.len());
                    for entry in entries {
                        let at = entry.position as usize;
                        let bytes = scanned.bytes.get(at..at + entry.len as usize).unwrap_or_default();
                        let topic = layout.topic(entry.slot);
                        let bytes = match without_forgotten(entry.base, bytes, topic, &tombstone, forget) {
                            Some((rebuilt, n)) => {
                                forgotten_here += n;
                                rebuilt
                            }
                            None => bytes.to_vec(),
                        };
                        kept.push((entry.slot, entry.base, bytes));
                    }
                    let borrowed: Vec<(usize, u64, &[u8])> =
                        kept.iter().map(|(slot, base, bytes)| (*slot, *base, bytes.as_slice())).collect();
                    put_batch_frame(
                        &mut rewritten,
                        &borrowed,
                        offsets.iter().map(|(name, next)| (name.as_str(), *next)),
                        marks,
                    );
                }
            }
        }
        if forgotten_here > 0 {
            segment::write_whole(path, &rewritten)
                .map_err(|e| unavailable(&format!("rewriting {} without the forgotten records", path.display()), e))?;
            forgotten += forgotten_here;
        }
        Ok(())
    })?;
    Ok(forgotten)
}

/// The entry with its forgotten records replaced by tombstones, and how
/// many were; `None` when nothing in it is forgotten or it cannot be walked.
fn without_forgotten(
    base: u64,
    bytes: &[u8],
    topic: Topic,
    tombstone: &[u8],
    forget: &mut dyn FnMut(Topic, &[u8]) -> bool,
) -> Option<(Vec<u8>, u64)> {
    let body = EntryBody::open(bytes).ok()?;
    let mut reader = body.reader();
    let mut rebuilt = EntryBuilder::new(base);
    let mut forgotten = 0;
    while let Some(record) = reader.next_record().ok()? {
        match record.checked() {
            Ok((key, value)) if !is_tombstone(key, value) && forget(topic, value) => {
                rebuilt.push(tombstone);
                forgotten += 1;
            }
            _ => rebuilt.push(record.bytes),
        }
    }
    (forgotten > 0).then(|| (rebuilt.finish().1, forgotten))
}
