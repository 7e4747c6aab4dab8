//! The `/ingest` signatures already used, so a captured request cannot be
//! sent again while its timestamp is still fresh.
//!
//! Keyed on the decoded MAC bytes, not the header's text: `v1=ABCD…` and
//! `v1=abcd…` are the same signature. Kept on disk so that a restart does
//! not forget them and ingest replicas sharing the data directory refuse
//! each other's replays: `DATA_DIR/_state/ingest-seen/<minute>.seen` holds,
//! for the signed timestamps of that minute, one 16-byte key per signature
//! (the first half of its SHA-256). Checking and recording happen under an
//! exclusive `flock` of the minute's file, after reading what other
//! processes appended since, so two replicas never both accept one
//! signature. A minute's file is deleted once every timestamp in it is too
//! old to be accepted anyway.
//!
//! An earlier layout made one file per signature (a directory per minute):
//! creating an inode per request cost a quarter of the backend's CPU
//! behind the Worker. Its directories are swept like the files.
//!
//! Nothing here is fsynced, as before: a crash of the machine (not of the
//! process) may forget the last seconds' signatures, and a replay of one
//! of those can only repeat events whose ids Silver already holds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

use clickstream_schema::signing::MAX_SIGNATURE_AGE_MS;
use clickstream_schema::time::MINUTE_MS;
use sha2::{Digest, Sha256};

/// How long a signature is remembered: longer than any timestamp can be
/// accepted, on either side of the server's clock.
const KEEP_MS: i64 = 2 * MAX_SIGNATURE_AGE_MS + MINUTE_MS;

/// Bytes per signature in a minute's file.
const KEY_LEN: usize = 16;

const SUFFIX: &str = ".seen";

pub enum SeenSignatures {
    /// In memory: the router's tests, without a data directory.
    Memory(Mutex<HashMap<Vec<u8>, i64>>),
    Disk(Mutex<OnDisk>),
}

/// The minutes' files this process has open, and what it has read of them.
pub struct OnDisk {
    dir: PathBuf,
    minutes: BTreeMap<i64, Minute>,
    last_sweep: i64,
}

struct Minute {
    file: File,
    /// Bytes of whole keys read (or written) so far.
    read_to: u64,
    keys: HashSet<[u8; KEY_LEN]>,
}

impl SeenSignatures {
    pub fn in_memory() -> SeenSignatures {
        SeenSignatures::Memory(Mutex::default())
    }

    pub fn on_disk(data_dir: &std::path::Path) -> SeenSignatures {
        SeenSignatures::Disk(Mutex::new(OnDisk {
            dir: data_dir.join("_state/ingest-seen"),
            minutes: BTreeMap::new(),
            last_sweep: i64::MIN,
        }))
    }

    /// Records `mac` (signed at `timestamp_ms`); `Ok(false)` when it was
    /// seen before.
    pub fn first_use(&self, mac: &[u8], timestamp_ms: i64, now_ms: i64) -> std::io::Result<bool> {
        match self {
            SeenSignatures::Memory(seen) => {
                let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                seen.retain(|_, at| now_ms - *at <= KEEP_MS);
                Ok(seen.insert(mac.to_vec(), timestamp_ms).is_none())
            }
            SeenSignatures::Disk(disk) => {
                let mut disk = disk.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                disk.sweep(now_ms);
                let digest = Sha256::digest(mac);
                let mut key = [0; KEY_LEN];
                key.copy_from_slice(&digest[..KEY_LEN]);
                disk.first_use(key, timestamp_ms.div_euclid(MINUTE_MS))
            }
        }
    }
}

impl OnDisk {
    fn first_use(&mut self, key: [u8; KEY_LEN], minute: i64) -> std::io::Result<bool> {
        let minute = match self.minutes.entry(minute) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let path = self.dir.join(format!("{minute}{SUFFIX}"));
                let open = || File::options().read(true).write(true).create(true).truncate(false).open(&path);
                let file = match open() {
                    // The folder is not there yet, or was removed under a
                    // running server (by hand, say): make it and go on.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir_all(&self.dir)?;
                        open()?
                    }
                    opened => opened?,
                };
                entry.insert(Minute { file, read_to: 0, keys: HashSet::new() })
            }
        };
        // Keys are never removed while their minute is kept: one known
        // here needs no lock.
        if minute.keys.contains(&key) {
            return Ok(false);
        }
        minute.file.lock()?;
        let outcome = minute.check_and_record(key);
        minute.file.unlock()?;
        outcome
    }

    /// Forgets the minutes no accepted timestamp can fall in, and deletes
    /// their files (and the earlier layout's directories), once a minute.
    fn sweep(&mut self, now_ms: i64) {
        if now_ms.saturating_sub(self.last_sweep) < MINUTE_MS {
            return;
        }
        self.last_sweep = now_ms;
        let oldest_kept = (now_ms - KEEP_MS).div_euclid(MINUTE_MS);
        self.minutes.retain(|minute, _| *minute >= oldest_kept);
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let minute = name.strip_suffix(SUFFIX).unwrap_or(&name).parse::<i64>();
            if minute.is_ok_and(|m| m < oldest_kept) {
                // Another replica may be deleting it too.
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
            }
        }
    }
}

