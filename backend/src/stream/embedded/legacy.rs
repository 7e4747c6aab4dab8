//! Logs of the earlier format (one redb file, `log.redb`): migrated into a
//! segment on first open, entries copied byte for byte.
//!
//! That file held one redb table per topic-partition (`"<topic>/<partition>"`,
//! offset of an entry's first record → entry), `meta` (partition count, entry
//! format), `partition_ends` and `consumer_offsets`. The migration writes all
//! of it into segment 1 under a temporary name, syncs, renames it into place,
//! and only then removes `log.redb`. A crash in between leaves either the old
//! file alone (migrated again on the next open) or both (the segment is
//! complete, so the old file is removed).

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, TableError};

use super::framing::entry_count;
use super::segment::{self, Checkpoint};
use super::writer::put_batch_frame;
use super::{unavailable, Layout, StreamError, ENTRY_VERSION, MAX_BYTES_PER_COMMIT};

/// The file name of a log of the earlier format.
pub(super) const LEGACY_FILE_NAME: &str = "log.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PARTITION_ENDS: TableDefinition<&str, u64> = TableDefinition::new("partition_ends");
const CONSUMER_OFFSETS: TableDefinition<&str, u64> = TableDefinition::new("consumer_offsets");
type PartitionTable<'a> = TableDefinition<'a, u64, &'static [u8]>;

fn storage(path: &Path) -> impl Fn(redb::Error) -> StreamError + '_ {
    move |e| StreamError::Unavailable(format!("reading the earlier-format log {}: {e}", path.display()))
}

/// Migrates `dir/log.redb` into segments, if it is there.
pub(super) fn migrate_if_present(dir: &Path) -> Result<(), StreamError> {
    let path = dir.join(LEGACY_FILE_NAME);
    if !path.exists() {
        return Ok(());
    }
    let io = |what: String| move |e: std::io::Error| unavailable(&what, e);
    let segments = segment::list_segments(dir).map_err(io(format!("listing {}", dir.display())))?;
    if segments.is_empty() {
        migrate(dir, &path)?;
    }
    std::fs::remove_file(&path).map_err(io(format!("removing {} after its migration", path.display())))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))?;
    Ok(())
}

fn migrate(dir: &Path, path: &Path) -> Result<(), StreamError> {
    let error = storage(path);
    let db = Database::open(path).map_err(|e| error(e.into()))?;
    let txn = db.begin_read().map_err(|e| error(e.into()))?;
    let meta = txn.open_table(META).map_err(|e| error(e.into()))?;
    let version = meta.get("entry_version").map_err(|e| error(e.into()))?.map_or(1, |v| v.value());
    if version > u64::from(ENTRY_VERSION) {
        return Err(StreamError::Corrupt(format!(
            "{} uses entry format {version}, this build reads formats up to {ENTRY_VERSION} (a newer clickstream wrote it)",
            path.display()
        )));
    }
    let partitions = meta
        .get("partitions")
        .map_err(|e| error(e.into()))?
        .and_then(|v| u32::try_from(v.value()).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| StreamError::Corrupt(format!("{} records no partition count", path.display())))?;
    let layout = Layout::new(partitions);

    let small = |definition: TableDefinition<&str, u64>| -> Result<BTreeMap<String, u64>, StreamError> {
        match txn.open_table(definition) {
            Ok(table) => {
                let mut all = BTreeMap::new();
                for row in table.iter().map_err(|e| error(e.into()))? {
                    let (name, value) = row.map_err(|e| error(e.into()))?;
                    all.insert(name.value().to_string(), value.value());
                }
                Ok(all)
            }
            Err(TableError::TableDoesNotExist(_)) => Ok(BTreeMap::new()),
            Err(e) => Err(error(e.into())),
        }
    };
    let stored_ends = small(PARTITION_ENDS)?;
    let offsets = small(CONSUMER_OFFSETS)?;

    let mut checkpoint = Checkpoint {
        partitions,
        entry_format: ENTRY_VERSION,
        starts: vec![0; layout.slots()],
        ends: vec![0; layout.slots()],
        offsets,
    };
    let mut entries: Vec<(usize, u64, Vec<u8>)> = Vec::new();
    for (slot, name) in layout.names.iter().enumerate() {
        let end = stored_ends.get(name).copied().unwrap_or(0);
        let mut first = None;
        let mut after_last = 0;
        match txn.open_table(PartitionTable::new(name)) {
            Ok(table) => {
                for row in table.iter().map_err(|e| error(e.into()))? {
                    let (base, bytes) = row.map_err(|e| error(e.into()))?;
                    let (base, bytes) = (base.value(), bytes.value());
                    first.get_or_insert(base);
                    after_last = base + entry_count(bytes).map_or(0, u64::from);
                    entries.push((slot, base, bytes.to_vec()));
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(error(e.into())),
        }
        checkpoint.ends[slot] = end.max(after_last);
        checkpoint.starts[slot] = first.unwrap_or(checkpoint.ends[slot]);
    }

    let mut bytes = segment::file_header().to_vec();
    segment::put_checkpoint(&mut bytes, &checkpoint);
    let mut at = 0;
    while at < entries.len() {
        let mut size = 0;
        let batch: Vec<(usize, u64, &[u8])> = entries[at..]
            .iter()
            .take_while(|(_, _, entry)| {
                size += entry.len();
                size <= MAX_BYTES_PER_COMMIT || size == entry.len()
            })
            .map(|(slot, base, entry)| (*slot, *base, entry.as_slice()))
            .collect();
        at += batch.len();
        put_batch_frame(&mut bytes, &batch, std::iter::empty(), &[]);
    }
    let target = segment::segment_path(dir, 1);
    segment::write_whole(&target, &bytes).map_err(|e| unavailable(&format!("writing {}", target.display()), e))?;
    tracing::info!(
        from = %path.display(),
        to = %target.display(),
        entries = entries.len(),
        bytes = bytes.len(),
        "migrated the log to the segment format"
    );
    Ok(())
}
