//! Checking the rules against the published tables at a given time. Each
//! alert has a key, the rule and its window (or order): the same key is
//! never sent twice, so a rule fires at most once per window however often
//! it is checked.

use std::path::Path;

use clickstream_schema::time::{HOUR_MS, MINUTE_MS};
use polars::prelude::*;
use serde_json::{json, Value};

use super::config::{AlertRule, Condition};
use super::slack::escape;
use crate::api::iso;
use crate::gold::GoldTable;
use crate::storage::range::{floats, gold, has_gold, ints, rejects, silver, texts};

/// How far back orders and bot minutes are looked for: late events and a
/// restarted server still find what they missed, and the sent log keeps
/// them from being sent twice.
pub const LOOKBACK_MS: i64 = 2 * HOUR_MS;

/// Traffic of a minute is taken as complete this long after the minute:
/// events take a moment through the collector and the aggregator.
pub const SETTLE_MS: i64 = MINUTE_MS;

/// How long after a rule first raises an alert it may raise the same key
/// again, from the windows it reads: what the sent keys must remember.
pub fn repeats_for_ms(condition: &Condition) -> i64 {
    match condition {
        // Orders are read from the lookback before now to an hour after
        // it (a visitor's clock ahead of ours).
        Condition::PurchaseOver { .. } => LOOKBACK_MS + HOUR_MS,
        Condition::BotAnomaly => LOOKBACK_MS,
        // The window under way and the one before.
        Condition::RejectsSpike { window_minutes, .. } => 2 * window_minutes * MINUTE_MS,
        Condition::TrafficBelow { window_minutes, .. } => window_minutes * MINUTE_MS + SETTLE_MS,
    }
}

/// Bot visitors named in a message's text; the rest are counted.
const VISITORS_IN_TEXT: usize = 5;
/// Bot visitors listed in `details`: a flood of visitors in one minute
/// must not make a body of megabytes.
const VISITORS_IN_DETAILS: usize = 100;

/// One alert to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub when: &'static str,
    /// At most one alert per key.
    pub key: String,
    /// For people: the first line of the webhook message. Values from
    /// events in it are escaped ([`escape`]); `details` has them as they are.
    pub text: String,
    pub details: Value,
}

impl Alert {
    /// The webhook body: `text` for Slack-compatible receivers, the rest
    /// for programs.
    pub fn body(&self) -> Value {
        json!({ "text": self.text, "rule": self.rule, "when": self.when, "key": self.key, "details": self.details })
    }
}

