//! The entry and exit pages panel: `entry_pages_1h` and `exit_pages_1h`
//! over the hours the range touches.

use polars::prelude::*;
use serde_json::{json, Value};

use super::require_gold;
use super::{Context, DashboardError, Params};
use crate::gold::GoldTable;
use crate::storage::range::{gold, ints, texts};

/// `GET /api/pages?limit=10`: the `limit` pages most sessions started on,
/// with their bounce rate, and the `limit` pages most sessions ended on,
/// with their exit rate: exits over the page's views (`top_pages_1h`) in
/// the same hours.
pub fn pages(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let (site, from) = (p.site.as_deref(), p.from_hour());
    let top = |sort: &str| [col(sort), col("page_path")];
    let descending = SortMultipleOptions::default().with_order_descending_multi([true, false]);
    let mut entry = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::EntryPages1h, site, from, p.to)? {
        let df = lf
            .group_by([col("page_path")])
            .agg([
                col("sessions").cast(DataType::Int64).sum(),
                col("bounces").cast(DataType::Int64).sum(),
                col("converted").cast(DataType::Int64).sum(),
            ])
            .sort_by_exprs(top("sessions"), descending.clone())
            .limit(limit as IdxSize)
            .collect()?;
        let (page, sessions, bounces, converted) =
            (texts(&df, "page_path", "")?, ints(&df, "sessions")?, ints(&df, "bounces")?, ints(&df, "converted")?);
        for i in 0..page.len() {
            let rate = (sessions[i] > 0).then(|| bounces[i] as f64 / sessions[i] as f64);
            entry.push(json!({
                "page_path": page[i], "sessions": sessions[i], "bounces": bounces[i], "bounce_rate": rate,
                "converted": converted[i],
            }));
        }
    }
    let mut exit = Vec::new();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::ExitPages1h, site, from, p.to)? {
        let exits = lf.group_by([col("page_path")]).agg([col("exits").cast(DataType::Int64).sum()]);
        let views = match gold(&cx.data_dir, GoldTable::TopPages1h, site, from, p.to)? {
            Some(v) => v.group_by([col("page_path")]).agg([col("views").cast(DataType::Int64).sum()]),
            None => exits.clone().select([col("page_path"), lit(NULL).cast(DataType::Int64).alias("views")]),
        };
        let on = || [col("page_path")];
        let df = exits
            .join(views, on(), on(), JoinArgs::new(JoinType::Left))
            .with_column(
                when(col("views").gt(lit(0)))
                    .then(col("exits").cast(DataType::Float64) / col("views").cast(DataType::Float64))
                    .otherwise(lit(NULL).cast(DataType::Float64))
                    .alias("exit_rate"),
            )
            .sort_by_exprs(top("exits"), descending)
            .limit(limit as IdxSize)
            .collect()?;
        let (page, exits) = (texts(&df, "page_path", "")?, ints(&df, "exits")?);
        let views: Vec<Option<i64>> = df.column("views")?.i64()?.iter().collect();
        let rate: Vec<Option<f64>> = df.column("exit_rate")?.f64()?.iter().collect();
        for i in 0..page.len() {
            exit.push(json!({ "page_path": page[i], "exits": exits[i], "views": views[i], "exit_rate": rate[i] }));
        }
    }
    Ok(json!({ "range": p.range.name(), "entry": entry, "exit": exit }))
}

/// `GET /api/next_pages?page=/p/1&limit=10`: the pages viewed right after
/// `page` (`page_transitions_1h` over the hours the range touches), most
/// often first, each with its share of the steps from `page`; without
/// `page`, from the page most steps start on. `pages` lists the pages steps
/// start on, most first (what the dashboard offers to choose from).
pub fn next_pages(cx: &Context, p: &Params) -> Result<Value, DashboardError> {
    require_gold(&cx.data_dir)?;
    let limit = p.count("limit", 10, 100)?;
    let asked = p.text("page", 2048)?;
    let (site, from) = (p.site.as_deref(), p.from_hour());
    let descending = SortMultipleOptions::default().with_order_descending_multi([true, false]);
    let (mut starts, mut next, mut total) = (Vec::new(), Vec::new(), 0i64);
    let mut page = asked.clone();
    if let Some(lf) = gold(&cx.data_dir, GoldTable::PageTransitions1h, site, from, p.to)? {
        let lf = lf.cache();
        let from_pages = lf
            .clone()
            .group_by([col("page_path")])
            .agg([col("transitions").cast(DataType::Int64).sum()])
            .sort_by_exprs([col("transitions"), col("page_path")], descending.clone())
            .limit(100)
            .collect()?;
        let (paths, counts) = (texts(&from_pages, "page_path", "")?, ints(&from_pages, "transitions")?);
        starts = paths.iter().zip(&counts).map(|(p, n)| json!({ "page_path": p, "transitions": n })).collect();
        let page_path = page.get_or_insert_with(|| paths.first().cloned().unwrap_or_default()).clone();
        let df = lf
            .filter(col("page_path").eq(lit(page_path)))
            .group_by([col("next_page")])
            .agg([col("transitions").cast(DataType::Int64).sum(), col("sessions").cast(DataType::Int64).sum()])
            .sort_by_exprs([col("transitions"), col("next_page")], descending)
            .collect()?;
        let (to, n, sessions) = (texts(&df, "next_page", "")?, ints(&df, "transitions")?, ints(&df, "sessions")?);
        total = n.iter().sum();
        for i in 0..to.len().min(limit) {
            let share = (total > 0).then(|| n[i] as f64 / total as f64);
            next.push(json!({ "next_page": to[i], "transitions": n[i], "sessions": sessions[i], "share": share }));
        }
    }
    Ok(json!({ "range": p.range.name(), "page": page, "total": total, "next": next, "pages": starts }))
}
