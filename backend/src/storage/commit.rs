//! Atomic commits of a micro-batch: its Parquet files and the stream
//! offsets it covers become visible together, or not at all.
//!
//! The protocol is a small redo log:
//! 1. each file is written under a temporary name that carries its commit
//!    (`*.parquet.0000000012.tmp`, which the `*.parquet` globs of readers
//!    never match) and fsynced;
//! 2. the new manifest, listing the new offsets and the files to publish,
//!    is written to a temporary file, fsynced and renamed over
//!    `_state/manifest.json`: **this rename is the commit point**;
//! 3. the files are renamed to their final names.
//!
//! On start, [`Manifest::recover`] finishes step 3 for the last commit (a
//! crash between 2 and 3 loses nothing) and deletes temporary files that no
//! manifest names (a crash before 2: their events are read again from the
//! stream, from the committed offsets). So a crash and restart neither
//! loses nor repeats an event.
//!
//! In an S3 bucket ([`super::lake`]) the steps are the same, with the
//! bucket's operations: a temporary file is an object of its own, the
//! commit point is a conditional put of the manifest (which also stops a
//! second writer of the same manifest), and publishing is a server-side
//! copy and a delete. Readers' `*.parquet` globs see only published
//! files there too.
//!
//! Temporary names carry the commit number because Gold files keep their
//! name from commit to commit (`part-05.parquet` is rewritten whenever hour
//! 5 changes): with one fixed temporary name, the uncommitted Gold of a
//! crashed batch would sit where recovery looks for the last committed
//! batch's, and be published.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::error::{io_err, PipelineError};
use super::lake;
use super::lock::SwapLock;
use crate::stream::Topic;

const MANIFEST: &str = "_state/manifest.json";
const TMP_SUFFIX: &str = ".tmp";

/// Where a crash test stops a micro-batch, as a crash there would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Bronze, Silver and rejects files are written; Gold is not.
    SilverWritten,
    /// Every file is written; the manifest is not (before the commit point).
    GoldWritten,
    /// The manifest is renamed (the commit point); no file is published.
    ManifestWritten,
    /// The first file of the commit is published, the others are not.
    FirstFilePublished,
}

/// Who writes into a data directory under a manifest of its own.
///
/// One aggregator consuming every partition (`serve`, `aggregate`) is the
/// [`Role::Whole`]: it keeps `_state/manifest.json` and writes Gold as it
/// goes. To scale out, several consumers each own some partitions
/// ([`Role::Partitions`]) and write Bronze, Silver and rejects only; one
/// [`Role::Gold`] follows their Silver and keeps Gold. Each role commits
/// atomically on its own manifest, and its file names carry its tag, so
/// roles never overwrite (or clean up) each other's files.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Whole,
    /// The partitions (of both topics) one consumer owns, sorted.
    Partitions(Vec<u32>),
    Gold,
}

impl Role {
    /// A consumer of these partitions (deduplicated and sorted).
    pub fn partitions(mut owned: Vec<u32>) -> Role {
        owned.sort_unstable();
        owned.dedup();
        Role::Partitions(owned)
    }

    /// The tag in the role's manifest and file names: `p0_2` owns 0 and 2.
    pub fn tag(&self) -> String {
        match self {
            Role::Whole => String::new(),
            Role::Partitions(p) => {
                let list: Vec<String> = p.iter().map(u32::to_string).collect();
                format!("p{}", list.join("_"))
            }
            Role::Gold => "gold".into(),
        }
    }

    /// The manifest's path, relative to the data directory.
    pub fn manifest_path(&self) -> String {
        match self {
            Role::Whole => MANIFEST.into(),
            other => format!("_state/manifest-{}.json", other.tag()),
        }
    }

    /// The file name of a table file this role writes in commit `seq`.
    pub fn file_name(&self, seq: u64, name: &str) -> String {
        match self {
            Role::Whole => format!("part-{seq:010}-{name}.parquet"),
            other => format!("part-{}-{seq:010}-{name}.parquet", other.tag()),
        }
    }

    /// The role and commit number of a table file written by a partition
    /// consumer (`part-p0_2-0000000012-silver.parquet`).
    pub fn of_file(file_name: &str) -> Option<(Role, u64)> {
        let rest = file_name.strip_prefix("part-p")?;
        let (parts, rest) = rest.split_once('-')?;
        let seq = rest.get(..10)?.parse().ok()?;
        let owned = parts.split('_').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>()?;
        Some((Role::Partitions(owned), seq))
    }

