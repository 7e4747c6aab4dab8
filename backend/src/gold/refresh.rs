//! Keeping Gold up to date one micro-batch at a time.
//!
//! Each Gold table is partitioned by the UTC day of its time column and
//! holds one file per hour: `gold/<table>/dt=YYYY-MM-DD/part-HH.parquet`.
//! A micro-batch rewrites only the hours its new Silver rows can change,
//! each from as little as it needs:
//!
//! - the window tables (traffic, top pages, revenue, products, bots) of the
//!   hours the new rows fall in, from those hours of Silver;
//! - the sessions the new rows extend, merge or start, from the events of
//!   those visitors between the edges of those sessions (the `sessions`
//!   table is the state: it says where each visitor's sessions begin and
//!   end);
//! - `funnel_1h` of the hours those sessions start in, from `sessions`;
//! - the `dim_users` rows of those visitors, from their sessions.
//!
//! A visitor newly flagged as a bot loses its sessions, and every hour it
//! was active in is recomputed without it. Rows the watermark newly passed
//! get `is_final` set, so after every micro-batch each row's flag is what
//! the current watermark says, however the events were batched.
//!
//! Every file is replaced in the same atomic commit as the Silver rows:
//! readers see the old hour or the new hour, never a mix, and a crash
//! redoes the whole micro-batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clickstream_schema::time::{days_from_civil, utc_date_string, utc_hour, HOUR_MS};
use polars::prelude::*;

use super::{
    bot_anomalies, collect_tables, dim_users, flagged_visitors, funnel_1h, human_events,
    sessionize, sessions, ts_ms, window_tables, GoldConfig, GoldTable, GOLD_INPUT, WINDOW_INPUT,
};
use crate::aggregate::dedup::scan_glob;
use crate::aggregate::AggregateError;
use crate::storage::layout::parquet_files;
use crate::storage::{Commit, Manifest, Table};

/// The table's directory, relative to the data directory.
pub fn table_dir(table: GoldTable) -> PathBuf {
    PathBuf::from("gold").join(table.name())
}

/// The file of a table's hour (hours since the epoch).
pub fn hour_file(table: GoldTable, hour: i64) -> PathBuf {
    let ts = hour * HOUR_MS;
    table_dir(table)
        .join(format!("dt={}", utc_date_string(ts)))
        .join(format!("part-{:02}.parquet", utc_hour(ts)))
}

/// The glob that reads a whole Gold table.
pub fn glob(data_dir: &Path, table: GoldTable) -> String {
    format!(
        "{}/{}/**/*.parquet",
        data_dir.display(),
        table_dir(table).display()
    )
}

/// Whether a Gold table has at least one published file.
pub fn has_files(data_dir: &Path, table: GoldTable) -> bool {
    !parquet_files(&data_dir.join(table_dir(table))).is_empty()
}

/// Lazily scans a Gold table (its `dt` partition column included).
pub fn scan(data_dir: &Path, table: GoldTable) -> PolarsResult<LazyFrame> {
    scan_glob(glob(data_dir, table))
}

/// The watermark after Silver has seen events up to `max_event_ts`.
pub fn watermark(max_event_ts: Option<i64>, config: &GoldConfig) -> Option<i64> {
    max_event_ts.map(|t| t - config.allowed_lateness_ms)
}

/// When a row of `table` has settled: once the watermark is there, the row
/// is marked final. `None` for `dim_users`, which has no window.
fn settled_at(table: GoldTable, config: &GoldConfig) -> Option<Expr> {
    let gap = config.session_gap_ms;
    Some(match table {
        GoldTable::Traffic1m | GoldTable::Revenue5m | GoldTable::BotAnomalies => {
            ts_ms("window_end")
        }
        GoldTable::TopPages1h | GoldTable::ProductPerformance1h => {
            ts_ms("hour_start") + lit(HOUR_MS)
        }
        // Sessions that started in the hour can still go on for a while.
        GoldTable::Funnel1h => ts_ms("hour_start") + lit(HOUR_MS + gap),
        GoldTable::Sessions => ts_ms("session_end") + lit(gap),
        GoldTable::DimUsers => return None,
    })
}

