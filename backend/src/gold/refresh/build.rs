//! Building Gold from the whole of Silver in one pass: when Gold is
//! missing, or `rebuild` asks for it. Silver is read twice, one narrow
//! pass over three columns for the bot flags and the latest event time,
//! then hour by hour in event-time order for everything else, so memory is
//! that of an hour (and of the sessions still open at its end) whatever
//! the history. Within an hour, the sessions are computed on a thread of
//! their own while the dimension and window tables run as one Polars
//! query. Every table comes out as [`crate::gold::all_tables`] would give
//! it; the files are published in one commit.

use std::collections::BTreeSet;
use std::path::Path;

use clickstream_schema::time::HOUR_MS;
use polars::prelude::*;

use super::finality::watermark;
use super::hours::{hours_of, Writer};
use super::Phases;
use crate::gold::{
    bot_anomalies,
    cohorts::{no_identities, retention},
    collect_tables,
    dates::{calendar, day_of},
    dim_users,
    dimension::DIMENSIONS,
    flagged_visitors, human_rows, human_window_tables, session_hour_tables,
    sessions::{sessionize, SESSION_INPUT},
    ts_ms, GoldConfig, GoldTable, GOLD_INPUT,
};
use crate::storage::error::io_err;
use crate::storage::lake;
use crate::storage::layout::{parquet_files, partition_day};
use crate::storage::scan::{scan_files, silver_files};
use crate::storage::{Commit, Manifest, PipelineError, Table, GOLD_LAYOUT};