    /// Whether a temporary file (path relative to the data directory) was
    /// left by this role, so its recovery may remove it. `writes_gold` says
    /// whether this role writes Gold (Gold files are named by hour).
    fn owns_tmp(&self, rel: &Path, writes_gold: bool) -> bool {
        if rel.starts_with("gold") {
            return writes_gold;
        }
        let Some(name) = rel.file_name().and_then(|n| n.to_str()) else { return false };
        match self {
            Role::Whole => name
                .strip_prefix("part-")
                .and_then(|r| r.get(..10))
                .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())),
            Role::Partitions(_) => name.starts_with(&format!("part-{}-", self.tag())),
            Role::Gold => false,
        }
    }

    /// The partition consumers that have committed in this data directory.
    pub fn consumers(data_dir: &Path) -> Vec<Role> {
        let state = data_dir.join("_state");
        let names: Vec<String> = if lake::is_remote(data_dir) {
            match lake::list(&state) {
                Ok(objects) => objects.iter().filter_map(|p| Some(p.file_name()?.to_str()?.to_string())).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the consumers' manifests");
                    Vec::new()
                }
            }
        } else {
            let Ok(entries) = fs::read_dir(state) else { return Vec::new() };
            entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()
        };
        let mut out: Vec<Role> = names
            .into_iter()
            .filter_map(|name| {
                let tag = name.strip_prefix("manifest-p")?.strip_suffix(".json")?;
                let owned = tag.split('_').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>()?;
                Some(Role::Partitions(owned))
            })
            .collect();
        out.sort_by_key(Role::tag);
        out
    }
}

/// A file of a commit: written as `tmp`, published as `path` (both
/// relative to the data directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFile {
    pub tmp: String,
    pub path: String,
    pub rows: u64,
}

/// Running totals, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub bronze_rows: u64,
    pub silver_rows: u64,
    pub reject_rows: u64,
    /// Events dropped from Silver because their event id was already there.
    pub duplicates: u64,
}

/// The single source of truth of the aggregator's progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Commit number, from 1; 0 means nothing committed yet.
    pub seq: u64,
    pub committed_at: i64,
    /// Per topic name, per partition: the next offset to read.
    pub offsets: BTreeMap<String, Vec<u64>>,
    /// The files of the last commit (published by the time it returns).
    pub files: Vec<PendingFile>,
    pub totals: Totals,
    /// Latest event time Silver has seen (ms); the watermark trails it by
    /// the allowed lateness.
    #[serde(default)]
    pub max_event_ts: Option<i64>,
    /// Whether Gold reflects every Silver row. False when Silver was written
    /// with Gold off (or by a version before Gold's hourly layout): the
    /// aggregator then builds Gold from Silver before it goes on.
    #[serde(default)]
    pub gold_current: bool,
    /// The layout of Gold's tables the files were written with
    /// ([`GOLD_LAYOUT`]). Gold of an older layout (a column added to an
    /// existing table) is built again from Silver once, since one table's
    /// files must share their columns for a scan to read them together.
    #[serde(default)]
    pub gold_layout: u32,
    /// How many of the contract's props the role's Bronze and Silver files
    /// have as columns (0: not recorded, by a version before it was).
    /// Fewer than the contract names: [`super::upgrade`] adds the columns
    /// when the role starts.
    #[serde(default)]
    pub prop_columns: u32,
    /// The Gold role's progress: per partition consumer (its tag), the
    /// last of its commits whose Silver files Gold has folded in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gold_inputs: BTreeMap<String, u64>,
    /// In a bucket: the version of the manifest object this one was read
    /// as (or last written as), which the next commit must replace (see
    /// [`lake`]). Not part of the manifest's content.
    #[serde(skip)]
    pub base: Option<lake::Version>,
    /// In a bucket: which process took the role over last (a random id),
    /// so that taking over changes the manifest (see [`Manifest::recover_role`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

/// Gold's table layout: 0 before it was recorded; 1 adds `sessions`'
/// acquisition columns (`referrer_domain`, `source`, `medium`, `channel`)
/// and the tables `sources_1h` and `identity_map`, whose history a
/// rebuild fills in; 2 adds `retention_weekly`, `retention_daily` and
/// `link_clicks_1h`; 3 adds `sessions.engaged_ms` and `engagement_1h`.
pub const GOLD_LAYOUT: u32 = 3;

impl Manifest {
    /// Whether Gold reflects every Silver row, in the current layout.
    pub fn gold_is_current(&self) -> bool {
        self.gold_current && self.gold_layout >= GOLD_LAYOUT
    }

