//! Server-side sessions on event time, and the `sessions` table.
//!
//! The tracker's own `session_id` is only a hint (a visitor's tabs, a
//! cleared storage); sessions here are rebuilt from event time: per site
//! and visitor, a new session starts after more than `session_gap_ms`
//! without events. Sessions are not cut at hour or day boundaries.

use polars::prelude::*;

use super::sources::acquisition_columns;
use super::{ts_ms, GoldConfig};

/// One row per session of human events: per site and visitor, a new
/// session starts after more than `config.session_gap_ms` without events.
///
/// Columns:
/// - `site_id`, `session_id`, `anonymous_id`, `user_id` (last identified
///   user id in the session, if any); `session_id` is
///   `"{anonymous_id}:{session_start in ms}"`, stable as long as no earlier
///   event of the session arrives late;
/// - `session_start`, `session_end`: first and last event time;
/// - `duration_ms`: `session_end - session_start` (0 for one event);
/// - `engaged_ms`: the time its pages were visible, from the tracker's
///   `page_leave` reports (their `engaged_ms` summed; 0 without any);
/// - `events`, `page_views`: counts;
/// - `entry_page`, `exit_page`: `page_path` of the first and last page view;
/// - `bounced`: exactly one page view;
/// - `converted`: at least one purchase;
/// - `revenue`: sum of the session's purchase lines (0.0 without any);
/// - `utm_source`, `utm_medium`, `utm_campaign`: of the landing event;
/// - `referrer_domain`, `source`, `medium`, `channel`: where the session
///   came from, from its first event's referrer, page URL (click ids) and
///   UTM tags ([`super::sources::classify`]);
/// - `country`, `device_type`, `browser`: of the first event;
/// - `funnel_step` (u32): how far the session got through the funnel, each
///   step counted only at or after the time it reached the one before:
///   0 none, 1 product view, 2 add_to_cart, 3 begin_checkout, 4 purchase.
///   `funnel_1h` is computed from it, so a refresh of the funnel needs the
///   sessions, not their events.
pub fn sessions(events: &DataFrame, config: &GoldConfig) -> PolarsResult<DataFrame> {
    sessionize(events, config)?
        .sessions
        .lazy()
        .sort(["site_id", "session_start", "session_id"], SortMultipleOptions::default())
        .collect()
}

/// The event columns sessions are made of.
pub(crate) const SESSION_INPUT: [&str; 18] = [
    "event_id",
    "event_type",
    "event_ts",
    "site_id",
    "anonymous_id",
    "user_id",
    "page_path",
    "product_id",
    "revenue",
    "engaged_ms",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "page_url",
    "referrer",
    "country",
    "device_type",
    "browser",
];

/// Sessions, and which session each event is in.
pub(crate) struct Sessionized {
    /// The [`sessions`] columns, in no particular order.
    pub(crate) sessions: DataFrame,
    /// Per row of the events, the row of its session in `sessions`.
    session_of_row: Vec<IdxSize>,
}

impl Sessionized {
    /// The rows of `events` (the frame given to [`sessionize`]) whose
    /// session `keep` says yes to.
    pub(crate) fn events_of(&self, events: &DataFrame, keep: &BooleanChunked) -> PolarsResult<DataFrame> {
        let keep: Vec<bool> = keep.iter().map(|k| k == Some(true)).collect();
        let rows: BooleanChunked = self.session_of_row.iter().map(|&s| Some(keep[s as usize])).collect();
        events.filter(&rows)
    }
}

/// What a row can do to its session, read once per row.
#[derive(Clone, Copy)]
struct Row {
    ts: Option<i64>,
    /// 1 page view, 2 add_to_cart, 3 begin_checkout, 4 purchase, 0 other.
    kind: u8,
    /// The funnel step the row can take its session to (0 none).
    step: u8,
    has_user: bool,
    revenue: f64,
    /// A page_leave's engaged time (0 for other events).
    engaged: i64,
}

const PAGE_VIEW: u8 = 1;
const PURCHASE: u8 = 4;

