//! Gold: the business tables analysts and the dashboard read, each a pure
//! function from Silver (a `LazyFrame`) to the table (a `LazyFrame`).
//!
//! Every function here is lazy: nothing is collected until the caller (the
//! aggregator, `replay` or a test) decides to. Business metrics exclude bots
//! ([`human_events`]); only `bot_anomalies` looks at them.
//!
//! Timestamps are UTC `Datetime(ms)`, windows are on event time and are
//! half-open: `[window_start, window_end)`. An event exactly on an edge
//! belongs to the window that starts there.

pub mod bots;
pub mod cohorts;
pub mod conversion;
pub mod dates;
pub mod dimension;
pub mod engagement;
pub mod follow;
pub mod funnel;
pub mod goals;
pub mod identities;
pub mod links;
pub mod pages;
pub mod paths;
pub mod products;
pub mod rebuild;
pub mod refresh;
pub mod revenue;
pub mod sessions;
pub mod sources;
pub mod top_pages;
pub mod traffic;
pub mod users;

use polars::prelude::*;

pub use bots::bot_anomalies;
pub use conversion::conversion_10m;
pub use dates::dim_date;
pub use engagement::engagement_1h;
pub use funnel::funnel_1h;
pub use goals::{custom_events_1h, goals_1h};
pub use links::link_clicks_1h;
pub use pages::dim_pages;
pub use paths::{entry_pages_1h, exit_pages_1h, page_transitions_1h};
pub use products::{dim_products, product_performance_1h};
pub use revenue::revenue_5m;
pub use sessions::sessions;
pub use sources::sources_1h;
pub use top_pages::top_pages_1h;
pub use traffic::traffic_1m;
pub use users::dim_users;

/// The knobs of the rules live with the aggregator, which carries them;
/// the names of the tables with storage, which lays them out.
pub use crate::aggregate::GoldConfig;
pub use crate::storage::GoldTable;

/// `Datetime(ms)` without a time zone: how every timestamp is stored.
pub(crate) fn datetime_ms() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, None)
}

/// Event time as integer milliseconds, for gap arithmetic.
pub(crate) fn ts_ms(name: &str) -> Expr {
    col(name).cast(DataType::Int64)
}

/// The start of the `every`-long window (e.g. "1m", "1h") holding `ts`.
pub(crate) fn window_of(ts: &str, every: &str) -> Expr {
    col(ts).dt().truncate(lit(every))
}

/// `num / den` as a rate, null where `den` is zero (no division by zero
/// turning into NaN or infinity in the tables).
pub(crate) fn rate(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0)))
        .then(num.cast(DataType::Float64) / den.cast(DataType::Float64))
        .otherwise(lit(NULL).cast(DataType::Float64))
}

/// A string column mapped by `f` (a Polars UDF) to a column of type `out`.
pub(crate) fn map_strings<F>(column: &str, out: DataType, f: F) -> Expr
where
    F: Fn(&StringChunked) -> Column + Send + Sync + 'static,
{
    col(column).map(
        move |c| Ok(f(c.str()?).with_name(c.name().clone())),
        move |_, field| Ok(Field::new(field.name().clone(), out.clone())),
    )
}

pub(crate) fn is_type(event_type: &str) -> Expr {
    col("event_type").eq(lit(event_type))
}

/// A page view that shows a product.
pub(crate) fn is_product_view() -> Expr {
    is_type("page_view").and(col("product_id").is_not_null())
}

/// The events business metrics count: not flagged `is_bot` by their user
/// agent, and not from a `flagged` visitor (`site_id`, `anonymous_id`, as
/// listed in `bot_anomalies`): all of that visitor's events go, not only
/// the burst.
pub fn human_events(silver: LazyFrame, flagged: LazyFrame) -> LazyFrame {
    silver.filter(col("is_bot").not()).join(
        flagged,
        [col("site_id"), col("anonymous_id")],
        [col("site_id"), col("anonymous_id")],
        JoinArgs::new(JoinType::Anti),
    )
}

/// [`human_events`] of a collected frame, the same rule without a join: a
/// build sorts out every hour of Silver this way, and most hours have no
/// bot at all, when the frame is returned as it is. (An anti join on the
/// two string columns, even against no flagged visitor, gathered every
/// column of every row: 2.2 s of a 14 s build of a day of 10M events.)
pub fn human_rows(events: DataFrame, flagged: &DataFrame) -> PolarsResult<DataFrame> {
    let is_bot = events.column("is_bot")?.bool()?;
    if flagged.height() == 0 && is_bot.null_count() == 0 && !is_bot.any() {
        return Ok(events);
    }
    let pair = |df: &DataFrame| -> PolarsResult<(StringChunked, StringChunked)> {
        Ok((df.column("site_id")?.str()?.clone(), df.column("anonymous_id")?.str()?.clone()))
    };
    let (flagged_sites, flagged_ids) = pair(flagged)?;
    // A join matches no null key, so a flagged null flags nobody.
    let flagged: std::collections::HashSet<(Option<&str>, Option<&str>)> =
        flagged_sites.iter().zip(flagged_ids.iter()).filter(|(s, a)| s.is_some() && a.is_some()).collect();
    let (sites, ids) = pair(&events)?;
    // A null `is_bot` is not "not a bot": the lazy filter drops it too.
    let keep: BooleanChunked = is_bot
        .iter()
        .zip(sites.iter().zip(ids.iter()))
        .map(|(bot, visitor)| Some(bot == Some(false) && !flagged.contains(&visitor)))
        .collect();
    events.filter(&keep)
}

/// The visitors `bot_anomalies` lists, once each.
pub fn flagged_visitors(anomalies: LazyFrame) -> LazyFrame {
    anomalies.select([col("site_id"), col("anonymous_id")]).unique(None, UniqueKeepStrategy::Any)
}