/// Builds Gold from the whole of Silver. Gold written before is removed
/// first. Calls `progress` with (hours done, hours in all). Returns the
/// manifest and the files written.
pub fn build(
    data_dir: &Path,
    mut manifest: Manifest,
    config: &GoldConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Manifest, usize), PipelineError> {
    remove_gold(data_dir)?;
    let hours: BTreeSet<i64> =
        parquet_files(&data_dir.join(Table::Silver.root())).iter().filter_map(|f| silver_file_hour(f)).collect();
    manifest.max_event_ts = None;
    manifest.gold_current = true;
    manifest.gold_layout = GOLD_LAYOUT;
    progress(0, hours.len());
    if hours.is_empty() {
        return Ok((manifest, 0));
    }

    let mut phases = Phases::default();
    // Pass 1: who is a bot, and how far event time has got (the watermark
    // every row's `is_final` is set by), from three columns of Silver, an
    // hour at a time (a bot's minutes are within an hour).
    let mut anomalies = Vec::new();
    for &hour in &hours {
        let Some(silver) = scan_files(&silver_files(data_dir, [hour]))? else { continue };
        let narrow = silver.select([col("site_id"), col("anonymous_id"), col("event_ts")]).collect()?;
        let latest = narrow.column("event_ts")?.cast(&DataType::Int64)?.i64()?.max();
        manifest.max_event_ts = manifest.max_event_ts.max(latest);
        anomalies.push(bot_anomalies(narrow.lazy(), config).collect()?.lazy());
    }
    let anomalies = concat(anomalies, UnionArgs::default())?.collect()?;
    let flagged = flagged_visitors(anomalies.clone().lazy()).collect()?;
    phases.lap("bots");

    let mut commit = Commit::new(data_dir, manifest.seq + 1);
    let mut out = Writer::new(data_dir, config, watermark(manifest.max_event_ts, config));
    let anomaly_hours = hours_of(&anomalies, "window_start")?;
    out.write_hours(&mut commit, GoldTable::BotAnomalies, anomalies, &anomaly_hours)?;

    // Pass 2: each hour's human events give that hour of the window
    // tables, and go on to the sessions.
    let mut session_rows = InOrder::new(config);
    // Each hour's rows of each merged dimension, merged once at the end
    // (bots included).
    let mut dimensions = vec![Vec::new(); DIMENSIONS.len()];
    for (done, &hour) in hours.iter().enumerate() {
        if let Some(silver) = scan_files(&silver_files(data_dir, [hour]))? {
            // One read of the hour: the dimensions (bots too) and the
            // human events all come from it.
            let columns: Vec<Expr> = GOLD_INPUT.iter().map(|c| col(*c)).collect();
            let events = silver.select(columns).collect()?;
            let human = human_rows(events.clone(), &flagged)?;
            phases.lap("read");
            // Sessionizing is Rust over the hour's rows, mostly on one
            // core; the dimensions and window tables are Polars queries
            // (run in one, so they share the pool): side by side, the
            // two keep both cores busy.
            let until = (hour + 1) * HOUR_MS;
            let (tables, ready_before) = std::thread::scope(|s| {
                let sessions = s.spawn(|| session_rows.sessionize(&human, until));
                let tables = human_window_tables(human.clone().lazy(), config).and_then(|windows| {
                    let dimensions = DIMENSIONS.map(|d| (d.table, (d.merge)((d.rows)(events.clone().lazy()))));
                    collect_tables(dimensions.into_iter().chain(windows).collect())
                });
                (tables, sessions.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            });
            let mut tables = tables?.into_iter();
            for (rows, (_, df)) in dimensions.iter_mut().zip(tables.by_ref()) {
                rows.push(df.lazy());
            }
            phases.lap("tables_and_sessions");
            for (table, df) in tables {
                let hours = hours_of(&df, table.partition_column())?;
                out.write_hours(&mut commit, table, df, &hours)?;
            }
            session_rows.write_before(ready_before?, &mut out, &mut commit)?;
            phases.lap("write");
        }
        progress(done + 1, hours.len());
    }
    let all_sessions = session_rows.finish(&mut out, &mut commit)?;
    phases.lap("users");
    let mut identities = None;
    for (rows, d) in dimensions.into_iter().zip(DIMENSIONS) {
        if rows.is_empty() {
            continue;
        }
        let rows = (d.merge)(concat(rows, UnionArgs::default())?).collect()?;
        if d.table == GoldTable::IdentityMap {
            identities = Some(rows.clone());
        }
        let hours = hours_of(&rows, "first_seen")?;
        out.write_hours(&mut commit, d.table, rows, &hours)?;
    }
    // Every day from the first hour's to the last's.
    if let (Some(first), Some(last)) = (hours.first(), hours.last()) {
        let days = calendar(day_of(first * HOUR_MS), day_of(last * HOUR_MS)).collect()?;
        let day_hours = hours_of(&days, "day_start")?;
        out.write_hours(&mut commit, GoldTable::DimDate, days, &day_hours)?;
    }
    phases.lap("dimensions");
    if let Some(sessions) = all_sessions {
        let identities = identities.map_or_else(no_identities, IntoLazy::lazy);
        for (table, rows) in collect_tables(retention(sessions, identities, &config.zones)?)? {
            let hours = hours_of(&rows, table.partition_column())?;
            out.write_hours(&mut commit, table, rows, &hours)?;
        }
    }
    phases.lap("retention");
    let committed_at = manifest.committed_at;
    let manifest = commit.commit(manifest, committed_at)?;
    phases.lap("commit");
    tracing::info!(hours = hours.len(), files = out.files, phases = %phases, "Gold build: time per phase");
    Ok((manifest, out.files))
}

/// The `sessions` columns `dim_users` (and the cohorts) read.
const USER_INPUT: [&str; 9] = [
    "site_id",
    "anonymous_id",
    "user_id",
    "session_start",
    "session_end",
    "revenue",
    "converted",
    "utm_source",
    "country",
];

/// Sessions from human events handed in hour by hour, in event-time order.
/// A session is closed once the events handed in reach a gap past its end
/// (no later event can extend it); an hour of `sessions` and `funnel_1h`
/// is written once every session starting in it is closed.
struct InOrder<'a> {
    config: &'a GoldConfig,
    /// The events of the sessions still open (Gold's input columns), which
    /// go in again with the next hour's.
    open_events: Option<DataFrame>,
    /// Those sessions, as they stand.
    open: Option<DataFrame>,
    /// Closed sessions of hours not written yet.
    waiting: Vec<DataFrame>,
    /// [`USER_INPUT`] of every session written, for `dim_users`.
    for_users: Vec<LazyFrame>,
}