/// [`sessions`] in no particular order, and the session of each event.
///
/// One pass in Rust over the events in session order: the sort is on
/// (visitor number, time) pairs, looking at ids only on ties, and only
/// the session rows' text columns are gathered; gathering every column of
/// every event into sorted order and grouping it took most of the time.
pub(crate) fn sessionize(events: &DataFrame, config: &GoldConfig) -> PolarsResult<Sessionized> {
    let rows = read_rows(events)?;
    let (order, numbers) = session_order(events, &rows, config.session_gap_ms)?;
    let sessions = numbers.last().map_or(0, |n| *n as usize + 1);

    let mut session_of_row = vec![0 as IdxSize; rows.len()];
    let mut first = Vec::with_capacity(sessions);
    let (mut user, mut entry, mut exit) =
        (Vec::with_capacity(sessions), Vec::with_capacity(sessions), Vec::with_capacity(sessions));
    let (mut start, mut end) = (Vec::with_capacity(sessions), Vec::with_capacity(sessions));
    let (mut count, mut page_views) = (Vec::with_capacity(sessions), Vec::with_capacity(sessions));
    let (mut converted, mut revenue, mut funnel) =
        (Vec::with_capacity(sessions), Vec::with_capacity(sessions), Vec::with_capacity(sessions));
    let mut engaged = Vec::with_capacity(sessions);
    let mut at = 0;
    while at < order.len() {
        let until = (at..order.len()).find(|&i| numbers[i] != numbers[at]).unwrap_or(order.len());
        let session = &order[at..until];
        let row = |i: &IdxSize| rows[*i as usize];
        for &i in session {
            session_of_row[i as usize] = first.len() as IdxSize;
        }
        first.push(session[0]);
        user.push(session.iter().rev().find(|i| row(i).has_user).copied());
        entry.push(session.iter().find(|i| row(i).kind == PAGE_VIEW).copied());
        exit.push(session.iter().rev().find(|i| row(i).kind == PAGE_VIEW).copied());
        start.push(session.iter().find_map(|i| row(i).ts));
        end.push(session.iter().rev().find_map(|i| row(i).ts));
        count.push(session.len() as IdxSize);
        page_views.push(session.iter().filter(|i| row(i).kind == PAGE_VIEW).count() as IdxSize);
        converted.push(session.iter().any(|i| row(i).kind == PURCHASE));
        revenue.push(session.iter().filter(|i| row(i).kind == PURCHASE).map(|i| row(i).revenue).sum::<f64>());
        funnel.push(funnel_step(session.iter().map(row)));
        engaged.push(session.iter().map(|i| row(i).engaged).sum::<i64>());
        at = until;
    }

    let ts_type = events.column("event_ts")?.dtype().clone();
    let times = |name: &str, values: Vec<Option<i64>>| Column::new(name.into(), values).cast(&ts_type);
    let gather = |name: &str, rows: &IdxCa| -> PolarsResult<Column> { events.column(name)?.take(rows) };
    let at_first = IdxCa::from_vec("".into(), first);
    let at_some = |rows: Vec<Option<IdxSize>>| IdxCa::from_iter_options("".into(), rows.into_iter());
    let (user, entry, exit) = (at_some(user), at_some(entry), at_some(exit));
    let landing = DataFrame::new_infer_height(
        ["page_url", "referrer", "utm_source", "utm_medium"]
            .into_iter()
            .map(|c| gather(c, &at_first))
            .collect::<PolarsResult<_>>()?,
    )?;
    let [referrer_domain, source, medium, channel] = acquisition_columns(&landing)?;
    let table = DataFrame::new_infer_height(vec![
        gather("site_id", &at_first)?,
        gather("anonymous_id", &at_first)?,
        gather("user_id", &user)?,
        times("session_start", start)?,
        times("session_end", end)?,
        Column::new("events".into(), count),
        Column::new("page_views".into(), page_views),
        Column::new("engaged_ms".into(), engaged),
        gather("page_path", &entry)?.with_name("entry_page".into()),
        gather("page_path", &exit)?.with_name("exit_page".into()),
        Column::new("converted".into(), converted),
        Column::new("revenue".into(), revenue),
        gather("utm_source", &at_first)?,
        gather("utm_medium", &at_first)?,
        gather("utm_campaign", &at_first)?,
        referrer_domain,
        source,
        medium,
        channel,
        gather("country", &at_first)?,
        gather("device_type", &at_first)?,
        gather("browser", &at_first)?,
        Column::new("funnel_step".into(), funnel),
    ])?
    .lazy()
    .with_columns([
        concat_str([col("anonymous_id"), ts_ms("session_start").cast(DataType::String)], ":", false)
            .alias("session_id"),
        (ts_ms("session_end") - ts_ms("session_start")).alias("duration_ms"),
        col("page_views").eq(lit(1)).alias("bounced"),
    ])
    .select(
        [
            "site_id",
            "session_id",
            "anonymous_id",
            "user_id",
            "session_start",
            "session_end",
            "duration_ms",
            "engaged_ms",
            "events",
            "page_views",
            "entry_page",
            "exit_page",
            "bounced",
            "converted",
            "revenue",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "referrer_domain",
            "source",
            "medium",
            "channel",
            "country",
            "device_type",
            "browser",
            "funnel_step",
        ]
        .map(col),
    )
    .collect()?;
    Ok(Sessionized { sessions: table, session_of_row })
}

