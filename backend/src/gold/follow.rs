//! The Gold role of a scaled-out deployment (`clickstream gold`).
//!
//! Partition consumers (`clickstream aggregate --partitions 0,2`) write
//! Bronze, Silver and rejects for the partitions they own; Gold needs every
//! partition's Silver (a funnel or a top-pages window spans visitors of all
//! partitions), so one process keeps it: it follows each consumer's
//! manifest and folds the Silver files of its newly committed micro-batches
//! into Gold, with the same refresh a single aggregator runs. Its progress
//! (per consumer, the last commit folded in) is in its own manifest, in the
//! same atomic commit as the Gold files, so a crash neither skips nor
//! repeats a micro-batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use polars::prelude::*;
use tokio::sync::watch;

use super::refresh::after_published;
use super::{GoldConfig, GOLD_INPUT};
use crate::clock::Clock;
use crate::storage::layout::parquet_files;
use crate::storage::lock::Ownership;
use crate::storage::scan::scan_files;
use crate::storage::{Commit, Manifest, PipelineError, Role, Table, GOLD_LAYOUT};

/// What one pass folded in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowReport {
    /// Consumer micro-batches folded in.
    pub commits: u64,
    pub silver_files: usize,
    pub silver_rows: usize,
    pub gold_files: usize,
}

pub struct GoldFollower {
    data_dir: PathBuf,
    config: GoldConfig,
    manifest: Manifest,
    clock: Arc<dyn Clock>,
    _ownership: Ownership,
}

impl GoldFollower {
    /// Claims the Gold tables of the data directory and recovers the role's
    /// last commit.
    pub fn open(data_dir: &Path, config: GoldConfig, clock: Arc<dyn Clock>) -> Result<GoldFollower, PipelineError> {
        let ownership = Ownership::claim(data_dir, &[], true).map_err(PipelineError::Ownership)?;
        let (manifest, _) = Manifest::recover_role(data_dir, &Role::Gold, true)?;
        Ok(GoldFollower { data_dir: data_dir.to_path_buf(), config, manifest, clock, _ownership: ownership })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Folds in every consumer commit published since the last pass, in
    /// one Gold commit. Blocking (Polars and fsync).
    pub fn step(&mut self) -> Result<FollowReport, PipelineError> {
        let mut report = FollowReport::default();
        let mut next = self.manifest.clone();
        if next.gold_layout < GOLD_LAYOUT {
            if !next.gold_inputs.is_empty() {
                // Gold of an older layout: fold every consumer commit in
                // again, from none. Gold goes first; a crash before the
                // commit below finds the old layout and does this again.
                tracing::info!(
                    from = next.gold_layout,
                    to = GOLD_LAYOUT,
                    "Gold was written in an older layout; folding all of Silver in again (once)"
                );
                super::refresh::remove_gold(&self.data_dir)?;
                next.gold_inputs.clear();
                next.max_event_ts = None;
            }
            next.gold_layout = GOLD_LAYOUT;
        }
        let mut wanted: Vec<(Role, u64, u64)> = Vec::new();
        for role in Role::consumers(&self.data_dir) {
            let theirs = Manifest::load_role(&self.data_dir, &role)?;
            if theirs.prop_columns < clickstream_schema::props::PROP_COUNT as u32 {
                // Its files lack a prop column until it starts with this
                // version (storage::upgrade); a scan over its files and
                // newer ones would fail. Its commits wait until then.
                tracing::debug!(consumer = %role.tag(), "waiting for the consumer's files to have the contract's newest props");
                continue;
            }
            // Files of a consumer's last commit are renamed into place just
            // after its manifest: wait for all of them.
            let published =
                theirs.files.iter().all(|f| crate::storage::lake::file_exists(&self.data_dir.join(&f.path)));
            let ready = if published { theirs.seq } else { theirs.seq.saturating_sub(1) };
            let done = next.gold_inputs.get(&role.tag()).copied().unwrap_or(0);
            if ready > done {
                report.commits += ready - done;
                next.gold_inputs.insert(role.tag(), ready);
                wanted.push((role, done, ready));
            }
        }
        if wanted.is_empty() {
            return Ok(report);
        }
        let files: Vec<PathBuf> = parquet_files(&self.data_dir.join(Table::Silver.root()))
            .into_iter()
            .filter(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                Role::of_file(name).is_some_and(|(role, seq)| {
                    wanted.iter().any(|(r, done, ready)| *r == role && seq > *done && seq <= *ready)
                })
            })
            .collect();
        report.silver_files = files.len();
        let mut commit = Commit::of(&self.data_dir, Role::Gold, next.seq + 1);
        if let Some(silver) = scan_files(&files)? {
            let columns: Vec<Expr> = GOLD_INPUT.iter().map(|c| col(*c)).collect();
            let fresh = silver.select(columns).collect()?;
            report.silver_rows = fresh.height();
            report.gold_files = after_published(&self.data_dir, &mut commit, &mut next, &fresh, &self.config)?;
        }
        next.gold_current = true;
        self.manifest = commit.commit(next, self.clock.now_ms())?;
        Ok(report)
    }

    /// Follows until `stop` turns true, then takes a last pass.
    pub async fn run(mut self, poll: Duration, mut stop: watch::Receiver<bool>) -> Result<(), PipelineError> {
        loop {
            let stopping = *stop.borrow();
            let (back, outcome) = tokio::task::spawn_blocking(move || {
                let r = self.step();
                (self, r)
            })
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))?;
            self = back;
            match outcome {
                Ok(r) if r.commits > 0 => {
                    tracing::info!(
                        commits = r.commits,
                        silver_rows = r.silver_rows,
                        gold_files = r.gold_files,
                        "Gold refreshed"
                    );
                    if !stopping {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "Gold refresh failed; retrying from its last commit"),
            }
            if stopping {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