impl<'a> InOrder<'a> {
    fn new(config: &'a GoldConfig) -> InOrder<'a> {
        InOrder { config, open_events: None, open: None, waiting: Vec::new(), for_users: Vec::new() }
    }

    /// Adds the human events of an hour ending at `until` (ms). Returns
    /// the hour before which every session is closed: those hours can be
    /// written ([`InOrder::write_before`]).
    fn sessionize(&mut self, human: &DataFrame, until: i64) -> PolarsResult<i64> {
        // Only what sessions are made of goes on with the open ones.
        let human = human.select(SESSION_INPUT.iter().copied())?;
        let events = match self.open_events.take() {
            Some(mut open) => {
                open.vstack_mut(&human)?;
                open
            }
            None => human,
        };
        let made = sessionize(&events, self.config)?;
        // Open: a later event could still extend it.
        let ends = made.sessions.column("session_end")?.cast(&DataType::Int64)?;
        let still_open: BooleanChunked = ends
            .i64()?
            .iter()
            .map(|end| Some(end.is_some_and(|end| end >= until - self.config.session_gap_ms)))
            .collect();
        self.open_events = Some(made.events_of(&events, &still_open)?);
        let rows = made.sessions;
        let open = rows.filter(&still_open)?;
        self.waiting.push(rows.filter(&!still_open)?);
        let first_open = open.column("session_start")?.cast(&DataType::Int64)?.i64()?.min();
        self.open = Some(open);
        Ok(first_open.map_or(i64::MAX, |t| t.div_euclid(HOUR_MS)))
    }

    /// Writes the waiting sessions that start before hour `before`, and
    /// the funnel of their hours.
    fn write_before(&mut self, before: i64, out: &mut Writer<'_>, commit: &mut Commit) -> Result<(), PipelineError> {
        let waiting = std::mem::take(&mut self.waiting);
        if waiting.iter().all(|df| df.height() == 0) {
            return Ok(());
        }
        let waiting = concat(waiting.into_iter().map(IntoLazy::lazy).collect::<Vec<_>>(), UnionArgs::default())?
            .with_column(ts_ms("session_start").floor_div(lit(HOUR_MS)).lt(lit(before)).alias("_ready"))
            .collect()?;
        let ready = waiting
            .clone()
            .lazy()
            .filter(col("_ready"))
            .drop(cols(["_ready"]))
            .sort(["site_id", "session_start", "session_id"], SortMultipleOptions::default())
            .collect()?;
        self.waiting.push(waiting.lazy().filter(col("_ready").not()).drop(cols(["_ready"])).collect()?);
        if ready.height() == 0 {
            return Ok(());
        }
        let hours = hours_of(&ready, "session_start")?;
        self.for_users.push(ready.select(USER_INPUT)?.lazy());
        for (table, rows) in collect_tables(session_hour_tables(ready.clone().lazy()))? {
            out.write_hours(commit, table, rows, &hours)?;
        }
        out.write_hours(commit, GoldTable::Sessions, ready, &hours)
    }

    /// Closes the sessions still open, writes the rest of `sessions` and
    /// `funnel_1h`, then `dim_users` from every session. Returns every
    /// session's [`USER_INPUT`] (none without sessions), for the cohorts.
    fn finish(mut self, out: &mut Writer<'_>, commit: &mut Commit) -> Result<Option<LazyFrame>, PipelineError> {
        if let Some(open) = self.open.take() {
            self.waiting.push(open);
        }
        self.write_before(i64::MAX, out, commit)?;
        if self.for_users.is_empty() {
            return Ok(None);
        }
        let sessions = concat(self.for_users, UnionArgs::default())?.collect()?;
        let users = dim_users(sessions.clone().lazy()).collect()?;
        let hours = hours_of(&users, "first_seen")?;
        out.write_hours(commit, GoldTable::DimUsers, users, &hours)?;
        Ok(Some(sessions.lazy()))
    }
}

/// Removes every Gold file, before Gold is built again.
pub(crate) fn remove_gold(data_dir: &Path) -> Result<(), PipelineError> {
    let gold = data_dir.join("gold");
    if lake::is_remote(&gold) {
        for file in lake::list(&gold).map_err(io_err(format!("listing {} before rebuilding it", gold.display())))? {
            lake::remove(&file).map_err(io_err(format!("removing {} before rebuilding", file.display())))?;
        }
    } else if gold.exists() {
        std::fs::remove_dir_all(&gold)
            .map_err(|e| PipelineError::Task(format!("removing {} before rebuilding it: {e}", gold.display())))?;
    }
    Ok(())
}

/// The hour of a `silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet` path.
pub(super) fn silver_file_hour(path: &Path) -> Option<i64> {
    let dir = path.parent()?;
    let hour: i64 = dir.file_name()?.to_str()?.strip_prefix("hour=")?.parse().ok()?;
    Some(partition_day(dir.parent()?)? * 24 + hour)
}

#[cfg(test)]
mod tests {
    use super::super::testing::Scenario;
    use super::*;
    use crate::gold::GoldTable;
    use crate::storage::scan::has_files;
    use clickstream_schema::time::days_from_civil;