/// The columns of each event that its session's figures depend on.
fn read_rows(events: &DataFrame) -> PolarsResult<Vec<Row>> {
    let ts = events.column("event_ts")?.cast(&DataType::Int64)?;
    let has_product = events.column("product_id")?.is_not_null();
    let has_user = events.column("user_id")?.is_not_null();
    let revenue = events.column("revenue")?.cast(&DataType::Float64)?;
    let engaged = events.column("engaged_ms")?.cast(&DataType::Int64)?;
    let kinds = events.column("event_type")?.str()?.iter().zip(has_product.iter()).map(|(kind, product)| {
        let kind = match kind {
            Some("page_view") => PAGE_VIEW,
            Some("add_to_cart") => 2,
            Some("begin_checkout") => 3,
            Some("purchase") => PURCHASE,
            _ => 0,
        };
        // Only a page view that shows a product is the funnel's first step.
        let step = if kind == PAGE_VIEW && product != Some(true) { 0 } else { kind };
        (kind, step)
    });
    Ok(ts
        .i64()?
        .iter()
        .zip(kinds)
        .zip(has_user.iter())
        .zip(revenue.f64()?.iter())
        .zip(engaged.i64()?.iter())
        .map(|((((ts, (kind, step)), has_user), revenue), engaged)| Row {
            ts,
            kind,
            step,
            has_user: has_user == Some(true),
            revenue: revenue.unwrap_or(0.0),
            engaged: engaged.unwrap_or(0),
        })
        .collect())
}

/// The order of the rows by visitor, then event time, then `event_id`
/// (nulls first, as Polars sorts), and the session number of each row in
/// that order, from 0: a new session at each new visitor, or after more
/// than `gap_ms` without events.
fn session_order(events: &DataFrame, rows: &[Row], gap_ms: i64) -> PolarsResult<(Vec<IdxSize>, Vec<u64>)> {
    let visitors = visitor_numbers(events)?;
    let ids = events.column("event_id")?.str()?.rechunk();
    let mut keys: Vec<(IdxSize, Option<i64>, IdxSize)> =
        visitors.iter().zip(rows).enumerate().map(|(i, (&v, row))| (v, row.ts, i as IdxSize)).collect();
    keys.sort_unstable_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| ids.get(a.2 as usize).cmp(&ids.get(b.2 as usize)))
    });
    let mut numbers = Vec::with_capacity(keys.len());
    let mut number = 0u64;
    for (i, &(visitor, ts, _)) in keys.iter().enumerate() {
        if i > 0 {
            let (previous_visitor, previous_ts, _) = keys[i - 1];
            let continues =
                previous_visitor == visitor && matches!((previous_ts, ts), (Some(p), Some(t)) if t - p <= gap_ms);
            if !continues {
                number += 1;
            }
        }
        numbers.push(number);
    }
    Ok((keys.into_iter().map(|k| k.2).collect(), numbers))
}

/// How far a session got through the funnel, from its rows in time order.
/// At each instant the steps are tried in funnel order, so a step reached
/// at the same millisecond as the one before counts, as "at or after"
/// says, whatever the order of the rows within that millisecond.
fn funnel_step(rows: impl Iterator<Item = Row>) -> u32 {
    let rows: Vec<Row> = rows.collect();
    let mut reached = 0;
    let mut instant = 0;
    while instant < rows.len() {
        let next = (instant..rows.len()).find(|&i| rows[i].ts != rows[instant].ts).unwrap_or(rows.len());
        while rows[instant..next].iter().any(|r| r.step == reached + 1) {
            reached += 1;
        }
        instant = next;
    }
    u32::from(reached)
}

/// A number per (`site_id`, `anonymous_id`), the same for every row of a
/// visitor (in no particular order).
fn visitor_numbers(events: &DataFrame) -> PolarsResult<Vec<IdxSize>> {
    let mut numbers = vec![0 as IdxSize; events.height()];
    let groups = events.group_by(["site_id", "anonymous_id"])?;
    for (n, group) in groups.get_groups().iter().enumerate() {
        let n = n as IdxSize;
        match group {
            GroupsIndicator::Idx((_, rows)) => rows.iter().for_each(|&row| numbers[row as usize] = n),
            GroupsIndicator::Slice([first, len]) => numbers[first as usize..(first + len) as usize].fill(n),
        }
    }
    Ok(numbers)
}
