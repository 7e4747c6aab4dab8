//! Shared test plumbing: temporary directories that clean up after
//! themselves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "clickstream-it-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A collected batch as the ingest produces it: accepted events keyed by
/// visitor to the events topic, bad rows to the rejects topic.
pub fn records(out: &edge_worker::Collected<'_>) -> Vec<clickstream_backend::stream::Record> {
    use clickstream_backend::stream::{Record, Topic};
    let mut records: Vec<Record> = out
        .accepted
        .iter()
        .map(|e| Record { topic: Topic::Events, key: e.anonymous_id.as_bytes().to_vec(), value: serde_json::to_vec(e).unwrap() })
        .collect();
    records.extend(out.bad_rows.iter().map(|r| Record { topic: Topic::Rejects, key: b"bad-row".to_vec(), value: serde_json::to_vec(r).unwrap() }));
    records
}
