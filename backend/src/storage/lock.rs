//! Who may write what in a data directory, enforced with OS file locks
//! (`_state/locks/`): each partition has one consumer, and Gold has one
//! writer. The locks go away with the process, so a crash never leaves a
//! stale claim behind. They hold on one machine's file system (and on
//! network file systems that support `flock`). In a bucket, where there is
//! no lock, a claim is an object (see [`Ownership::claim`]).

use std::fs::{self, File, TryLockError};
use std::path::Path;

/// Held claims; dropping it releases them.
#[derive(Debug)]
pub struct Ownership {
    _files: Vec<File>,
    /// Claim objects in a bucket, deleted again when the owner stops.
    objects: Vec<std::path::PathBuf>,
}

impl Drop for Ownership {
    fn drop(&mut self) {
        for claim in &self.objects {
            if let Err(e) = super::lake::remove(claim) {
                tracing::warn!(claim = %claim.display(), error = %e, "could not release a claim; the same consumer takes it back when it starts again, or delete it");
            }
        }
    }
}

impl Ownership {
    /// Claims the partitions (and Gold, when `gold`), or says who is in
    /// the way. Nothing is held when it fails.
    pub fn claim(data_dir: &Path, partitions: &[u32], gold: bool) -> Result<Ownership, String> {
        if super::lake::is_remote(data_dir) {
            return Ownership::claim_in_bucket(data_dir, partitions, gold);
        }
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
        Ok(Ownership { _files: files, objects: Vec::new() })
    }

    /// Claims in a bucket: one object per partition (and one for Gold),
    /// created only where none is, holding the claimer's partition set.
    /// Consumers on different machines share nothing but the stream and
    /// the bucket, so this is how one learns that a partition is taken.
    /// A claim outlives a crash (no lock dies with the process): the
    /// consumer of the same partitions takes its own claims back when it
    /// starts again; handing partitions to a different set of consumers
    /// after a crash means deleting the crashed one's claims. Two copies
    /// of one consumer are stopped by the manifest's conditional put
    /// instead (see [`super::lake`]).
    fn claim_in_bucket(data_dir: &Path, partitions: &[u32], gold: bool) -> Result<Ownership, String> {
        let who = if gold && partitions.is_empty() {
            "gold".to_string()
        } else {
            format!("partitions {partitions:?}{}", if gold { " and gold" } else { "" })
        };
        let mut names: Vec<(String, String)> =
            partitions.iter().map(|p| (format!("partition-{p}"), format!("partition {p}"))).collect();
        if gold {
            names.push(("gold".into(), "the Gold tables".into()));
        }
        let mut held = Ownership { _files: Vec::new(), objects: Vec::new() };
        for (name, what) in names {
            let claim = data_dir.join("_state/claims").join(name);
            let created = super::lake::create(&claim, who.clone().into_bytes()).map_err(|e| e.to_string())?;
            if !created {
                let holder = super::lake::read(&claim).map_err(|e| e.to_string())?.unwrap_or_default();
                let holder = String::from_utf8_lossy(&holder).into_owned();
                if holder != who {
                    // `held` releases what this call took so far.
                    return Err(format!(
                        "{what} of {} is claimed by the consumer of {holder} ({}); if that consumer is gone \
                         for good, delete the claim",
                        data_dir.display(),
                        claim.display()
                    ));
                }
            }
            held.objects.push(claim);
        }
        Ok(held)
    }
}

/// A hold on `_state/locks/swaps.lock` that keeps a file from being
/// replaced in place while a query reads it; dropping it releases it.
///
/// Polars reads a Parquet file's footer while planning and opens the file
/// again by its path to read the row groups. A Gold hour replaced by a
/// rename in between is then read at the old footer's offsets: an error at
/// best, and an out-of-bounds read inside Polars at worst. So readers hold
/// the lock shared for a whole read, and a commit that replaces files holds
/// it exclusively for its renames only (a few milliseconds), waiting for
/// the reads in flight. Files that are only added, and directories that
/// compaction moves away whole, need no hold: a read of those fails
/// cleanly and is run again ([`super::scan::retry_on_swap`]).
#[derive(Debug)]
pub struct SwapLock {
    _file: Option<File>,
}

impl SwapLock {
    /// Shared: no file is replaced until it is dropped.
    pub fn reading(data_dir: &Path) -> SwapLock {
        SwapLock::take(data_dir, false)
    }

    /// Exclusive: no read is in flight until it is dropped.
    pub fn replacing(data_dir: &Path) -> SwapLock {
        SwapLock::take(data_dir, true)
    }

    // A data directory this process may not write (an analyst's read-only
    // copy) has no writer to wait for: reads go on without the lock.
    fn take(data_dir: &Path, exclusive: bool) -> SwapLock {
        // A bucket has no lock to share. An object replaced under a read
        // fails that read (its row groups are not where the old footer
        // said), and `retry_on_swap` reads again.
        if super::lake::is_remote(data_dir) {
            return SwapLock { _file: None };
        }
        let dir = data_dir.join("_state/locks");
        let path = dir.join("swaps.lock");
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .or_else(|_| {
                fs::create_dir_all(&dir)
                    .and_then(|()| File::options().read(true).write(true).create(true).truncate(false).open(&path))
            })
            .or_else(|_| File::open(&path));
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no swap lock; reading without it");
                return SwapLock { _file: None };
            }
        };
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        match locked {
            Ok(()) => SwapLock { _file: Some(file) },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot take the swap lock; going on without it");
                SwapLock { _file: None }
            }
        }
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

    #[test]
    fn a_replacing_commit_waits_for_the_reads_in_flight() {
        let dir = std::env::temp_dir().join(format!("cs-swap-lock-{}", std::process::id()));
        let read = SwapLock::reading(&dir);
        let also = SwapLock::reading(&dir);
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let _hold = SwapLock::replacing(&dir);
                tx.send(()).unwrap();
            })
        };
        // Two readers at once; the writer waits behind both.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "replaced during a read");
        drop(read);
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "replaced during a read");
        drop(also);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the writer goes on once the reads end");
        writer.join().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}
