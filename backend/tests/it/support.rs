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
    clickstream_backend::fixtures::fresh_dir(&dir).unwrap();
    TempDir(dir)
}

/// A collected batch as the ingest produces it: the collect path's own
/// record building.
pub fn records(out: &edge_worker::Collected<'_>) -> Vec<clickstream_backend::stream::Record> {
    clickstream_backend::stream::records_of(&out.accepted, &out.bad_rows)
}
