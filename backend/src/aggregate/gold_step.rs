//! Gold as the aggregator sees it: the knobs of its rules, which the
//! aggregator carries ([`crate::aggregate::AggregateConfig::gold`]), and
//! the step it runs after Silver in the same commit ([`GoldStep`]).
//!
//! Gold is the layer above this one, so it is not imported here: the step
//! is declared here and `crate::gold::refresh` implements it for
//! [`GoldConfig`].

use std::path::Path;

use polars::prelude::DataFrame;

use crate::storage::{Commit, Manifest, PipelineError};

/// The knobs of the Gold rules.
#[derive(Clone, Debug, PartialEq)]
pub struct GoldConfig {
    /// Inactivity that ends a session (ms). A gap of exactly this long keeps
    /// the session; one millisecond more starts a new one.
    pub session_gap_ms: i64,
    /// A visitor with more than this many events in one minute is a bot.
    pub bot_events_per_minute: u32,
    /// How far behind the latest event time the watermark trails (ms): a
    /// window is final once the watermark has passed its end. Later events
    /// still update it (up to the lateness horizon); `is_final` says when
    /// a dashboard can stop expecting changes.
    pub allowed_lateness_ms: i64,
    /// The site owners' goals and the props custom events are counted by
    /// (`goals_1h`, `custom_events_1h`).
    pub goals: crate::gold::goals::Goals,
    /// Each site's time zone: the days and weeks of `retention_daily` and
    /// `retention_weekly` are the site's.
    pub zones: crate::zones::Zones,
}

impl Default for GoldConfig {
    fn default() -> Self {
        GoldConfig {
            session_gap_ms: 30 * 60_000,
            bot_events_per_minute: 50,
            allowed_lateness_ms: 10 * 60_000,
            goals: Default::default(),
            zones: Default::default(),
        }
    }
}

/// What the aggregator asks of Gold.
pub trait GoldStep {
    /// Builds Gold from the whole of Silver (when Gold does not cover it),
    /// calling `progress` with (hours done, hours in all). Returns the
    /// manifest and the number of files written.
    fn build(
        &self,
        data_dir: &Path,
        manifest: Manifest,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Manifest, usize), PipelineError>;

    /// Folds a micro-batch's new Silver rows (`fresh`, not published yet)
    /// into Gold, in the micro-batch's own `commit`, and advances the
    /// watermark in `manifest`. Returns the number of Gold files written.
    fn after_silver(
        &self,
        data_dir: &Path,
        commit: &mut Commit,
        manifest: &mut Manifest,
        fresh: &DataFrame,
    ) -> Result<usize, PipelineError>;
}
