//! Keeping Gold up to date one micro-batch at a time.
//!
//! Each Gold table holds one file per hour of its time column (storage
//! lays them out: [`crate::storage::GoldTable::hour_file`]). A micro-batch
//! rewrites only the hours its new Silver rows can change, each from as
//! little as it needs, in steps that each keep "incremental equals
//! rebuild" for their own tables (and test it against one query over all
//! of Silver, [`crate::gold::all_tables`]):
//!
//! 1. [`bots`]: who is flagged now, and the sessions newly flagged
//!    visitors lose;
//! 2. [`windows`]: the window tables (traffic, top pages, revenue,
//!    products, bots) of the hours the new rows fall in, and of every hour
//!    a newly flagged visitor was active in, from those hours of Silver;
//! 3. [`sessions`]: the sessions the new rows extend, merge or start, from
//!    the events of those visitors between the edges of those sessions,
//!    and `funnel_1h` of the hours those sessions start in;
//! 4. [`users`]: the `dim_users` rows of those visitors; [`dimensions`]:
//!    the `dim_pages` and `dim_products` rows of the pages and products
//!    the new rows name; [`dates`]: the days `dim_date` did not cover;
//! 5. [`cohorts`]: `retention_weekly` and `retention_daily` of the cohorts
//!    the people of those visitors (and of changed `identity_map` rows)
//!    were or are in;
//! 6. [`finality`]: rows the watermark newly passed get `is_final` set, so
//!    after every micro-batch each row's flag is what the current
//!    watermark says, however the events were batched.
//!
//! Every file is replaced in the same atomic commit as the Silver rows:
//! readers see the old hour or the new hour, never a mix, and a crash
//! redoes the whole micro-batch. [`build`] writes every table from all of
//! Silver in one pass, hour by hour, for when Gold is missing or rebuilt.

mod bots;
mod build;
mod cohorts;
mod dates;
mod dimensions;
mod finality;
mod hours;
mod recompute;
mod sessions;
mod users;
mod windows;

#[cfg(test)]
mod testing;

use std::path::Path;

use polars::prelude::*;

/// Gold's reads are storage's; these are the names its callers know.
pub use crate::storage::scan::{has_files, scan_table as scan};
pub use build::build;
pub(crate) use build::remove_gold;
pub use finality::watermark;
pub use recompute::{recompute, FROM_SESSIONS, RECOMPUTABLE};

use self::bots::BotFlags;
use self::cohorts::CohortsChange;
use self::dimensions::DimensionChange;
use self::finality::Watermarks;
use self::hours::{hours_of, SilverView, Writer};
use self::sessions::SessionsChange;
use self::users::UsersChange;
use self::windows::Windows;
use crate::aggregate::GoldStep;
use crate::gold::dimension::DIMENSIONS;
use crate::gold::{GoldConfig, GoldTable, GOLD_INPUT, WINDOW_INPUT};
use crate::storage::{Commit, Manifest, PipelineError};

/// How the aggregator runs Gold (it knows Gold only by this trait).
impl GoldStep for GoldConfig {
    fn build(
        &self,
        data_dir: &Path,
        manifest: Manifest,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Manifest, usize), PipelineError> {
        build(data_dir, manifest, self, progress)
    }

    fn after_silver(
        &self,
        data_dir: &Path,
        commit: &mut Commit,
        manifest: &mut Manifest,
        fresh: &DataFrame,
    ) -> Result<usize, PipelineError> {
        after_silver(data_dir, commit, manifest, fresh, self)
    }
}

/// Advances the watermark in `manifest` by the micro-batch's new Silver
/// rows (`fresh`, not published yet) and rewrites the Gold hours they
/// touch into `commit`. The streaming aggregator and `replay` both call
/// this, so they agree. Returns the number of Gold files written.
pub fn after_silver(
    data_dir: &Path,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
) -> Result<usize, PipelineError> {
    refresh_with(data_dir, commit, manifest, fresh, config, false)
}

