//! The IP hash's salts: random, one per UTC day, kept only while needed.
//!
//! The model is that of the cookieless analytics products: a salt is 32
//! bytes from the CSPRNG (not derived from anything long-lived), stored in
//! `DATA_DIR/_state/salts/YYYY-MM-DD.salt` (0600) so that ingest replicas
//! sharing the directory and a restarted server agree, and deleted once the
//! day after its own has begun. Only today's and yesterday's salts exist at
//! any time, so nothing on disk lets anyone recompute an older day's hashes
//! (guessing IPs and comparing with stored `ip_hash` values).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clickstream_schema::time::{utc_date_string, DAY_MS};
use clickstream_schema::SaltSource;

use crate::secrets::{create_private, create_private_dir, random_bytes};

/// The file an earlier version kept its long-lived salt secret in.
const LEGACY_SECRET: &str = "ip-salt-secret";

pub struct SaltStore {
    dir: PathBuf,
    /// The salts in use, by day number: at most today's and yesterday's.
    days: Mutex<BTreeMap<i64, [u8; 32]>>,
}

impl SaltStore {
    /// Opens the store of a data directory at `now_ms`, deleting salts of
    /// days before yesterday and the long-lived secret of earlier versions.
    pub fn open(data_dir: &Path, now_ms: i64) -> std::io::Result<SaltStore> {
        let state = data_dir.join("_state");
        let dir = state.join("salts");
        create_private_dir(&dir)?;
        let legacy = state.join(LEGACY_SECRET);
        if legacy.exists() {
            std::fs::remove_file(&legacy)?;
            tracing::info!(file = %legacy.display(), "deleted the long-lived IP-salt secret of an earlier version: salts are random per day now");
        }
        let store = SaltStore { dir, days: Mutex::new(BTreeMap::new()) };
        store.delete_before(now_ms.div_euclid(DAY_MS) - 1)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, day: i64) -> PathBuf {
        self.dir.join(format!("{}.salt", utc_date_string(day * DAY_MS)))
    }

    /// The day's salt from its file, created when this process is the
    /// first to need it.
    fn load_or_create(&self, day: i64) -> std::io::Result<[u8; 32]> {
        let path = self.path(day);
        let fresh = random_bytes::<32>();
        if create_private(&path, hex::encode(fresh).as_bytes())? {
            return Ok(fresh);
        }
        let text = std::fs::read_to_string(&path)?;
        let mut salt = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut salt)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
        Ok(salt)
    }

    /// Deletes the files of days before `first_kept`.
    fn delete_before(&self, first_kept: i64) -> std::io::Result<()> {
        let keep_from = utc_date_string(first_kept * DAY_MS);
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Dates sort as text; temporary files start with a dot.
            if let Some(date) = name.strip_suffix(".salt") {
                if date < keep_from.as_str() {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }
}

impl SaltSource for SaltStore {
    fn salt_of_day(&self, day: i64) -> [u8; 32] {
        let mut days = self.days.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(salt) = days.get(&day) {
            return *salt;
        }
        if days.last_key_value().is_some_and(|(newest, _)| day < newest - 1) {
            // A day whose salt is gone (a clock gone back): a salt used once
            // and forgotten, so the hash links to nothing.
            return random_bytes();
        }
        let salt = match self.load_or_create(day) {
            Ok(salt) => salt,
            Err(e) => {
                // Hashing must not stop collection: this request's hash
                // then matches no other, which loses nothing but linkage.
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot keep the day's IP salt; using a one-off salt");
                return random_bytes();
            }
        };
        days.insert(day, salt);
        let newest = *days.last_key_value().map_or(&day, |(d, _)| d);
        days.retain(|d, _| *d >= newest - 1);
        if let Err(e) = self.delete_before(newest - 1) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot delete an old IP salt");
        }
        salt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY0: i64 = 1_732_262_400_000 / DAY_MS;

    fn files(store: &SaltStore) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_salt_lives_for_its_day_and_the_next_then_is_deleted() {
        let dir = std::env::temp_dir().join(format!("clickstream-salts-{}", crate::secrets::random_token()));
        std::fs::create_dir_all(dir.join("_state")).unwrap();
        std::fs::write(dir.join("_state/ip-salt-secret"), "long-lived").unwrap();
        let store = SaltStore::open(&dir, DAY0 * DAY_MS).unwrap();
        assert!(!dir.join("_state/ip-salt-secret").exists(), "the old long-lived secret is deleted");

        let day0 = store.salt_of_day(DAY0);
        assert_eq!(store.salt_of_day(DAY0), day0);
        assert_eq!(files(&store), vec!["2024-11-22.salt"]);
        // Another replica (or a restart) on the same directory agrees.
        let other = SaltStore::open(&dir, DAY0 * DAY_MS).unwrap();
        assert_eq!(other.salt_of_day(DAY0), day0);

        let day1 = store.salt_of_day(DAY0 + 1);
        assert_ne!(day1, day0, "a new random salt each day");
        assert_eq!(files(&store), vec!["2024-11-22.salt", "2024-11-23.salt"], "yesterday's is kept");
        store.salt_of_day(DAY0 + 2);
        assert_eq!(files(&store), vec!["2024-11-23.salt", "2024-11-24.salt"], "the day before yesterday's is gone");
        assert_ne!(store.salt_of_day(DAY0), day0, "a gone day's salt cannot be had again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.dir().join("2024-11-24.salt")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A restart two days later deletes what it no longer needs.
        drop(other);
        let later = SaltStore::open(&dir, (DAY0 + 4) * DAY_MS).unwrap();
        assert!(files(&later).is_empty(), "{:?}", files(&later));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