/// Sets `is_final` from the watermark: true once it passed `settled_at`.
fn with_is_final(
    table: GoldTable,
    df: DataFrame,
    watermark: Option<i64>,
    config: &GoldConfig,
) -> PolarsResult<DataFrame> {
    let Some(settled) = settled_at(table, config) else {
        return Ok(df);
    };
    let is_final = match watermark {
        Some(w) => settled.lt_eq(lit(w)),
        None => lit(false),
    };
    df.lazy().with_column(is_final.alias("is_final")).collect()
}

fn hour_of(column: &str) -> Expr {
    ts_ms(column).floor_div(lit(HOUR_MS))
}

/// The distinct hours of a time column.
fn hours_of(df: &DataFrame, column: &str) -> PolarsResult<BTreeSet<i64>> {
    let ts = df.column(column)?.cast(&DataType::Int64)?;
    Ok(ts
        .i64()?
        .into_no_null_iter()
        .map(|t| t.div_euclid(HOUR_MS))
        .collect())
}

fn in_hours(column: &str, hours: &BTreeSet<i64>) -> Expr {
    let list = Series::new("hours".into(), hours.iter().copied().collect::<Vec<_>>());
    hour_of(column).is_in(lit(list).implode(false), false)
}

fn visitor() -> [Expr; 2] {
    [col("site_id"), col("anonymous_id")]
}

fn join_on_visitor(left: LazyFrame, right: LazyFrame, how: JoinType) -> LazyFrame {
    left.join(right, visitor(), visitor(), JoinArgs::new(how))
}

/// An empty (`site_id`, `anonymous_id`) frame.
fn no_visitors() -> DataFrame {
    DataFrame::new_infer_height(vec![
        Column::new_empty("site_id".into(), &DataType::String),
        Column::new_empty("anonymous_id".into(), &DataType::String),
    ])
    .expect("two empty columns")
}

/// Reads one hour's file of a table, without `is_final` (recomputed when
/// the hour is written again).
fn read_hour(data_dir: &Path, table: GoldTable, hour: i64) -> PolarsResult<Option<DataFrame>> {
    let Some(df) = read_hour_as_written(data_dir, table, hour)? else {
        return Ok(None);
    };
    Ok(Some(if df.schema().contains("is_final") {
        df.drop("is_final")?
    } else {
        df
    }))
}

fn read_hour_as_written(
    data_dir: &Path,
    table: GoldTable,
    hour: i64,
) -> PolarsResult<Option<DataFrame>> {
    let path = data_dir.join(hour_file(table, hour));
    if !path.exists() {
        return Ok(None);
    }
    let path = PlRefPath::new(path.display().to_string());
    // The file as written: no `dt` column from its directory name.
    let args = ScanArgsParquet {
        hive_options: polars::io::HiveOptions::new_disabled(),
        ..ScanArgsParquet::default()
    };
    LazyFrame::scan_parquet(path, args)?.collect().map(Some)
}

/// The Silver a refresh reads: the published files of the hours it asks
/// for, plus rows not published yet (the micro-batch's own).
struct SilverView<'a> {
    data_dir: &'a Path,
    unpublished: DataFrame,
    /// Published hours from this one on are left out: a build from scratch
    /// hands them in as unpublished, one hour at a time.
    published_before: Option<i64>,
}

impl SilverView<'_> {
    /// `columns` of the Silver rows in `hours`, those `only` keeps (a
    /// filter the Parquet reader applies before decoding other columns).
    fn hours(&self, hours: &BTreeSet<i64>, columns: &[&str], only: Option<Expr>) -> PolarsResult<LazyFrame> {
        let columns: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
        let keep = |lf: LazyFrame| match &only {
            Some(only) => lf.filter(only.clone()),
            None => lf,
        };
        let mut frames = Vec::new();
        let files: Vec<PlRefPath> = hours
            .iter()
            .filter(|h| self.published_before.is_none_or(|before| **h < before))
            .flat_map(|h| {
                parquet_files(&self.data_dir.join(Table::Silver.partition_dir(h * HOUR_MS)))
            })
            .map(|p| PlRefPath::new(p.display().to_string()))
            .collect();
        if !files.is_empty() {
            let published = LazyFrame::scan_parquet_files(
                files.into_iter().collect(),
                ScanArgsParquet::default(),
            )?;
            frames.push(keep(published).select(columns.clone()));
        }
        frames.push(keep(self.unpublished.clone().lazy().filter(in_hours("event_ts", hours))).select(columns));
        concat(frames, UnionArgs::default())
    }
}

