//! Every Parquet read of the data directory goes through here: a whole
//! table (with its hive partition columns, as analysts see it), or a list
//! of files (as written, no partition columns), or one Gold hour.

use std::path::{Path, PathBuf};

use clickstream_schema::time::HOUR_MS;
use polars::io::HiveOptions;
use polars::prelude::*;

use super::lake;
use super::layout::{glob, parquet_files, GoldTable, Table, TableDir};
use super::lock::SwapLock;

/// How often a read is tried when files it listed vanish under it.
const SWAP_ATTEMPTS: usize = 10;

/// Runs a read with the data directory's files held in place
/// ([`SwapLock::reading`]: no Gold hour is replaced under it), and runs it
/// again (listing the files anew) when a file it listed was moved away
/// meanwhile: compaction and retention move whole partition directories in
/// one rename, so a query that listed the old files just before finds one
/// gone ("No such file"). Each move can fail a read only once, so ten
/// attempts outlast a compaction round unless the query is slower than the
/// gaps between moves. The other signs of a file changed under a read are
/// retried as well, for writers that do not take the lock (an older
/// process on the same directory); a file that is really damaged fails
/// every attempt and its error is returned.
pub fn retry_on_swap<T, E: std::fmt::Display>(data_dir: &Path, mut read: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    for _ in 1..SWAP_ATTEMPTS {
        let held = SwapLock::reading(data_dir);
        let result = read();
        drop(held);
        match result {
            Err(e) if changed_under_read(&e.to_string()) => {
                tracing::debug!(error = %e, "a listed file was swapped meanwhile; reading again");
            }
            done => return done,
        }
    }
    let _held = SwapLock::reading(data_dir);
    read()
}

/// Whether a read's error is what a file swapped during the read gives:
/// gone, or its bytes not matching the footer read before.
fn changed_under_read(error: &str) -> bool {
    const SIGNS: [&str; 4] = ["No such file", "out of specification", "Invalid thrift", "unexpected end of file"];
    SIGNS.iter().any(|sign| error.contains(sign))
}

/// Whether a table holds at least one published Parquet file (a scan of an
/// empty glob is an error in Polars).
pub fn has_files(data_dir: &Path, table: impl TableDir) -> bool {
    !parquet_files(&data_dir.join(table.dir())).is_empty()
}

/// Lazily scans every Parquet file of a table, reading hive partition
/// columns (`dt`, and `hour` for Bronze and Silver) from the directory
/// names.
pub fn scan_table(data_dir: &Path, table: impl TableDir) -> PolarsResult<LazyFrame> {
    scan_glob(glob(data_dir, table))
}

/// Lazily scans the Parquet files a glob matches, with hive partitions.
pub fn scan_glob(glob: String) -> PolarsResult<LazyFrame> {
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_enabled(),
        cloud_options: cloud_options(Path::new(&glob)),
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet(PlRefPath::new(glob), args)
}

/// Lazily scans the given files as they were written: no partition
/// columns from their directory names. `None` for no files (which Polars
/// would refuse to scan).
pub fn scan_files(files: &[PathBuf]) -> PolarsResult<Option<LazyFrame>> {
    if files.is_empty() {
        return Ok(None);
    }
    let paths: Vec<PlRefPath> = files.iter().map(|f| PlRefPath::new(f.display().to_string())).collect();
    let args = ScanArgsParquet {
        hive_options: HiveOptions::new_disabled(),
        cloud_options: cloud_options(&files[0]),
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).map(Some)
}

/// The settings Polars reads a bucket with, for a path in one.
fn cloud_options(path: &Path) -> Option<polars::prelude::cloud::CloudOptions> {
    lake::is_remote(path).then(lake::cloud_options)
}

/// The published files of Silver's hours (hours since the epoch).
pub fn silver_files(data_dir: &Path, hours: impl IntoIterator<Item = i64>) -> Vec<PathBuf> {
    hours.into_iter().flat_map(|h| parquet_files(&data_dir.join(Table::Silver.partition_dir(h * HOUR_MS)))).collect()
}

/// One hour's file of a Gold table as written, if there is one.
pub fn read_gold_hour(data_dir: &Path, table: GoldTable, hour: i64) -> PolarsResult<Option<DataFrame>> {
    let path = data_dir.join(table.hour_file(hour));
    if !lake::file_exists(&path) {
        return Ok(None);
    }
    match scan_files(&[path])? {
        Some(lf) => lf.collect().map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_errors_of_a_swapped_file_are_read_again() {
        assert!(changed_under_read("parquet: File out of specification: Invalid thrift: bad data"));
        assert!(changed_under_read("No such file or directory (os error 2): /data/gold/x.parquet"));
        assert!(!changed_under_read("not found: column \"revenue\" not found"));
    }
}
