//! The `/ingest` signatures already used, so a captured request cannot be
//! sent again while its timestamp is still fresh.
//!
//! Keyed on the decoded MAC bytes, not the header's text: `v1=ABCD…` and
//! `v1=abcd…` are the same signature. Kept on disk, in
//! `DATA_DIR/_state/ingest-seen/<minute of the signed timestamp>/<mac>`,
//! so a restart does not forget them and ingest replicas sharing the data
//! directory refuse each other's replays: creating a file that exists fails
//! atomically, on every replica alike. A minute's folder is deleted once
//! every timestamp in it is too old to be accepted anyway.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use clickstream_schema::signing::MAX_SIGNATURE_AGE_MS;
use clickstream_schema::time::MINUTE_MS;

/// How long a signature is remembered: longer than any timestamp can be
/// accepted, on either side of the server's clock.
const KEEP_MS: i64 = 2 * MAX_SIGNATURE_AGE_MS + MINUTE_MS;

pub enum SeenSignatures {
    /// In memory: the router's tests, without a data directory.
    Memory(Mutex<HashMap<Vec<u8>, i64>>),
    Disk {
        dir: PathBuf,
        last_sweep: AtomicI64,
    },
}

impl SeenSignatures {
    pub fn in_memory() -> SeenSignatures {
        SeenSignatures::Memory(Mutex::default())
    }

    pub fn on_disk(data_dir: &std::path::Path) -> SeenSignatures {
        SeenSignatures::Disk { dir: data_dir.join("_state/ingest-seen"), last_sweep: AtomicI64::new(i64::MIN) }
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
            SeenSignatures::Disk { dir, last_sweep } => {
                Self::sweep(dir, last_sweep, now_ms);
                let minute = dir.join(timestamp_ms.div_euclid(MINUTE_MS).to_string());
                std::fs::create_dir_all(&minute)?;
                match std::fs::OpenOptions::new().write(true).create_new(true).open(minute.join(hex::encode(mac))) {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Deletes the minutes no accepted timestamp can fall in, once a minute.
    fn sweep(dir: &std::path::Path, last_sweep: &AtomicI64, now_ms: i64) {
        let last = last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < MINUTE_MS
            || last_sweep.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let oldest_kept = (now_ms - KEEP_MS).div_euclid(MINUTE_MS);
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let minute = entry.file_name().to_string_lossy().parse::<i64>();
            if minute.is_ok_and(|m| m < oldest_kept) {
                // Another replica may be deleting it too.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let memory = SeenSignatures::in_memory();
        assert!(memory.first_use(&[7], now, now).unwrap());
        assert!(!memory.first_use(&[7], now, now).unwrap());
    }
}