/// The hour files one refresh writes, and the watermark they are written
/// with.
struct Writer<'a> {
    data_dir: &'a Path,
    config: &'a GoldConfig,
    watermark: Option<i64>,
    written: BTreeMap<GoldTable, BTreeSet<i64>>,
    files: usize,
}

impl Writer<'_> {
    /// Writes the rows of `df` of each hour in `hours` as that hour's file.
    /// An hour that had a file but has no rows now gets an empty file, so
    /// stale rows never linger.
    fn write_hours(
        &mut self,
        commit: &mut Commit,
        table: GoldTable,
        df: DataFrame,
        hours: &BTreeSet<i64>,
    ) -> Result<(), AggregateError> {
        let df = with_is_final(table, df, self.watermark, self.config)?;
        let mut rows_by_hour: BTreeMap<i64, Vec<IdxSize>> = BTreeMap::new();
        let ts = df
            .column(table.partition_column())?
            .cast(&DataType::Int64)?;
        for (row, t) in ts.i64()?.iter().enumerate() {
            rows_by_hour
                .entry(t.unwrap_or(0).div_euclid(HOUR_MS))
                .or_default()
                .push(row as IdxSize);
        }
        for &hour in hours {
            let rows = rows_by_hour.remove(&hour).unwrap_or_default();
            let path = hour_file(table, hour);
            if rows.is_empty() && !self.data_dir.join(&path).exists() {
                continue;
            }
            let mut part = df.take(&IdxCa::from_vec("idx".into(), rows))?;
            commit.write_parquet_at(&path, &mut part)?;
            self.written.entry(table).or_default().insert(hour);
            self.files += 1;
        }
        Ok(())
    }

    fn was_written(&self, table: GoldTable, hour: i64) -> bool {
        self.written.get(&table).is_some_and(|h| h.contains(&hour))
    }

    /// Rewrites an hour whose rows the watermark newly passed.
    fn refinalize(
        &mut self,
        commit: &mut Commit,
        table: GoldTable,
        hour: i64,
    ) -> Result<(), AggregateError> {
        if self.was_written(table, hour) {
            return Ok(());
        }
        let Some(before) = read_hour_as_written(self.data_dir, table, hour)? else {
            return Ok(());
        };
        let after = with_is_final(table, before.clone(), self.watermark, self.config)?;
        // Flags only ever turn true: a different count means a change.
        let finals = |d: &DataFrame| -> PolarsResult<u32> {
            Ok(d.column("is_final")?.bool()?.sum().unwrap_or(0))
        };
        if finals(&before)? != finals(&after)? {
            self.write_hours(
                commit,
                table,
                before.drop("is_final")?,
                &BTreeSet::from([hour]),
            )?;
        }
        Ok(())
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
) -> Result<usize, AggregateError> {
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
) -> Result<usize, AggregateError> {
    refresh_with(data_dir, commit, manifest, fresh, config, true)
}

fn refresh_with(
    data_dir: &Path,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
    published: bool,
) -> Result<usize, AggregateError> {
    if fresh.height() == 0 {
        return Ok(0);
    }
    let fresh = fresh.select(GOLD_INPUT.iter().copied())?;
    // Published rows are read with the rest of Silver: never twice.
    let unpublished = if published { fresh.clear() } else { fresh.clone() };
    let view = SilverView { data_dir, unpublished, published_before: None };
    refresh(&view, commit, manifest, &fresh, config)
}