    /// The next offset to read of a topic partition.
    pub fn offset(&self, topic: Topic, partition: u32) -> u64 {
        self.offsets.get(topic.name()).and_then(|parts| parts.get(partition as usize)).copied().unwrap_or(0)
    }

    pub fn set_offset(&mut self, topic: Topic, partition: u32, next: u64) {
        let parts = self.offsets.entry(topic.name().to_string()).or_default();
        if parts.len() <= partition as usize {
            parts.resize(partition as usize + 1, 0);
        }
        parts[partition as usize] = next;
    }

    /// Reads the manifest (an empty one when none exists yet).
    pub fn load(data_dir: &Path) -> Result<Manifest, PipelineError> {
        Manifest::load_role(data_dir, &Role::Whole)
    }

    /// Reads a role's manifest (an empty one when none exists yet).
    pub fn load_role(data_dir: &Path, role: &Role) -> Result<Manifest, PipelineError> {
        let path = data_dir.join(role.manifest_path());
        let read = if lake::is_remote(&path) {
            lake::read_manifest(&path)
                .and_then(|got| got.map(|(bytes, v)| (bytes, Some(v))).ok_or_else(|| io::ErrorKind::NotFound.into()))
        } else {
            fs::read(&path).map(|bytes| (bytes, None))
        };
        match read {
            Ok((bytes, base)) => serde_json::from_slice(&bytes)
                .map(|m| Manifest { base, ..m })
                .map_err(|e| PipelineError::BadManifest { path: path.display().to_string(), reason: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Manifest { version: 1, ..Manifest::default() }),
            Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }

    /// Forgets the list of the last commit's files once each is published
    /// (publishing any that is not yet), so that moving them (compaction)
    /// cannot leave recovery looking for a file that is gone.
    pub fn settle(&mut self, data_dir: &Path, role: &Role) -> Result<(), PipelineError> {
        if self.files.is_empty() {
            return Ok(());
        }
        for file in &self.files {
            publish(data_dir, file)?;
        }
        self.files.clear();
        write_manifest(data_dir, role, self)
    }

    /// Loads the manifest, finishes publishing its files and removes
    /// temporary files of commits that never happened.
    pub fn recover(data_dir: &Path) -> Result<(Manifest, RecoveryReport), PipelineError> {
        Manifest::recover_role(data_dir, &Role::Whole, true)
    }

    /// [`Manifest::recover`] for one role: only its own temporary files
    /// are removed (other roles may be writing theirs right now).
    pub fn recover_role(
        data_dir: &Path,
        role: &Role,
        writes_gold: bool,
    ) -> Result<(Manifest, RecoveryReport), PipelineError> {
        let mut manifest = Manifest::load_role(data_dir, role)?;
        let mut report = RecoveryReport::default();
        let mut named = HashSet::new();
        for file in &manifest.files {
            named.insert(data_dir.join(&file.tmp));
            if publish(data_dir, file)? {
                report.published += 1;
            }
        }
        if lake::is_remote(data_dir) {
            // Taking the role over: a manifest of new content (so a new
            // ETag) before the orphans go. An older process still running
            // this role then fails its next commit, and the temporary
            // files removed below can never be published by it.
            manifest.writer = Some(uuid::Uuid::new_v4().simple().to_string());
            write_manifest(data_dir, role, &mut manifest)?;
        }
        for root in ["bronze", "silver", "rejects", "gold"] {
            let dir = data_dir.join(root);
            if lake::is_remote(&dir) || dir.exists() {
                let owned = |path: &Path| path.strip_prefix(data_dir).is_ok_and(|rel| role.owns_tmp(rel, writes_gold));
                remove_orphans(&dir, &named, &owned, &mut report.orphans_removed)?;
            }
        }
        if manifest.prop_columns < clickstream_schema::props::PROP_COUNT as u32 {
            manifest = super::upgrade::add_prop_columns(data_dir, role, &manifest)?;
        }
        Ok((manifest, report))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Files of the last commit published during recovery.
    pub published: usize,
    /// Temporary files of uncommitted micro-batches removed.
    pub orphans_removed: usize,
}

/// One micro-batch being committed.
pub struct Commit {
    data_dir: PathBuf,
    role: Role,
    files: Vec<PendingFile>,
    seq: u64,
    /// In a bucket, part of every temporary name: two processes running
    /// one role (the older is fenced off at its commit) never write the
    /// same temporary object, so neither can publish the other's bytes.
    attempt: Option<String>,
    crash_at: Option<CrashPoint>,
    panic_at: Option<CrashPoint>,
}

impl Commit {
    /// Commit `seq` of the data directory's one aggregator ([`Role::Whole`]).
    pub fn new(data_dir: &Path, seq: u64) -> Commit {
        Commit::of(data_dir, Role::Whole, seq)
    }

    /// Commit `seq` of a role, on its own manifest.
    pub fn of(data_dir: &Path, role: Role, seq: u64) -> Commit {
        let attempt = lake::is_remote(data_dir).then(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
        Commit {
            data_dir: data_dir.to_path_buf(),
            role,
            files: Vec::new(),
            seq,
            attempt,
            crash_at: None,
            panic_at: None,
        }
    }

    /// For crash tests: the commit stops at `crash` returning
    /// [`PipelineError::InjectedCrash`], or panics at `panic`, when it
    /// reaches that step (the caller checks the steps before
    /// [`Commit::commit`] with [`Commit::crash_point`]).
    #[must_use]
    pub fn crashing_at(mut self, crash: Option<CrashPoint>, panic: Option<CrashPoint>) -> Commit {
        self.crash_at = crash;
        self.panic_at = panic;
        self
    }

    /// Returns [`PipelineError::InjectedCrash`] if this commit is to stop at
    /// `point`; the caller stops there as a crashed process would.
    pub fn crash_point(&self, point: CrashPoint) -> Result<(), PipelineError> {
        crash_if(self.crash_at, self.panic_at, point)
    }

    /// Writes a frame as a temporary Parquet file in `dir` (relative to the
    /// data directory), named after the commit and `name`, and fsyncs it.
    pub fn write_parquet(&mut self, dir: &Path, name: &str, df: &mut DataFrame) -> Result<(), PipelineError> {
        let final_rel = dir.join(self.role.file_name(self.seq, name));
        self.write_parquet_at(&final_rel, df)
    }

    /// Writes a frame to be published at `final_rel` (relative to the data
    /// directory). If a file is there already, publishing replaces it in
    /// one rename: readers see the old file or the new one, never neither
    /// and never a mix. Gold partitions are replaced this way.
    pub fn write_parquet_at(&mut self, final_rel: &Path, df: &mut DataFrame) -> Result<(), PipelineError> {
        // Named after the commit (see the module's comment).
        let tag = self.role.tag();
        let sep = if tag.is_empty() { "" } else { "-" };
        let attempt = self.attempt.as_ref().map(|a| format!("-{a}")).unwrap_or_default();
        let tmp_rel = PathBuf::from(format!("{}.{tag}{sep}{:010}{attempt}{TMP_SUFFIX}", final_rel.display(), self.seq));
        let tmp_abs = self.data_dir.join(&tmp_rel);
        let parquet_err = |source| PipelineError::Parquet { path: tmp_abs.display().to_string(), source };
        if lake::is_remote(&tmp_abs) {
            // One put of the whole file: an object exists complete or not
            // at all, so there is nothing to sync.
            let mut bytes = Vec::new();
            super::parquet::write_table(&mut bytes, df).map_err(parquet_err)?;
            lake::write(&tmp_abs, bytes).map_err(io_err(format!("uploading {}", tmp_abs.display())))?;
        } else {
            if let Some(parent) = tmp_abs.parent() {
                fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
            }
            let file = File::create(&tmp_abs).map_err(io_err(format!("creating {}", tmp_abs.display())))?;
            let (file, written) = write_buffered(file, |out| super::parquet::write_table(out, df))
                .map_err(io_err(format!("writing {}", tmp_abs.display())))?;
            written.map_err(parquet_err)?;
            file.sync_all().map_err(io_err(format!("syncing {}", tmp_abs.display())))?;
        }
        self.files.push(PendingFile {
            tmp: tmp_rel.display().to_string(),
            path: final_rel.display().to_string(),
            rows: df.height() as u64,
        });
        Ok(())
    }

    /// Atomically commits the written files with the manifest's offsets,
    /// then publishes the files. Returns the committed manifest.
    pub fn commit(self, mut manifest: Manifest, now_ms: i64) -> Result<Manifest, PipelineError> {
        manifest.version = 1;
        manifest.seq = self.seq;
        manifest.committed_at = now_ms;
        manifest.files = self.files;
        crash_if(self.crash_at, self.panic_at, CrashPoint::GoldWritten)?;
        write_manifest(&self.data_dir, &self.role, &mut manifest)?;
        crash_if(self.crash_at, self.panic_at, CrashPoint::ManifestWritten)?;
        // Replacing a file a query may be reading waits for the reads in
        // flight (see `SwapLock`); adding files never does.
        let remote = lake::is_remote(&self.data_dir);
        let replaces = !remote && manifest.files.iter().any(|f| self.data_dir.join(&f.path).exists());
        let _hold = replaces.then(|| SwapLock::replacing(&self.data_dir));
        let mut dirs = HashSet::new();
        for (i, file) in manifest.files.iter().enumerate() {
            if i == 1 {
                crash_if(self.crash_at, self.panic_at, CrashPoint::FirstFilePublished)?;
            }
            publish(&self.data_dir, file)?;
            if let Some(parent) = self.data_dir.join(&file.path).parent().filter(|_| !remote) {
                dirs.insert(parent.to_path_buf());
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(manifest)
    }
}

fn crash_if(
    crash_at: Option<CrashPoint>,
    panic_at: Option<CrashPoint>,
    point: CrashPoint,
) -> Result<(), PipelineError> {
    assert!(panic_at != Some(point), "injected panic at {point:?} (test hook)");
    if crash_at == Some(point) {
        return Err(PipelineError::InjectedCrash);
    }
    Ok(())
}

/// Runs `write` into `file` through a buffer and flushes it. Polars'
/// Parquet writer makes a write for each small piece of a file (about
/// 1,700 system calls per Gold file, 664,000 for a Gold build of 399
/// files: most of its writing phase); buffered, a file takes a few.
pub(crate) fn write_buffered<T>(
    file: File,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> T,
) -> std::io::Result<(File, T)> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = write(&mut out);
    let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    Ok((file, result))
}

fn write_manifest(data_dir: &Path, role: &Role, manifest: &mut Manifest) -> Result<(), PipelineError> {
    let path = data_dir.join(role.manifest_path());
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| PipelineError::BadManifest { path: path.display().to_string(), reason: e.to_string() })?;
    if lake::is_remote(&path) {
        let written = lake::write_manifest(&path, bytes, manifest.base.as_ref())
            .map_err(io_err(format!("committing {}", path.display())))?;
        manifest.base = Some(written);
        return Ok(());
    }
    let dir = path.parent().unwrap_or(data_dir);
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let tmp = path.with_extension(format!("json{TMP_SUFFIX}"));
    let mut file = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    file.write_all(&bytes).map_err(io_err(format!("writing {}", tmp.display())))?;
    file.sync_all().map_err(io_err(format!("syncing {}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(io_err(format!("renaming {}", tmp.display())))?;
    sync_dir(dir)
}

/// Renames a committed file to its final name; `true` if it had not been.
fn publish(data_dir: &Path, file: &PendingFile) -> Result<bool, PipelineError> {
    let tmp = data_dir.join(&file.tmp);
    let path = data_dir.join(&file.path);
    if lake::is_remote(data_dir) {
        let context = || format!("publishing {}", path.display());
        if lake::exists(&tmp).map_err(io_err(context()))? {
            lake::rename(&tmp, &path).map_err(io_err(context()))?;
            return Ok(true);
        }
        if lake::exists(&path).map_err(io_err(context()))? {
            return Ok(false);
        }
        return Err(PipelineError::Io {
            context: format!("committed file {} is missing", path.display()),
            source: io::Error::from(io::ErrorKind::NotFound),
        });
    }
    if tmp.exists() {
        fs::rename(&tmp, &path).map_err(io_err(format!("publishing {}", path.display())))?;
        return Ok(true);
    }
    if path.exists() {
        return Ok(false);
    }
    Err(PipelineError::Io {
        context: format!("committed file {} is missing", path.display()),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

fn remove_orphans(
    dir: &Path,
    keep: &HashSet<PathBuf>,
    owned: &dyn Fn(&Path) -> bool,
    removed: &mut usize,
) -> Result<(), PipelineError> {
    if lake::is_remote(dir) {
        for path in lake::list(dir).map_err(io_err(format!("listing {}", dir.display())))? {
            if path.to_string_lossy().ends_with(TMP_SUFFIX) && !keep.contains(&path) && owned(&path) {
                lake::remove(&path).map_err(io_err(format!("removing {}", path.display())))?;
                *removed += 1;
            }
        }
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        let path = entry.path();
        if path.is_dir() {
            remove_orphans(&path, keep, owned, removed)?;
        } else if path.to_string_lossy().ends_with(TMP_SUFFIX) && !keep.contains(&path) && owned(&path) {
            fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
            *removed += 1;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), PipelineError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(format!("syncing directory {}", dir.display())))
}
