//! Who may write what in a data directory, enforced with OS file locks
//! (`_state/locks/`): each partition has one consumer, and Gold has one
//! writer. The locks go away with the process, so a crash never leaves a
//! stale claim behind. They hold on one machine's file system (and on
//! network file systems that support `flock`).

use std::fs::{self, File, TryLockError};
use std::path::Path;

/// Held claims; dropping it releases them.
#[derive(Debug)]
pub struct Ownership {
    _files: Vec<File>,
}

impl Ownership {
    /// Claims the partitions (and Gold, when `gold`), or says who is in
    /// the way. Nothing is held when it fails.
    pub fn claim(data_dir: &Path, partitions: &[u32], gold: bool) -> Result<Ownership, String> {
        let dir = data_dir.join("_state/locks");
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut names: Vec<(String, String)> =
            partitions.iter().map(|p| (format!("partition-{p}.lock"), format!("partition {p}"))).collect();
        if gold {
            names.push(("gold.lock".into(), "the Gold tables".into()));
        }
        let mut files = Vec::with_capacity(names.len());
        for (file, what) in names {
            let path = dir.join(file);
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            match f.try_lock() {
                Ok(()) => files.push(f),
                Err(TryLockError::WouldBlock) => {
                    return Err(format!(
                        "{what} of {} is already taken by another running aggregator \
                         (each partition has one consumer, and one process writes Gold)",
                        data_dir.display()
                    ))
                }
                Err(TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
        Ok(Ownership { _files: files })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_or_gold_has_one_owner_at_a_time() {
        let dir = std::env::temp_dir().join(format!("cs-lock-{}", std::process::id()));
        let a = Ownership::claim(&dir, &[0, 2], false).unwrap();
        let err = Ownership::claim(&dir, &[1, 2], false).unwrap_err();
        assert!(err.contains("partition 2"), "{err}");
        // The failed claim released partition 1 again.
        let b = Ownership::claim(&dir, &[1, 3], true).unwrap();
        assert!(Ownership::claim(&dir, &[], true).unwrap_err().contains("Gold"));
        drop(a);
        let _c = Ownership::claim(&dir, &[0, 2], false).unwrap();
        drop(b);
        let _ = fs::remove_dir_all(&dir);
    }
}