/// Builds Gold from the whole of Silver, hour by hour in event-time order,
/// committing after each hour: the same refresh as streaming, fed one
/// hour at a time, so memory stays that of a few hours whatever the
/// history. Gold written before is removed first. Calls `progress` with
/// (hours done, hours in all). Returns the manifest and the files written.
pub fn build(
    data_dir: &Path,
    mut manifest: Manifest,
    config: &GoldConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Manifest, usize), AggregateError> {
    let gold = data_dir.join("gold");
    if gold.exists() {
        std::fs::remove_dir_all(&gold).map_err(|e| {
            AggregateError::Task(format!(
                "removing {} before rebuilding it: {e}",
                gold.display()
            ))
        })?;
    }
    let hours: BTreeSet<i64> = parquet_files(&data_dir.join(Table::Silver.root()))
        .iter()
        .filter_map(|f| silver_file_hour(f))
        .collect();
    manifest.max_event_ts = None;
    let mut files = 0;
    progress(0, hours.len());
    for (done, &hour) in hours.iter().enumerate() {
        let paths: Vec<PlRefPath> =
            parquet_files(&data_dir.join(Table::Silver.partition_dir(hour * HOUR_MS)))
                .into_iter()
                .map(|p| PlRefPath::new(p.display().to_string()))
                .collect();
        let columns: Vec<Expr> = GOLD_INPUT.iter().map(|c| col(*c)).collect();
        let fresh =
            LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default())?
                .select(columns)
                .collect()?;
        let view = SilverView {
            data_dir,
            unpublished: fresh.clone(),
            published_before: Some(hour),
        };
        let mut next = manifest.clone();
        let mut commit = Commit::new(data_dir, next.seq + 1);
        files += refresh(&view, &mut commit, &mut next, &fresh, config)?;
        let committed_at = next.committed_at;
        manifest = commit.commit(next, committed_at)?;
        progress(done + 1, hours.len());
    }
    manifest.gold_current = true;
    if !hours.is_empty() {
        // Said in a commit of its own, so a restart does not build again.
        let committed_at = manifest.committed_at;
        manifest = Commit::new(data_dir, manifest.seq + 1).commit(manifest, committed_at)?;
    }
    Ok((manifest, files))
}

/// The hour of a `silver/events/dt=YYYY-MM-DD/hour=HH/part-*.parquet` path.
fn silver_file_hour(path: &Path) -> Option<i64> {
    let dir = path.parent()?;
    let hour: i64 = dir
        .file_name()?
        .to_str()?
        .strip_prefix("hour=")?
        .parse()
        .ok()?;
    let date = dir.parent()?.file_name()?.to_str()?.strip_prefix("dt=")?;
    let mut it = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (it.next()??, it.next()??, it.next()??);
    Some(days_from_civil(y, m as u32, d as u32) * 24 + hour)
}