/// Folds Silver rows that partition consumers already published into Gold
/// (the Gold role): `fresh` are the rows of their new files, which Silver
/// now holds too. The same refresh as streaming, so the Gold role writes
/// what one aggregator of every partition would.
pub fn after_published(
    data_dir: &Path,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
) -> Result<usize, PipelineError> {
    refresh_with(data_dir, commit, manifest, fresh, config, true)
}

fn refresh_with(
    data_dir: &Path,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
    published: bool,
) -> Result<usize, PipelineError> {
    if fresh.height() == 0 {
        return Ok(0);
    }
    let fresh = fresh.select(GOLD_INPUT.iter().copied())?;
    // Published rows are read with the rest of Silver: never twice.
    let unpublished = if published { fresh.clear() } else { fresh.clone() };
    let view = SilverView { data_dir, unpublished };
    refresh(&view, commit, manifest, &fresh, config)
}

/// One micro-batch's refresh of every Gold table, step by step. `fresh`
/// holds its new Silver rows (Gold's input columns); `view` reads Silver
/// around them. Steps read Gold as published before this micro-batch, so
/// what one writes does not change what the next computes.
fn refresh(
    view: &SilverView<'_>,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
) -> Result<usize, PipelineError> {
    let marks = Watermarks::advance(manifest, fresh, config)?;
    let mut out = Writer::new(view.data_dir, config, marks.new);
    let mut phases = Phases::default();

    let fresh_hours = hours_of(fresh, "event_ts")?;
    let slice = view.hours(&fresh_hours, WINDOW_INPUT, None)?.collect()?;
    let bots = BotFlags::flag(view.data_dir, &slice, config)?;
    phases.lap("bots");
    let windows = Windows::compute(view, &fresh_hours, slice, &bots, config)?;
    phases.lap("windows_compute");
    windows.write(&mut out, commit)?;
    phases.lap("windows");
    let sessions = SessionsChange::compute(view, fresh, &bots, config)?;
    phases.lap("sessions");
    sessions.write(&mut out, commit)?;
    phases.lap("sessions_write");
    if let Some(users) = UsersChange::compute(view.data_dir, &sessions, &bots.newly_flagged)? {
        users.write(&mut out, commit)?;
    }
    phases.lap("users");
    let mut identities = None;
    for dimension in DIMENSIONS {
        if let Some(change) = DimensionChange::compute(view.data_dir, fresh, dimension)? {
            if dimension.table == GoldTable::IdentityMap {
                identities = Some(change.rows().clone());
            }
            change.write(&mut out, commit)?;
        }
    }
    dates::extend_calendar(view.data_dir, fresh, &mut out, commit)?;
    phases.lap("dimensions");
    let newly_flagged = &bots.newly_flagged;
    if let Some(change) =
        CohortsChange::compute(view.data_dir, &sessions, newly_flagged, identities.as_ref(), &config.zones)?
    {
        change.write(&mut out, commit)?;
    }
    phases.lap("retention");
    finality::refinalize_passed(&mut out, commit, marks)?;
    phases.lap("refinalize");
    tracing::debug!(files = out.files, phases = %phases, "Gold refresh");
    Ok(out.files)
}

/// Milliseconds per phase of a refresh, for the log; a phase run again
/// (once per hour of a build) adds up.
pub(super) struct Phases {
    last: std::time::Instant,
    done: Vec<(&'static str, u128)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases { last: std::time::Instant::now(), done: Vec::new() }
    }
}

impl Phases {
    pub fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        let ms = (now - self.last).as_millis();
        match self.done.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += ms,
            None => self.done.push((name, ms)),
        }
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.done.iter().map(|(n, ms)| format!("{n} {ms} ms")).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Scenario;
    use crate::gold::GoldTable;

    #[test]
    fn every_step_together_gives_every_table_and_flag_of_a_rebuild() {
        for scenario in Scenario::all("refresh") {
            scenario.refresh_whole();
            for table in GoldTable::ALL {
                scenario.assert_as_rebuilt_with_flags(table);
            }
        }
    }
}