    #[test]
    fn silver_partition_names_give_back_their_hour() {
        let hour = days_from_civil(2026, 11, 22) * 24 + 17;
        let silver = Path::new("silver/events/dt=2026-11-22/hour=17/part-0000000001-silver.parquet");
        assert_eq!(silver_file_hour(silver), Some(hour));
        assert_eq!(Table::Silver.partition_dir(hour * clickstream_schema::time::HOUR_MS), silver.parent().unwrap());
    }

    #[test]
    fn sessions_going_on_across_hours_are_built_as_one_query_over_all_of_silver_gives_them() {
        use super::super::finality::with_is_final;
        use super::super::testing::by_all_columns;
        use crate::gold::all_tables;
        use crate::gold::fixture::{at, ev, silver, DataDir};
        use crate::storage::scan::scan_table;

        // A visit from 8:50 to 12:10 (open at the end of four hours, its
        // funnel finished hours after it started), one across 10:59-11:01,
        // and one ending 30 minutes before an hour ends, which an event
        // right on the next hour still continues.
        let mut events: Vec<_> = (0..11)
            .map(|i| ev(format!("long-{i:02}"), "page_view", at(8, 50) + i * 20 * 60_000, "long").product("p1"))
            .collect();
        events.extend([
            ev("long-cart", "add_to_cart", at(11, 30), "long").product("p1").cart(1, 5.0),
            ev("long-checkout", "begin_checkout", at(12, 0), "long"),
            ev("long-buy", "purchase", at(12, 10), "long").product("p1").bought("o-1", 1, 5.0).user("u-1"),
            ev("edge-1", "page_view", at(10, 59), "edge").utm("ads"),
            ev("edge-2", "page_view", at(11, 1), "edge"),
            ev("gap-1", "page_view", at(10, 0), "gap"),
            ev("gap-2", "page_view", at(10, 30), "gap"),
            ev("gap-3", "page_view", at(11, 0), "gap"),
            ev("gap-4", "page_view", at(13, 0), "gap"),
        ]);
        let dir = DataDir::new("build-across-hours");
        dir.publish(&events);
        let config = GoldConfig::default();
        let latest = events.iter().map(|e| e.ts).max();
        for (table, expected) in all_tables(silver(&events), &config).unwrap() {
            let expected = with_is_final(table, expected.collect().unwrap(), watermark(latest, &config), &config);
            if !has_files(&dir.0, table) {
                assert_eq!(expected.unwrap().height(), 0, "{} has rows but no files", table.name());
                continue;
            }
            let written = scan_table(&dir.0, table).unwrap().collect().unwrap().drop("dt").unwrap();
            let (written, expected) = (by_all_columns(written), by_all_columns(expected.unwrap()));
            assert!(written.equals_missing(&expected), "{}\nwritten: {written}\nexpected: {expected}", table.name());
        }
        let sessions = scan_table(&dir.0, GoldTable::Sessions).unwrap().collect().unwrap();
        assert_eq!(sessions.height(), 4, "long, edge, and gap's two: {sessions}");
    }

    #[test]
    fn a_build_from_silver_is_the_rebuild_every_table_and_flag_is_held_to() {
        // Scenario::new builds the history's Gold; with the whole day as
        // history, that build is compared with one query over all of it.
        let scenario = Scenario::new("build", "whole day as history", |_| false);
        for table in GoldTable::ALL {
            assert!(has_files(scenario.dir(), table), "{}", table.name());
            scenario.assert_as_rebuilt_with_flags(table);
        }
    }
}
