//! Which event ids Silver already holds, so a client retry (same event id,
//! maybe hours later) is not written twice.
//!
//! The set holds a 128-bit hash of (site_id, event_id) with the arrival
//! time, for the retention window (default 48 hours). It is rebuilt at start
//! from Silver itself, after the manifest's recovery, so it can never
//! disagree with what was committed.
//!
//! Events are accepted up to 7 days late, longer than the set remembers: a
//! tracker that resends a stored event on day 3 would otherwise be written
//! twice. So an event the set does not know, whose first arrival could
//! have been forgotten already (its event time lies before the window),
//! is looked up in Silver itself, in the hours around its event time. Only
//! late events pay for that read, and memory stays bounded by the window.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::path::Path;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use crate::storage::layout::parquet_files;
/// Where the integration tests have always found it.
pub use crate::storage::scan::scan_table;
use crate::storage::scan::{has_files, scan_files, silver_files};
use crate::storage::{PipelineError, Table};

/// How far apart two arrivals of one event may put its event time: each
/// request corrects the browser's clock by its own measured skew. Silver
/// is searched this far on each side of a late event's time.
const SKEW_MARGIN_MS: i64 = HOUR_MS;

/// How far in the future an accepted event may lie (the collector's
/// default limit): a first arrival forgotten at `now - retention` can have
/// an event time up to this much later.
const MAX_FUTURE_MS: i64 = HOUR_MS;

/// The keys are hashes already: a map of them hashes by taking the key's
/// bits, not by hashing them again. (SipHash, over the keys and over the
/// ids to make them, had about 9% of the samples of log → Silver's
/// profile.)
#[derive(Default)]
struct KeyBits(u64);

