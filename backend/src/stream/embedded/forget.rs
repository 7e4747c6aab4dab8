//! Forgetting records of a closed log (`clickstream forget`).
//!
//! A forgotten record becomes a *tombstone*: a record with an empty key and
//! an empty value, which keeps its offset (offsets stay dense, consumer
//! positions stay valid) and which reads skip. Real records always have a
//! value (a JSON document), so the two never mix.
//!
//! Removing entries inside redb would not be enough: redb reuses freed
//! pages but does not wipe them, so the forgotten bytes would stay in
//! `log.redb`. The log is instead copied, record by record, into a new file
//! that never held them, which then replaces the old one in one rename.

use std::path::Path;

use redb::{Database, Durability, ReadableTable, TableDefinition, TableError};

use super::framing::{encode_record, EntryBody, EntryBuilder};
use super::{
    storage_error, unavailable, Layout, Topic, CONSUMER_OFFSETS, ENTRY_VERSION, LOG_FILE_NAME, META,
    META_ENTRY_VERSION, META_PARTITIONS, PARTITION_ENDS,
};
use crate::stream::StreamError;

/// Whether a checked record is a tombstone left by [`forget_records`].
pub(super) fn is_tombstone(key: &[u8], value: &[u8]) -> bool {
    key.is_empty() && value.is_empty()
}

/// Calls `visit` with the topic and value of every intact record of the log
/// in `dir`. The log must not be open elsewhere (redb's lock says so).
/// A directory without a log has no records.
pub fn visit_records(dir: &Path, visit: &mut dyn FnMut(Topic, &[u8])) -> Result<(), StreamError> {
    let path = dir.join(LOG_FILE_NAME);
    if !path.exists() {
        return Ok(());
    }
    let db = open(&path)?;
    let txn = db.begin_read().map_err(storage_error)?;
    let layout = Layout::new(stored_partitions(&txn, &path)?);
    for (slot, topic) in slots(&layout) {
        let table = match txn.open_table(layout.table(slot)) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(storage_error(e)),
        };
        for entry in table.iter().map_err(storage_error)? {
            let (_, bytes) = entry.map_err(storage_error)?;
            let Ok(body) = EntryBody::open(bytes.value()) else { continue };
            let mut reader = body.reader();
            while let Ok(Some(record)) = reader.next_record() {
                if let Ok((key, value)) = record.checked() {
                    if !is_tombstone(key, value) {
                        visit(topic, value);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Rewrites the log in `dir` (which must not be open elsewhere) with every
/// record `forget` says yes to replaced by a tombstone, and returns how many
/// were. Damaged entries and records are copied as they are (the consumer
/// quarantines them). The new file replaces the old one only once it is
/// complete and durable: a crash leaves the old log, and running again
/// finishes the work.
pub fn forget_records(dir: &Path, forget: &mut dyn FnMut(Topic, &[u8]) -> bool) -> Result<u64, StreamError> {
    let path = dir.join(LOG_FILE_NAME);
    if !path.exists() {
        return Ok(0);
    }
    let tmp = dir.join(format!("{LOG_FILE_NAME}.forget.tmp"));
    let io = |what: &str| {
        let what = format!("{what} {}", tmp.display());
        move |e: std::io::Error| unavailable(&what, e)
    };
    let _ = std::fs::remove_file(&tmp);
    let tombstone = encode_record(&[], &[])?;
    let mut forgotten = 0;
    {
        let old = open(&path)?;
        let new =
            Database::builder().create(&tmp).map_err(|e| unavailable(&format!("creating {}", tmp.display()), e))?;
        let read = old.begin_read().map_err(storage_error)?;
        let layout = Layout::new(stored_partitions(&read, &path)?);

        let mut write = new.begin_write().map_err(storage_error)?;
        write.set_durability(Durability::Immediate);
        for definition in [META, PARTITION_ENDS, CONSUMER_OFFSETS] {
            copy_small_table(&read, &write, definition)?;
        }
        {
            // Rewritten entries are in this build's format: say so, and
            // refuse a log a newer build wrote rather than misread it.
            let mut meta = write.open_table(META).map_err(storage_error)?;
            let stored = meta.get(META_ENTRY_VERSION).map_err(storage_error)?.map(|v| v.value());
            if let Some(version) = stored.filter(|v| *v > u64::from(ENTRY_VERSION)) {
                return Err(StreamError::Corrupt(format!(
                    "{} uses entry format {version}, this build reads formats up to {ENTRY_VERSION}",
                    path.display()
                )));
            }
            meta.insert(META_ENTRY_VERSION, u64::from(ENTRY_VERSION)).map_err(storage_error)?;
        }
        for (slot, topic) in slots(&layout) {
            let from = match read.open_table(layout.table(slot)) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(storage_error(e)),
            };
            let mut to = write.open_table(layout.table(slot)).map_err(storage_error)?;
            for entry in from.iter().map_err(storage_error)? {
                let (base, bytes) = entry.map_err(storage_error)?;
                let (base, bytes) = (base.value(), bytes.value());
                match without_forgotten(base, bytes, topic, &tombstone, forget) {
                    Some((rewritten, n)) => {
                        forgotten += n;
                        to.insert(base, rewritten.as_slice()).map_err(storage_error)?;
                    }
                    None => {
                        to.insert(base, bytes).map_err(storage_error)?;
                    }
                }
            }
        }
        write.commit().map_err(storage_error)?;
    }
    std::fs::rename(&tmp, &path).map_err(io("renaming"))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing the directory of"))?;
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

fn open(path: &Path) -> Result<Database, StreamError> {
    Database::builder().create(path).map_err(|e| {
        unavailable(
            &format!("opening log {} (is `clickstream serve` or `aggregate` running on it?)", path.display()),
            e,
        )
    })
}

fn stored_partitions(txn: &redb::ReadTransaction, path: &Path) -> Result<u32, StreamError> {
    let meta = txn.open_table(META).map_err(storage_error)?;
    let stored = meta.get(META_PARTITIONS).map_err(storage_error)?.map(|v| v.value());
    stored
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| StreamError::Corrupt(format!("{} records no partition count", path.display())))
}

/// Each slot of the layout with its topic.
fn slots(layout: &Layout) -> impl Iterator<Item = (usize, Topic)> + '_ {
    (0..layout.table_names.len()).map(|slot| (slot, Topic::ALL[slot / layout.partitions as usize]))
}

fn copy_small_table(
    read: &redb::ReadTransaction,
    write: &redb::WriteTransaction,
    definition: TableDefinition<&str, u64>,
) -> Result<(), StreamError> {
    let from = match read.open_table(definition) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(storage_error(e)),
    };
    let mut to = write.open_table(definition).map_err(storage_error)?;
    for entry in from.iter().map_err(storage_error)? {
        let (name, value) = entry.map_err(storage_error)?;
        to.insert(name.value(), value.value()).map_err(storage_error)?;
    }
    Ok(())
}
