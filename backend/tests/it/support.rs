//! Shared test plumbing: temporary directories that clean up after
//! themselves, the collect path's records, Gold tables to compare.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use clickstream_backend::gold::refresh::{has_files, scan};
use clickstream_backend::gold::GoldTable;
use polars::prelude::*;

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

/// Each Gold table that has files, rows sorted, for comparing two data
/// directories.
pub fn gold_tables(dir: &Path) -> Vec<(GoldTable, DataFrame)> {
    GoldTable::ALL
        .iter()
        .filter(|t| has_files(dir, **t))
        .map(|t| {
            let df = scan(dir, *t).unwrap().collect().unwrap();
            let names: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
            (*t, df.sort(names, SortMultipleOptions::default()).unwrap())
        })
        .collect()
}

/// Asserts two data directories' Gold tables are equal, table by table.
pub fn assert_same_gold(got: &[(GoldTable, DataFrame)], expected: &[(GoldTable, DataFrame)], what: &str) {
    let names = |t: &[(GoldTable, DataFrame)]| t.iter().map(|(t, _)| t.name()).collect::<Vec<_>>();
    assert_eq!(names(got), names(expected), "{what}: the same Gold tables");
    for ((table, have), (_, want)) in got.iter().zip(expected) {
        assert!(have.equals_missing(want), "{what}: {} differs\n{have}\nexpected\n{want}", table.name());
    }
}