impl Minute {
    /// Under the file's lock: reads what others appended, then records
    /// `key` unless it is there.
    fn check_and_record(&mut self, key: [u8; KEY_LEN]) -> std::io::Result<bool> {
        let len = self.file.metadata()?.len();
        let whole = len - len % KEY_LEN as u64;
        if whole > self.read_to {
            let mut bytes = vec![0; (whole - self.read_to) as usize];
            self.file.read_exact_at(&mut bytes, self.read_to)?;
            for chunk in bytes.chunks_exact(KEY_LEN) {
                self.keys.insert(chunk.try_into().expect("KEY_LEN bytes"));
            }
            self.read_to = whole;
        }
        if self.keys.contains(&key) {
            return Ok(false);
        }
        if len != whole {
            // A write cut short (a full disk): the next key goes over it.
            self.file.set_len(whole)?;
        }
        if let Err(e) = self.file.write_all_at(&key, whole) {
            let _ = self.file.set_len(whole);
            return Err(e);
        }
        self.read_to = whole + KEY_LEN as u64;
        self.keys.insert(key);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_signature_is_used_once_across_restarts_and_replicas_then_forgotten() {
        let data = std::env::temp_dir().join(format!("clickstream-seen-{}", crate::secrets::random_token()));
        let now = 1_732_262_400_000;
        let one = SeenSignatures::on_disk(&data);
        assert!(one.first_use(&[1, 2, 3], now, now).unwrap());
        assert!(!one.first_use(&[1, 2, 3], now, now + 1000).unwrap());
        let restarted = SeenSignatures::on_disk(&data);
        assert!(!restarted.first_use(&[1, 2, 3], now, now + 2000).unwrap(), "a restart remembers");
        assert!(restarted.first_use(&[1, 2, 4], now, now + 2000).unwrap());
        // Long after, the minute's folder is swept.
        restarted.first_use(&[9], now + KEEP_MS + 2 * MINUTE_MS, now + KEEP_MS + 2 * MINUTE_MS).unwrap();
        let minutes: Vec<_> = std::fs::read_dir(data.join("_state/ingest-seen")).unwrap().flatten().collect();
        assert_eq!(minutes.len(), 1, "only the new minute is left");
        std::fs::remove_dir_all(&data).unwrap();

        // Two replicas on one data directory, taking turns: each refuses
        // what the other accepted, including after a torn write.
        let (a, b) = (SeenSignatures::on_disk(&data), SeenSignatures::on_disk(&data));
        assert!(a.first_use(&[1], now, now).unwrap());
        assert!(!b.first_use(&[1], now, now).unwrap());
        assert!(b.first_use(&[2], now, now).unwrap());
        let file = data.join(format!("_state/ingest-seen/{}{SUFFIX}", now.div_euclid(MINUTE_MS)));
        std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(&[0xAB; 5]).unwrap();
        assert!(!a.first_use(&[2], now, now).unwrap());
        assert!(a.first_use(&[3], now, now).unwrap());
        assert!(!b.first_use(&[3], now, now).unwrap(), "read past the torn write, which was written over");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 3 * KEY_LEN as u64);
        // The folder removed under a running replica is made again.
        std::fs::remove_dir_all(data.join("_state/ingest-seen")).unwrap();
        assert!(a.first_use(&[5], now + MINUTE_MS, now).unwrap());
        // An old layout's minute directory goes at the sweep like a file.
        std::fs::create_dir_all(data.join("_state/ingest-seen/1000/")).unwrap();
        a.first_use(&[4], now + 2 * MINUTE_MS, now + 2 * MINUTE_MS).unwrap();
        assert!(!data.join("_state/ingest-seen/1000").exists());
        std::fs::remove_dir_all(&data).unwrap();

        let memory = SeenSignatures::in_memory();
        assert!(memory.first_use(&[7], now, now).unwrap());
        assert!(!memory.first_use(&[7], now, now).unwrap());
    }
}