/// One micro-batch's refresh of every Gold table. `fresh` holds its new
/// Silver rows (Gold's input columns); `view` reads Silver around them.
fn refresh(
    view: &SilverView<'_>,
    commit: &mut Commit,
    manifest: &mut Manifest,
    fresh: &DataFrame,
    config: &GoldConfig,
) -> Result<usize, AggregateError> {
    let data_dir = view.data_dir;
    let old_watermark = watermark(manifest.max_event_ts, config);
    let ts = fresh.column("event_ts")?.cast(&DataType::Int64)?;
    if let Some(max) = ts.i64()?.max() {
        manifest.max_event_ts = Some(manifest.max_event_ts.map_or(max, |m| m.max(max)));
    }
    let new_watermark = watermark(manifest.max_event_ts, config);
    let mut out = Writer {
        data_dir,
        config,
        watermark: new_watermark,
        written: BTreeMap::new(),
        files: 0,
    };
    let gap = config.session_gap_ms;
    let mut phases = Phases::default();

    // Bots. Minute counts only grow, so a visitor flagged stays flagged;
    // the new flags come from the hours of the new rows.
    let fresh_hours = hours_of(fresh, "event_ts")?;
    let mut slice = view.hours(&fresh_hours, WINDOW_INPUT, None)?.collect()?;
    let flagged_before = if has_files(data_dir, GoldTable::BotAnomalies) {
        flagged_visitors(scan(data_dir, GoldTable::BotAnomalies)?).collect()?
    } else {
        no_visitors()
    };
    let flagged_here = flagged_visitors(bot_anomalies(slice.clone().lazy(), config)).collect()?;
    let newly_flagged = join_on_visitor(
        flagged_here.clone().lazy(),
        flagged_before.clone().lazy(),
        JoinType::Anti,
    )
    .collect()?;
    let flagged = concat(
        [flagged_before.lazy(), flagged_here.lazy()],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any)
    .collect()?;

    phases.lap("bots");
    // A newly flagged visitor's sessions go, and the windows of every hour
    // they were active in are recomputed without them.
    let sessions_columns = || {
        [
            col("site_id"),
            col("session_id"),
            col("anonymous_id"),
            col("session_start"),
            col("session_end"),
            col("revenue"),
            col("converted"),
        ]
    };
    let dropped_bots = if newly_flagged.height() > 0 && has_files(data_dir, GoldTable::Sessions) {
        join_on_visitor(
            scan(data_dir, GoldTable::Sessions)?.select(sessions_columns()),
            newly_flagged.clone().lazy(),
            JoinType::Semi,
        )
        .collect()?
    } else {
        DataFrame::empty()
    };
    let mut window_hours = fresh_hours.clone();
    if dropped_bots.height() > 0 {
        let starts = dropped_bots
            .column("session_start")?
            .cast(&DataType::Int64)?;
        let ends = dropped_bots.column("session_end")?.cast(&DataType::Int64)?;
        for (s, e) in starts
            .i64()?
            .into_no_null_iter()
            .zip(ends.i64()?.into_no_null_iter())
        {
            window_hours.extend(s.div_euclid(HOUR_MS)..=e.div_euclid(HOUR_MS));
        }
        slice = view.hours(&window_hours, WINDOW_INPUT, None)?.collect()?;
    }

    // The window tables of those hours, from those hours.
    let tables = collect_tables(window_tables(
        slice.clone().lazy(),
        flagged.clone().lazy(),
        config,
    )?)?;
    phases.lap("windows_compute");
    for (table, df) in tables {
        out.write_hours(commit, table, df, &window_hours)?;
    }

    phases.lap("windows");
    // Sessions. Per visitor with new human events between `_from` and
    // `_to`, the sessions they can change are those ending within a gap
    // before `_from` or starting within a gap after `_to`; any event of
    // the visitor outside the span of those sessions (and the new events)
    // is more than a gap away from it, so the events inside the span alone
    // give the new sessions.
    let visitors = human_events(fresh.clone().lazy(), flagged.clone().lazy())
        .group_by(visitor())
        .agg([
            ts_ms("event_ts").min().alias("_from"),
            ts_ms("event_ts").max().alias("_to"),
        ])
        .collect()?;
    let replaced = if visitors.height() > 0 && has_files(data_dir, GoldTable::Sessions) {
        let earliest = visitors.column("_from")?.i64()?.min().unwrap_or(i64::MIN) - gap;
        let earliest = lit(earliest).cast(DataType::Datetime(TimeUnit::Milliseconds, None));
        let near = scan(data_dir, GoldTable::Sessions)?
            .select(sessions_columns())
            .filter(col("session_end").gt_eq(earliest));
        join_on_visitor(near, visitors.clone().lazy(), JoinType::Inner)
            .filter(
                ts_ms("session_end")
                    .gt_eq(col("_from") - lit(gap))
                    .and(ts_ms("session_start").lt_eq(col("_to") + lit(gap))),
            )
            .select(sessions_columns())
            .collect()?
    } else {
        DataFrame::empty()
    };
    let mut spans = vec![visitors.clone().lazy().select([
        col("site_id"),
        col("anonymous_id"),
        col("_from"),
        col("_to"),
    ])];
    if replaced.height() > 0 {
        spans.push(replaced.clone().lazy().select([
            col("site_id"),
            col("anonymous_id"),
            ts_ms("session_start").alias("_from"),
            ts_ms("session_end").alias("_to"),
        ]));
    }
    let spans = concat(spans, UnionArgs::default())?
        .group_by(visitor())
        .agg([col("_from").min(), col("_to").max()])
        .collect()?;
    let mut span_hours = BTreeSet::new();
    let (from, to) = (spans.column("_from")?.i64()?, spans.column("_to")?.i64()?);
    for (f, t) in from.into_no_null_iter().zip(to.into_no_null_iter()) {
        span_hours.extend(f.div_euclid(HOUR_MS)..=t.div_euclid(HOUR_MS));
    }
    // Only the touched visitors' rows are decoded whole.
    let ids = lit(spans.column("anonymous_id")?.as_materialized_series().clone()).implode(false);
    let events = join_on_visitor(
        view.hours(&span_hours, GOLD_INPUT, Some(col("anonymous_id").is_in(ids, false)))?,
        spans.clone().lazy(),
        JoinType::Inner,
    )
    .filter(
        ts_ms("event_ts")
            .gt_eq(col("_from"))
            .and(ts_ms("event_ts").lt_eq(col("_to"))),
    )
    .drop(cols(["_from", "_to"]));
    let new_sessions =
        sessions(sessionize(human_events(events, flagged.lazy()), config)?)?.collect()?;

    phases.lap("sessions");
    // Rewrite the hours of the sessions replaced and of the new ones.
    let mut removed = vec![];
    for df in [&replaced, &dropped_bots] {
        if df.height() > 0 {
            removed.push(df.clone().lazy().select([
                col("site_id"),
                col("session_id"),
                col("session_start"),
            ]));
        }
    }
    let removed = if removed.is_empty() {
        DataFrame::empty()
    } else {
        concat(removed, UnionArgs::default())?.collect()?
    };
    let mut session_hours = hours_of(&new_sessions, "session_start")?;
    if removed.height() > 0 {
        session_hours.extend(hours_of(&removed, "session_start")?);
    }
    let mut hour_sessions = vec![new_sessions.clone().lazy()];
    for &hour in &session_hours {
        if let Some(df) = read_hour(data_dir, GoldTable::Sessions, hour)? {
            let kept = if removed.height() > 0 {
                df.lazy().join(
                    removed.clone().lazy(),
                    [col("site_id"), col("session_id")],
                    [col("site_id"), col("session_id")],
                    JoinArgs::new(JoinType::Anti),
                )
            } else {
                df.lazy()
            };
            hour_sessions.push(kept);
        }
    }
    let hour_sessions = concat(hour_sessions, UnionArgs::default())?
        .sort(
            ["site_id", "session_start", "session_id"],
            SortMultipleOptions::default(),
        )
        .collect()?;
    out.write_hours(
        commit,
        GoldTable::Sessions,
        hour_sessions.clone(),
        &session_hours,
    )?;
    // The funnel of an hour is its sessions', all of which are at hand.
    out.write_hours(
        commit,
        GoldTable::Funnel1h,
        funnel_1h(hour_sessions.clone().lazy()).collect()?,
        &session_hours,
    )?;

    phases.lap("sessions_write");
    // dim_users of the visitors whose sessions changed, from all their
    // sessions: the rewritten hours' as just computed, the rest from disk.
    let users_changed = concat(
        [visitors.lazy().select(visitor()), newly_flagged.lazy()],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any)
    .collect()?;
    if users_changed.height() > 0 {
        let sessions_change = SessionsChange {
            replaced: &replaced,
            added: &new_sessions,
            hour_sessions: &hour_sessions,
            session_hours: &session_hours,
        };
        update_users(&mut out, commit, &users_changed, &sessions_change)?;
    }

    phases.lap("users");
    // Rows the watermark passed since the last micro-batch.
    if let (Some(old), Some(new)) = (old_watermark, new_watermark) {
        if new > old {
            // The rows of hour h settle within (h + first, h + last]
            // (ms after the hour's start): only hours whose range meets
            // (old, new] can hold a row that turns final now.
            for (table, first, last) in [
                (GoldTable::Traffic1m, 0, HOUR_MS),
                (GoldTable::Revenue5m, 0, HOUR_MS),
                (GoldTable::BotAnomalies, 0, HOUR_MS),
                (GoldTable::TopPages1h, HOUR_MS - 1, HOUR_MS),
                (GoldTable::ProductPerformance1h, HOUR_MS - 1, HOUR_MS),
                (GoldTable::Funnel1h, HOUR_MS + gap - 1, HOUR_MS + gap),
            ] {
                let hours =
                    (old - last).div_euclid(HOUR_MS)..=(new - first - 1).div_euclid(HOUR_MS);
                for hour in hours.filter(|h| h * HOUR_MS + last > old && h * HOUR_MS + first < new)
                {
                    out.refinalize(commit, table, hour)?;
                }
            }
            if has_files(data_dir, GoldTable::Sessions) {
                let settled = scan(data_dir, GoldTable::Sessions)?
                    .filter(
                        col("is_final")
                            .not()
                            .and((ts_ms("session_end") + lit(gap)).lt_eq(lit(new))),
                    )
                    .select([col("session_start")])
                    .collect()?;
                for hour in hours_of(&settled, "session_start")? {
                    out.refinalize(commit, GoldTable::Sessions, hour)?;
                }
            }
        }
    }
    phases.lap("refinalize");
    tracing::debug!(files = out.files, phases = %phases, "Gold refresh");
    Ok(out.files)
}