impl Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = (key as u64) ^ ((key >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; anything else still spreads.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<KeyBits>>;
type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<KeyBits>>;

#[derive(Debug, Default)]
pub struct SeenEvents {
    seen: HashMap<u128, i64>,
    /// The earliest arrival in `seen` (i64::MAX when empty): until the
    /// retention window passes it, pruning has nothing to do, and is not a
    /// walk over the whole set after every micro-batch.
    oldest: i64,
    retention_ms: i64,
    /// Events `clickstream forget` removed: seen for good, so a replay of
    /// the stream or a late retry does not bring them back.
    forgotten: HashSet<u128>,
}

/// Where the event ids of forgotten people are kept (site_id, event_id):
/// ids the tracker made up, not the person's.
const FORGOTTEN_DIR: &str = "_state/forgotten";

/// The dedup key of an event. The decoder computes it on all cores while
/// the event's strings are at hand ([`SeenEvents::mark_new_keyed`]).
pub fn event_key(site_id: &str, event_id: &str) -> u128 {
    // Two differently seeded 64-bit hashes. Fixed seeds: deterministic
    // within a build, and the set is rebuilt at each start (no hash is
    // stored on disk). A `str` is hashed with a terminator, so the pair
    // cannot be split another way.
    use foldhash::quality::FixedState;
    let a = FixedState::with_seed(0x636c_6963_6b73_7472).hash_one((site_id, event_id));
    let b = FixedState::with_seed(0x6561_6d20_6465_6475).hash_one((site_id, event_id));
    (u128::from(a) << 64) | u128::from(b)
}

impl SeenEvents {
    pub fn new(retention_ms: i64) -> Self {
        SeenEvents { seen: HashMap::default(), oldest: i64::MAX, retention_ms, forgotten: HashSet::default() }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn contains(&self, site_id: &str, event_id: &str) -> bool {
        self.knows(&event_key(site_id, event_id))
    }

    /// Whether a key is remembered as in Silver or as forgotten.
    fn knows(&self, key: &u128) -> bool {
        self.seen.contains_key(key) || self.forgotten.contains(key)
    }

    pub fn insert(&mut self, site_id: &str, event_id: &str, received_at: i64) {
        self.insert_key(event_key(site_id, event_id), received_at);
    }

    fn insert_key(&mut self, key: u128, received_at: i64) {
        self.seen.insert(key, received_at);
        self.oldest = self.oldest.min(received_at);
    }

    /// A boolean column, true where the row's event id is not yet in Silver:
    /// not remembered, not earlier in `df` (the first arrival in a batch
    /// wins), and for events whose first arrival the set may have
    /// forgotten, not in Silver's files around their event time either.
    ///
    /// The set remembers the batch's events at once (one lookup per row
    /// finds the repeats and adds the rest; a second pass after the commit
    /// was half of the commit phase). So a set is only good while its
    /// batch commits: a caller whose batch fails drops it and loads it
    /// again from Silver, as the aggregator and replay do.
    pub fn mark_new(&mut self, data_dir: &Path, df: &DataFrame, name: &str, now_ms: i64) -> PolarsResult<Column> {
        let sites = df.column("site_id")?.str()?;
        let ids = df.column("event_id")?.str()?;
        let keys: Vec<u128> =
            sites.iter().zip(ids.iter()).map(|(site, id)| event_key(site.unwrap_or(""), id.unwrap_or(""))).collect();
        self.mark_new_keyed(data_dir, df, &keys, name, now_ms)
    }

    /// [`SeenEvents::mark_new`] with each row's [`event_key`] computed
    /// already.
    pub fn mark_new_keyed(
        &mut self,
        data_dir: &Path,
        df: &DataFrame,
        keys: &[u128],
        name: &str,
        now_ms: i64,
    ) -> PolarsResult<Column> {
        if keys.len() != df.height() {
            return Err(PolarsError::ShapeMismatch(
                format!("{} dedup keys for {} rows", keys.len(), df.height()).into(),
            ));
        }
        let received = df.column("received_at")?.cast(&DataType::Int64)?;
        self.seen.reserve(df.height());
        let mut new: Vec<bool> = keys
            .iter()
            .zip(received.i64()?.iter())
            .map(|(key, at)| {
                if self.forgotten.contains(key) {
                    return false;
                }
                match self.seen.entry(*key) {
                    Entry::Occupied(_) => false,
                    Entry::Vacant(slot) => {
                        let at = at.unwrap_or(0);
                        slot.insert(at);
                        self.oldest = self.oldest.min(at);
                        true
                    }
                }
            })
            .collect();

        let forgotten_before = now_ms - self.retention_ms + MAX_FUTURE_MS + SKEW_MARGIN_MS;
        let event_ts = df.column("event_ts")?.cast(&DataType::Int64)?;
        let late: Vec<usize> = event_ts
            .i64()?
            .iter()
            .enumerate()
            .filter(|(i, ts)| new[*i] && ts.is_some_and(|ts| ts < forgotten_before))
            .map(|(i, _)| i)
            .collect();
        if !late.is_empty() {
            // Found in Silver: not new, and rightly remembered now.
            let in_silver = Self::in_silver(data_dir, df, &late)?;
            for i in late {
                if in_silver.contains(&keys[i]) {
                    new[i] = false;
                }
            }
        }
        Ok(BooleanChunked::from_slice(name.into(), &new).into_series().into())
    }

    /// The keys of the given rows that Silver's files hold, searched in the
    /// hours around each row's event time.
    fn in_silver(data_dir: &Path, df: &DataFrame, rows: &[usize]) -> PolarsResult<HashSet<u128>> {
        let event_ts = df.column("event_ts")?.cast(&DataType::Int64)?;
        let event_ts = event_ts.i64()?;
        let ids = df.column("event_id")?.str()?;
        let mut hours = BTreeSet::new();
        let mut wanted = Vec::with_capacity(rows.len());
        for &i in rows {
            let ts = event_ts.get(i).unwrap_or(0);
            hours.extend((ts - SKEW_MARGIN_MS).div_euclid(HOUR_MS)..=(ts + SKEW_MARGIN_MS).div_euclid(HOUR_MS));
            wanted.push(ids.get(i).unwrap_or(""));
        }
        let mut found = HashSet::default();
        let Some(files) = scan_files(&silver_files(data_dir, hours))? else { return Ok(found) };
        let wanted = Series::new("wanted".into(), wanted);
        let hits = files
            .select([col("site_id"), col("event_id")])
            .filter(col("event_id").is_in(lit(wanted).implode(false), false))
            .collect()?;
        for (site, id) in hits.column("site_id")?.str()?.iter().zip(hits.column("event_id")?.str()?.iter()) {
            found.insert(event_key(site.unwrap_or(""), id.unwrap_or("")));
        }
        Ok(found)
    }

    /// Remembers every event of a committed Silver frame.
    pub fn remember(&mut self, silver: &DataFrame) -> PolarsResult<()> {
        let sites = silver.column("site_id")?.str()?;
        let ids = silver.column("event_id")?.str()?;
        let received = silver.column("received_at")?.cast(&DataType::Int64)?;
        let received = received.i64()?;
        self.seen.reserve(silver.height());
        for ((site, id), at) in sites.iter().zip(ids.iter()).zip(received.iter()) {
            self.insert(site.unwrap_or(""), id.unwrap_or(""), at.unwrap_or(0));
        }
        Ok(())
    }

    /// Forgets ids that arrived before the retention window.
    pub fn prune(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.retention_ms;
        if self.oldest >= cutoff {
            return;
        }
        let mut oldest = i64::MAX;
        self.seen.retain(|_, at| {
            let keep = *at >= cutoff;
            if keep {
                oldest = oldest.min(*at);
            }
            keep
        });
        self.oldest = oldest;
    }

    /// Loads the ids Silver received within the retention window, and the
    /// forgotten ones.
    pub fn load(data_dir: &Path, retention_ms: i64, now_ms: i64) -> PolarsResult<SeenEvents> {
        let mut seen = SeenEvents::new(retention_ms);
        let forgotten = parquet_files(&data_dir.join(FORGOTTEN_DIR));
        if let Some(ids) = scan_files(&forgotten)? {
            let ids = ids.collect()?;
            let sites = ids.column("site_id")?.str()?;
            for (site, id) in sites.iter().zip(ids.column("event_id")?.str()?.iter()) {
                seen.forgotten.insert(event_key(site.unwrap_or(""), id.unwrap_or("")));
            }
        }
        if !has_files(data_dir, Table::Silver) {
            return Ok(seen);
        }
        let cutoff = now_ms - retention_ms;
        let df = scan_table(data_dir, Table::Silver)?
            .select([col("site_id"), col("event_id"), col("received_at")])
            .filter(col("received_at").cast(DataType::Int64).gt_eq(lit(cutoff)))
            .collect()?;
        seen.remember(&df)?;
        Ok(seen)
    }
}

/// Keeps the (site_id, event_id) of a forget's removed events for good
/// (one file per forget, written whole then renamed: never half there).
pub fn write_forgotten(data_dir: &Path, ids: &mut DataFrame, now_ms: i64) -> Result<(), PipelineError> {
    let dir = data_dir.join(FORGOTTEN_DIR);
    let io = |what: String| move |source| PipelineError::Io { context: what, source };
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let name = format!("forgotten-{now_ms}-{}.parquet", uuid::Uuid::new_v4().simple());
    let (tmp, path) = (dir.join(format!("{name}.tmp")), dir.join(name));
    let mut file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    ParquetWriter::new(&mut file)
        .finish(ids)
        .map_err(|source| PipelineError::Parquet { path: tmp.display().to_string(), source })?;
    file.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(io(format!("renaming {}", tmp.display())))?;
    std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_within_the_batch_is_not_new_and_the_first_arrival_is() {
        let mut seen = SeenEvents::new(48 * HOUR_MS);
        seen.insert("s", "old", 0);
        let now = 10 * HOUR_MS;
        let df = df!(
            "site_id" => ["s", "s", "s", "t", "s"],
            "event_id" => ["e-1", "old", "e-1", "e-1", "e-2"],
            "event_ts" => [now; 5],
            "received_at" => [now; 5],
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("clickstream-dedup-{}", std::process::id()));
        let new = seen.mark_new(&dir, &df, "new", now).unwrap();
        let new: Vec<Option<bool>> = new.bool().unwrap().iter().collect();
        // The same id on another site is another event.
        assert_eq!(new, [Some(true), Some(false), Some(false), Some(true), Some(true)]);

        // The set holds the batch now: the same rows again are all repeats.
        assert_eq!(seen.len(), 4);
        let again = seen.mark_new(&dir, &df, "new", now).unwrap();
        assert!(again.bool().unwrap().iter().all(|new| new == Some(false)));
    }

    #[test]
    fn pruning_forgets_only_what_arrived_before_the_window() {
        let retention = 48 * HOUR_MS;
        let mut seen = SeenEvents::new(retention);
        seen.insert("s", "early", 0);
        seen.insert("s", "later", 10 * HOUR_MS);
        seen.prune(retention);
        assert_eq!(seen.len(), 2, "the earliest is still inside the window");
        seen.prune(retention + 1);
        assert!(!seen.contains("s", "early") && seen.contains("s", "later"));
        seen.insert("s", "earlier", 5 * HOUR_MS);
        seen.prune(retention + 5 * HOUR_MS + 1);
        assert!(!seen.contains("s", "earlier"), "an insert older than the rest is pruned in its turn");
        seen.prune(retention + 10 * HOUR_MS + 1);
        assert!(seen.is_empty());
    }
}