/// The alerts a rule raises at `now`, sent or not.
pub fn check(rule: &AlertRule, data_dir: &Path, now: i64) -> PolarsResult<Vec<Alert>> {
    let alert = |key: String, text: String, details: Value| Alert {
        rule: rule.name.clone(),
        when: rule.condition.name(),
        key: format!("{}|{key}", rule.name),
        text: format!("{text} (alert \"{}\")", rule.name),
        details,
    };
    let mut alerts = Vec::new();
    match &rule.condition {
        Condition::PurchaseOver { amount } => {
            let Some(lf) = silver(data_dir, None, now - LOOKBACK_MS, now + HOUR_MS)? else { return Ok(alerts) };
            let orders = lf
                .filter(col("event_type").eq(lit("purchase")).and(col("order_id").is_not_null()))
                .group_by([col("site_id"), col("order_id")])
                .agg([
                    col("revenue").sum().alias("total"),
                    len().alias("lines"),
                    col("event_ts").cast(DataType::Int64).min().alias("at"),
                    col("currency").first().alias("currency"),
                ])
                .filter(col("total").gt(lit(*amount)))
                .sort(["at", "order_id"], SortMultipleOptions::default())
                .collect()?;
            let (site, order, total, lines, at, currency) = (
                texts(&orders, "site_id", "")?,
                texts(&orders, "order_id", "")?,
                floats(&orders, "total")?,
                ints(&orders, "lines")?,
                ints(&orders, "at")?,
                texts(&orders, "currency", "")?,
            );
            for i in 0..order.len() {
                alerts.push(alert(
                    format!("{}|{}", site[i], order[i]),
                    format!(
                        "Order {} on {}: {:.2} {} in {} line(s) at {}, over {amount:.2}",
                        escape(&order[i]),
                        escape(&site[i]),
                        total[i],
                        escape(&currency[i]),
                        lines[i],
                        iso(at[i])
                    ),
                    json!({ "site_id": site[i], "order_id": order[i], "revenue": total[i], "currency": currency[i], "lines": lines[i], "at": iso(at[i]) }),
                ));
            }
        }
        Condition::BotAnomaly => {
            let Some(lf) = gold(data_dir, GoldTable::BotAnomalies, None, now - LOOKBACK_MS, now)? else {
                return Ok(alerts);
            };
            let minutes = lf
                .group_by([col("site_id"), col("window_start")])
                .agg([
                    col("anonymous_id").sort(SortOptions::default()).str().join(", ", true).alias("visitors"),
                    len().alias("count"),
                    col("events").cast(DataType::Int64).max().alias("most"),
                ])
                .sort(["window_start", "site_id"], SortMultipleOptions::default())
                .with_column(col("window_start").cast(DataType::Int64))
                .collect()?;
            let (site, start, visitors, count, most) = (
                texts(&minutes, "site_id", "")?,
                ints(&minutes, "window_start")?,
                texts(&minutes, "visitors", "")?,
                ints(&minutes, "count")?,
                ints(&minutes, "most")?,
            );
            for i in 0..site.len() {
                // Visitor ids are visible ASCII, without spaces: ", " splits them.
                let visitors: Vec<&str> = visitors[i].split(", ").collect();
                let mut named =
                    visitors.iter().take(VISITORS_IN_TEXT).map(|v| escape(v)).collect::<Vec<_>>().join(", ");
                if visitors.len() > VISITORS_IN_TEXT {
                    named.push_str(&format!(" and {} more", visitors.len() - VISITORS_IN_TEXT));
                }
                alerts.push(alert(
                    format!("{}|{}", site[i], iso(start[i])),
                    format!(
                        "{} visitor(s) on {} sent up to {} events in the minute from {}: {named}",
                        count[i],
                        escape(&site[i]),
                        most[i],
                        iso(start[i])
                    ),
                    json!({
                        "site_id": site[i],
                        "window_start": iso(start[i]),
                        "visitors": visitors[..visitors.len().min(VISITORS_IN_DETAILS)],
                        "most_events": most[i],
                    }),
                ));
            }
        }
        Condition::RejectsSpike { count, window_minutes } => {
            let window = window_minutes * MINUTE_MS;
            // The window under way (a spike is news before it ends) and the
            // one before (in case it ended between two checks).
            let current = now.div_euclid(window) * window;
            for start in [current - window, current] {
                let Some(lf) = rejects(data_dir, None, start, start + window)? else { continue };
                let df = lf
                    .group_by([col("reason")])
                    .agg([len().alias("n")])
                    .sort(["reason"], SortMultipleOptions::default())
                    .collect()?;
                let (reason, n) = (texts(&df, "reason", "")?, ints(&df, "n")?);
                let total: i64 = n.iter().sum();
                if total as u64 > *count {
                    let by_reason: serde_json::Map<String, Value> =
                        reason.iter().zip(&n).map(|(r, n)| (r.clone(), json!(n))).collect();
                    alerts.push(alert(
                        iso(start),
                        format!("{total} events refused in the {window_minutes} minute(s) from {}, over {count}", iso(start)),
                        json!({ "window_start": iso(start), "window_minutes": window_minutes, "rejects": total, "by_reason": by_reason }),
                    ));
                }
            }
        }
        Condition::TrafficBelow { events_per_minute, window_minutes } => {
            // Only once there is a site to watch, and only for the last
            // window whose traffic has settled.
            if !has_gold(data_dir) {
                return Ok(alerts);
            }
            let window = window_minutes * MINUTE_MS;
            let start = (now - SETTLE_MS).div_euclid(window) * window - window;
            let events = match gold(data_dir, GoldTable::Traffic1m, None, start, start + window)? {
                Some(lf) => floats(&lf.select([col("events").cast(DataType::Float64).sum()]).collect()?, "events")?
                    .first()
                    .copied()
                    .unwrap_or(0.0),
                None => 0.0,
            };
            let rate = events / *window_minutes as f64;
            if rate < *events_per_minute {
                alerts.push(alert(
                    iso(start),
                    format!("Traffic fell to {rate:.1} events per minute in the {window_minutes} minute(s) from {}, below {events_per_minute}", iso(start)),
                    json!({ "window_start": iso(start), "window_minutes": window_minutes, "events_per_minute": rate }),
                ));
            }
        }
    }
    Ok(alerts)
}