/// Milliseconds per phase of a refresh, for the debug log.
struct Phases {
    last: std::time::Instant,
    done: Vec<(&'static str, u128)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            last: std::time::Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Phases {
    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((name, (now - self.last).as_millis()));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .done
            .iter()
            .map(|(n, ms)| format!("{n} {ms} ms"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// What a micro-batch did to the `sessions` table.
struct SessionsChange<'a> {
    /// Old sessions of the touched visitors that were replaced (empty or
    /// with `sessions_columns`).
    replaced: &'a DataFrame,
    /// The sessions that replaced them (and new ones).
    added: &'a DataFrame,
    /// Every session of the rewritten hours, as now written.
    hour_sessions: &'a DataFrame,
    session_hours: &'a BTreeSet<i64>,
}

/// Updates the `dim_users` rows of `changed` visitors and rewrites the
/// hours (of `first_seen`) they leave or land in.
///
/// The common case, a visitor whose only new session is their latest one
/// (an ongoing visit goes on, or a new visit starts), is merged into the
/// visitor's row: the sessions it replaced are inside it, so counts and
/// sums move by the difference, first and last seen by the min and max,
/// and the user id is its own if it has one. Other visitors (late events,
/// bots) are recomputed from all their sessions.
fn update_users(
    out: &mut Writer<'_>,
    commit: &mut Commit,
    changed: &DataFrame,
    change: &SessionsChange<'_>,
) -> Result<(), AggregateError> {
    let data_dir = out.data_dir;
    // A filter on the visitor ids first lets the Parquet reader skip the
    // other rows; the join then matches the site too.
    let ids_of = |df: &DataFrame| -> PolarsResult<Expr> {
        Ok(lit(df.column("anonymous_id")?.as_materialized_series().clone()).implode(false))
    };
    let ids = ids_of(changed)?;
    let old_rows = if has_files(data_dir, GoldTable::DimUsers) {
        join_on_visitor(
            scan(data_dir, GoldTable::DimUsers)?.filter(col("anonymous_id").is_in(ids, false)).drop(cols(["dt"])),
            changed.clone().lazy(),
            JoinType::Semi,
        )
        .collect()?
    } else {
        DataFrame::empty()
    };

    // Per visitor: what was added, what was replaced.
    let by_start = || SortMultipleOptions::default();
    let added = change
        .added
        .clone()
        .lazy()
        .group_by(visitor())
        .agg([
            len().alias("_added"),
            col("revenue").sum().alias("_added_revenue"),
            col("converted").sum().cast(DataType::UInt32).alias("_added_converted"),
            col("session_start").min().alias("_added_first"),
            col("session_end").max().alias("_added_last"),
            col("utm_source").sort_by([col("session_start")], by_start()).first().alias("_added_utm"),
            col("country").sort_by([col("session_start")], by_start()).first().alias("_added_country"),
            col("user_id").sort_by([col("session_start")], by_start()).last().alias("_added_user"),
        ]);
    let replaced = if change.replaced.height() > 0 {
        change.replaced.clone().lazy().group_by(visitor()).agg([
            len().alias("_replaced"),
            col("revenue").sum().alias("_replaced_revenue"),
            col("converted").sum().cast(DataType::UInt32).alias("_replaced_converted"),
        ])
    } else {
        added.clone().select([
            col("site_id"),
            col("anonymous_id"),
            lit(0u32).alias("_replaced"),
            lit(0.0).alias("_replaced_revenue"),
            lit(0u32).alias("_replaced_converted"),
        ])
    };
    let mut merged = join_on_visitor(added, replaced, JoinType::Left);
    merged = if old_rows.height() > 0 {
        join_on_visitor(merged, old_rows.clone().lazy(), JoinType::Left)
    } else {
        merged.with_columns(
            [
                ("user_id", DataType::String),
                ("first_seen", crate::gold::datetime_ms()),
                ("last_seen", crate::gold::datetime_ms()),
                ("sessions", DataType::UInt32),
                ("lifetime_revenue", DataType::Float64),
                ("purchases_sessions", DataType::UInt32),
                ("first_utm_source", DataType::String),
                ("country", DataType::String),
            ]
            .map(|(name, dtype)| lit(NULL).cast(dtype).alias(name)),
        )
    };
    let zero = |c: &str| col(c).fill_null(lit(0));
    // One added session, and it is the visitor's latest.
    let mergeable = col("_added")
        .eq(lit(1))
        .and(col("last_seen").is_null().or(col("_added_last").gt_eq(col("last_seen"))));
    let first_is_added = col("first_seen").is_null().or(col("_added_first").lt_eq(col("first_seen")));
    let merged = merged
        .with_column(mergeable.alias("_mergeable"))
        .collect()?;
    let rows = merged
        .clone()
        .lazy()
        .filter(col("_mergeable"))
        .select([
            col("site_id"),
            col("anonymous_id"),
            when(col("_added_user").is_not_null()).then(col("_added_user")).otherwise(col("user_id")).alias("user_id"),
            when(first_is_added.clone()).then(col("_added_first")).otherwise(col("first_seen")).alias("first_seen"),
            col("_added_last").alias("last_seen"),
            (zero("sessions") - zero("_replaced") + col("_added")).cast(DataType::UInt32).alias("sessions"),
            (col("lifetime_revenue").fill_null(lit(0.0)) - col("_replaced_revenue").fill_null(lit(0.0))
                + col("_added_revenue"))
            .alias("lifetime_revenue"),
            (zero("purchases_sessions") - zero("_replaced_converted") + col("_added_converted"))
                .cast(DataType::UInt32)
                .alias("purchases_sessions"),
            when(first_is_added.clone()).then(col("_added_utm")).otherwise(col("first_utm_source")).alias("first_utm_source"),
            when(first_is_added).then(col("_added_country")).otherwise(col("country")).alias("country"),
        ]);

    // Everyone else (not mergeable, or whose sessions all went): from all
    // their sessions, the rewritten hours' as just computed.
    let merged_visitors = merged.clone().lazy().filter(col("_mergeable")).select(visitor()).collect()?;
    let recompute = join_on_visitor(changed.clone().lazy(), merged_visitors.clone().lazy(), JoinType::Anti).collect()?;
    let (merged_visitors_count, recompute_count) = (merged_visitors.height(), recompute.height());
    let mut users = vec![rows];
    if recompute.height() > 0 {
        let mut their_sessions =
            vec![join_on_visitor(change.hour_sessions.clone().lazy(), recompute.clone().lazy(), JoinType::Semi)];
        if has_files(data_dir, GoldTable::Sessions) {
            let on_disk = scan(data_dir, GoldTable::Sessions)?
                .filter(
                    col("anonymous_id")
                        .is_in(ids_of(&recompute)?, false)
                        .and(in_hours("session_start", change.session_hours).not()),
                )
                .drop(cols(["dt", "is_final"]));
            their_sessions.push(join_on_visitor(on_disk, recompute.lazy(), JoinType::Semi));
        }
        users.push(dim_users(concat(their_sessions, UnionArgs::default())?));
    }
    let users = concat(users, UnionArgs::default())?.collect()?;
    tracing::debug!(merged = merged_visitors_count, recomputed = recompute_count, "dim_users rows");

    let mut hours = hours_of(&users, "first_seen")?;
    if old_rows.height() > 0 {
        hours.extend(hours_of(&old_rows, "first_seen")?);
    }
    let mut rows = vec![users.lazy()];
    for &hour in &hours {
        if let Some(df) = read_hour(data_dir, GoldTable::DimUsers, hour)? {
            rows.push(join_on_visitor(df.lazy(), changed.clone().lazy(), JoinType::Anti));
        }
    }
    let rows = concat(rows, UnionArgs::default())?
        .sort(["site_id", "first_seen", "anonymous_id"], SortMultipleOptions::default())
        .collect()?;
    out.write_hours(commit, GoldTable::DimUsers, rows, &hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_give_back_their_hour() {
        let hour = days_from_civil(2026, 11, 22) * 24 + 17;
        assert_eq!(
            hour_file(GoldTable::Sessions, hour),
            PathBuf::from("gold/sessions/dt=2026-11-22/part-17.parquet")
        );
        let silver =
            Path::new("silver/events/dt=2026-11-22/hour=17/part-0000000001-silver.parquet");
        assert_eq!(silver_file_hour(silver), Some(hour));
    }
}