/// The Silver columns the Gold tables read.
pub const GOLD_INPUT: &[&str] = &[
    "event_id",
    "event_type",
    "event_ts",
    "site_id",
    "anonymous_id",
    "user_id",
    "session_id",
    "page_path",
    "page_title",
    "product_id",
    "category",
    "price",
    "quantity",
    "revenue",
    "currency",
    "order_id",
    "props_extra",
    "custom_name",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "page_url",
    "referrer",
    "click_href",
    "engaged_ms",
    "scroll_depth",
    "country",
    "device_type",
    "browser",
    "is_bot",
];

/// The window tables from whole hours of Silver, given the visitors
/// flagged as bots (anywhere, not only in these hours): each is a sum over
/// windows of at most an hour, so the hours it is computed from give it
/// whole.
pub fn window_tables(
    silver: LazyFrame,
    flagged: LazyFrame,
    config: &GoldConfig,
) -> PolarsResult<Vec<(GoldTable, LazyFrame)>> {
    // Only what they read is kept in the shared cache.
    let silver = silver.select(WINDOW_INPUT.iter().map(|c| col(*c)).collect::<Vec<_>>()).cache();
    let mut tables = human_window_tables(human_events(silver.clone(), flagged).cache(), config)?;
    tables.push((GoldTable::BotAnomalies, bot_anomalies(silver, config)));
    Ok(tables)
}

/// The window tables made of human events only (all but `bot_anomalies`,
/// which counts every event).
pub fn human_window_tables(human: LazyFrame, config: &GoldConfig) -> PolarsResult<Vec<(GoldTable, LazyFrame)>> {
    Ok(vec![
        (GoldTable::Traffic1m, traffic_1m(human.clone(), config)?),
        (GoldTable::TopPages1h, top_pages_1h(human.clone())?),
        (GoldTable::PageTransitions1h, page_transitions_1h(human.clone())),
        (GoldTable::Revenue5m, revenue_5m(human.clone())),
        (GoldTable::Conversion10m, conversion_10m(human.clone())),
        (GoldTable::ProductPerformance1h, product_performance_1h(human.clone())),
        (GoldTable::Goals1h, goals_1h(human.clone(), &config.goals)?),
        (GoldTable::CustomEvents1h, custom_events_1h(human.clone(), &config.goals)?),
        (GoldTable::LinkClicks1h, link_clicks_1h(human.clone())),
        (GoldTable::Engagement1h, engagement_1h(human)),
    ])
}

/// The Silver columns the window tables read: a refresh reads these for
/// whole hours, and every column only for the visitors it touches.
pub const WINDOW_INPUT: &[&str] = &[
    "event_type",
    "event_ts",
    "site_id",
    "anonymous_id",
    "session_id",
    "page_path",
    "product_id",
    "quantity",
    "revenue",
    "order_id",
    "custom_name",
    "props_extra",
    "click_href",
    "page_url",
    "engaged_ms",
    "scroll_depth",
    "is_bot",
];

/// Computes every Gold table from the whole of Silver in one query: the
/// definition the incremental refresh ([`refresh`]) must agree with, and
/// what the fixture tests check.
pub fn all_tables(silver: LazyFrame, config: &GoldConfig) -> PolarsResult<Vec<(GoldTable, LazyFrame)>> {
    let silver = silver.select(GOLD_INPUT.iter().map(|c| col(*c)).collect::<Vec<_>>()).cache();
    let flagged = flagged_visitors(bot_anomalies(silver.clone(), config)).cache();
    let mut tables = window_tables(silver.clone(), flagged.clone(), config)?;
    tables.extend([
        (GoldTable::DimPages, dim_pages(silver.clone())),
        (GoldTable::DimProducts, dim_products(silver.clone())),
        (GoldTable::IdentityMap, identities::identity_map(silver.clone())),
        (GoldTable::DimDate, dim_date(silver.clone())?),
    ]);
    let session_rows = sessions(&human_events(silver.clone(), flagged).collect()?, config)?.lazy().cache();
    tables.extend(session_hour_tables(session_rows.clone()));
    tables.extend(cohorts::retention(session_rows.clone(), identities::identity_map(silver), &config.zones)?);
    tables.extend([(GoldTable::DimUsers, dim_users(session_rows.clone())), (GoldTable::Sessions, session_rows)]);
    Ok(tables)
}

/// The tables made of the sessions that started in an hour, per hour of
/// session start: an hour's rows need only those sessions, so the refresh
/// rewrites them with the sessions it rewrites.
pub fn session_hour_tables(sessions: LazyFrame) -> Vec<(GoldTable, LazyFrame)> {
    vec![
        (GoldTable::Funnel1h, funnel_1h(sessions.clone())),
        (GoldTable::EntryPages1h, entry_pages_1h(sessions.clone())),
        (GoldTable::ExitPages1h, exit_pages_1h(sessions.clone())),
        (GoldTable::Sources1h, sources_1h(sessions)),
    ]
}

/// Collects several tables in one query, so the parts they share (the
/// Silver scan, bot flags, sessions; marked with `cache()`) run once.
pub fn collect_tables(tables: Vec<(GoldTable, LazyFrame)>) -> PolarsResult<Vec<(GoldTable, DataFrame)>> {
    let Some((_, first)) = tables.first() else { return Ok(Vec::new()) };
    let optimizations = first.get_current_optimizations();
    let names: Vec<GoldTable> = tables.iter().map(|(t, _)| *t).collect();
    let plans = tables.into_iter().map(|(_, lf)| lf.logical_plan).collect();
    let frames = LazyFrame::collect_all_with_engine(plans, Engine::Auto, optimizations)?;
    Ok(names.into_iter().zip(frames).collect())
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
