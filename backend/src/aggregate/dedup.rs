//! Which event ids Silver already holds, so a client retry (same event id,
//! maybe hours later) is not written twice.
//!
//! The set holds a 128-bit hash of (site_id, event_id) with the arrival
//! time, for the retention window (default 48 hours). It is rebuilt at start
//! from Silver itself, after the manifest's recovery, so it can never
//! disagree with what was committed.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use polars::prelude::*;

use crate::storage::scan::has_files;
/// Where the integration tests have always found it.
pub use crate::storage::scan::scan_table;
use crate::storage::Table;

#[derive(Debug, Default)]
pub struct SeenEvents {
    seen: HashMap<u128, i64>,
    retention_ms: i64,
}

fn key(site_id: &str, event_id: &str) -> u128 {
    // Two differently seeded SipHash runs; std's DefaultHasher::new() is
    // deterministic within a build, and the set is rebuilt at each start.
    let mut a = DefaultHasher::new();
    (0u8, site_id, event_id).hash(&mut a);
    let mut b = DefaultHasher::new();
    (1u8, site_id, event_id).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

impl SeenEvents {
    pub fn new(retention_ms: i64) -> Self {
        SeenEvents { seen: HashMap::new(), retention_ms }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn contains(&self, site_id: &str, event_id: &str) -> bool {
        self.seen.contains_key(&key(site_id, event_id))
    }

    pub fn insert(&mut self, site_id: &str, event_id: &str, received_at: i64) {
        self.seen.insert(key(site_id, event_id), received_at);
    }

    /// A boolean column, true where the row's event id is not yet in Silver.
    pub fn mark_new(&self, df: &DataFrame, name: &str) -> PolarsResult<Column> {
        let sites = df.column("site_id")?.str()?;
        let ids = df.column("event_id")?.str()?;
        let mask: BooleanChunked = sites
            .iter()
            .zip(ids.iter())
            .map(|(site, id)| Some(!self.contains(site.unwrap_or(""), id.unwrap_or(""))))
            .collect();
        Ok(mask.with_name(name.into()).into_series().into())
    }

    /// Remembers every event of a committed Silver frame.
    pub fn remember(&mut self, silver: &DataFrame) -> PolarsResult<()> {
        let sites = silver.column("site_id")?.str()?;
        let ids = silver.column("event_id")?.str()?;
        let received = silver.column("received_at")?.cast(&DataType::Int64)?;
        let received = received.i64()?;
        for ((site, id), at) in sites.iter().zip(ids.iter()).zip(received.iter()) {
            self.insert(site.unwrap_or(""), id.unwrap_or(""), at.unwrap_or(0));
        }
        Ok(())
    }

    /// Forgets ids that arrived before the retention window.
    pub fn prune(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.retention_ms;
        self.seen.retain(|_, at| *at >= cutoff);
    }

    /// Loads the ids Silver received within the retention window.
    pub fn load(data_dir: &Path, retention_ms: i64, now_ms: i64) -> PolarsResult<SeenEvents> {
        let mut seen = SeenEvents::new(retention_ms);
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
