//! `goals_1h` and `custom_events_1h`: the goals a site owner defines in the
//! config file (`[[goals]]`), and the custom events by name and by the
//! values of chosen props. Both are window tables of an hour: an hour of
//! Silver computes them whole, so the refresh, the build and finality get
//! them by being listed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{is_type, map_strings, rate, window_of};

/// A goal, as a `[[goals]]` table of the config file defines it: exactly
/// one of `page`, `event` or `min_revenue`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// What the tables and the dashboard call it; unique per site.
    pub name: String,
    /// The site it is for; `*` (the default) for every site.
    #[serde(default = "every_site")]
    pub site: String,
    /// A page view whose path matches: `*` stands for any run of
    /// characters (`/thank-you*`), everything else for itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// A custom event of this name (`clickstream.track("signup", …)`) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// … whose props have these values (strings, numbers or booleans,
    /// compared by value: `plan = "pro"`, `seats = 5`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub props: BTreeMap<String, Value>,
    /// An order whose purchase lines within one hour add up to at least
    /// this revenue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_revenue: Option<f64>,
}

fn every_site() -> String {
    "*".to_string()
}

/// What Gold needs of the site owners' definitions: the goals, and the
/// props `custom_events_1h` counts custom events by. Shared, since every
/// micro-batch's refresh reads them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Goals {
    pub goals: Arc<[Goal]>,
    pub custom_event_props: Arc<[String]>,
}

impl Goals {
    /// Checks the definitions and keeps them. The error names the goal and
    /// what is wrong with it.
    pub fn new(goals: Vec<Goal>, custom_event_props: Vec<String>) -> Result<Goals, String> {
        let mut names = BTreeSet::new();
        for goal in &goals {
            let what = format!("goal {:?}", goal.name);
            if goal.name.trim().is_empty() {
                return Err("a goal needs a name".into());
            }
            if !names.insert((goal.site.clone(), goal.name.clone())) {
                return Err(format!("{what} is defined twice for site {:?}", goal.site));
            }
            let kinds = [goal.page.is_some(), goal.event.is_some(), goal.min_revenue.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(format!("{what} needs exactly one of page, event or min_revenue"));
            }
            if let Some(page) = &goal.page {
                if !page.starts_with('/') && !page.starts_with('*') {
                    return Err(format!("{what}: page {page:?} is a path: it starts with / (or *)"));
                }
                if page.contains(['?', '[', ']']) {
                    return Err(format!("{what}: page {page:?}: only * is a wildcard; ?, [ and ] are not allowed"));
                }
            }
            if !goal.props.is_empty() && goal.event.is_none() {
                return Err(format!("{what}: props filter custom events: give event too"));
            }
            if let Some((prop, value)) =
                goal.props.iter().find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
            {
                return Err(format!("{what}: prop {prop:?} = {value}: a string, a number or a boolean"));
            }
            if let Some(min) = goal.min_revenue {
                if !min.is_finite() || min <= 0.0 {
                    return Err(format!("{what}: min_revenue must be a positive number, not {min}"));
                }
            }
        }
        if let Some(p) = custom_event_props.iter().find(|p| p.trim().is_empty()) {
            return Err(format!("custom_event_props: {p:?} is not a prop name"));
        }
        Ok(Goals { goals: goals.into(), custom_event_props: custom_event_props.into() })
    }
}

/// The demo shop's goals and custom-event props (`examples/shop.toml`):
/// what `clickstream demo` and the benchmarks track, and the tests check.
pub fn shop_goals() -> Goals {
    #[derive(Deserialize)]
    struct Shop {
        custom_event_props: Vec<String>,
        goals: Vec<Goal>,
    }
    let shop: Shop = toml::from_str(include_str!("../../../examples/shop.toml")).expect("examples/shop.toml parses");
    Goals::new(shop.goals, shop.custom_event_props).expect("examples/shop.toml's goals are valid")
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (none included) and everything else for itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    // The last part must end the text, after what the middle consumed.
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A prop of a `props_extra` JSON object as text: strings as they are,
/// numbers and booleans (and objects or arrays) as their JSON; null or
/// missing as none.
fn prop_text(props: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    match props.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether a JSON value equals a goal's filter value (numbers by value).
fn same_value(sent: &Value, wanted: &Value) -> bool {
    match (sent, wanted) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => sent == wanted,
    }
}

fn decode(text: Option<&str>) -> Option<serde_json::Map<String, Value>> {
    serde_json::from_str(text?).ok()
}

/// The events of the site the goal is for.
fn on_site(goal: &Goal) -> Expr {
    if goal.site == "*" {
        lit(true)
    } else {
        col("site_id").eq(lit(goal.site.clone()))
    }
}

/// A goal's completions in `human` (with `hour_start`): one row per
/// completion, (`site_id`, `hour_start`, `session_id`, `goal`).
fn completions(human: &LazyFrame, goal: &Goal) -> LazyFrame {
    let keep = [col("site_id"), col("hour_start"), col("session_id"), lit(goal.name.clone()).alias("goal")];
    if let Some(min) = goal.min_revenue {
        // An order completes it once: its lines of the hour, summed.
        return human
            .clone()
            .filter(is_type("purchase").and(on_site(goal)).and(col("order_id").is_not_null()))
            .group_by([col("site_id"), col("hour_start"), col("order_id")])
            .agg([col("revenue").sum(), col("session_id").min()])
            .filter(col("revenue").gt_eq(lit(min)))
            .select(keep);
    }
    let matched = if let Some(page) = &goal.page {
        let page = page.clone();
        is_type("page_view").and(map_strings("page_path", DataType::Boolean, move |paths| {
            paths
                .iter()
                .map(|p| Some(p.is_some_and(|p| glob_matches(&page, p))))
                .collect::<BooleanChunked>()
                .into_column()
        }))
    } else {
        let name = goal.event.clone().unwrap_or_default();
        let mut event = is_type("custom").and(col("custom_name").eq(lit(name)));
        if !goal.props.is_empty() {
            let wanted = goal.props.clone();
            event = event.and(map_strings("props_extra", DataType::Boolean, move |extra| {
                let has = |props: Option<serde_json::Map<String, Value>>| {
                    props.is_some_and(|p| wanted.iter().all(|(k, v)| p.get(k).is_some_and(|sent| same_value(sent, v))))
                };
                extra.iter().map(|e| Some(has(decode(e)))).collect::<BooleanChunked>().into_column()
            }));
        }
        event
    };
    human.clone().filter(matched.and(on_site(goal))).select(keep)
}

/// One row per site, hour and goal completed at least once in it, from
/// human events.
///
/// A session is the tracker's `session_id`, as in `conversion_10m`.
///
/// Columns:
/// - `site_id`, `hour_start`, `goal` (its name);
/// - `completions`: matching page views, custom events, or orders (u32);
/// - `converting_sessions`: distinct sessions with a completion (u32);
/// - `sessions`: distinct sessions of the site in the hour (u32);
/// - `conversion_rate` = converting_sessions / sessions (f64);
/// - `revenue`: purchase revenue of the converting sessions in the hour
///   (f64; 0 when they bought nothing).
pub fn goals_1h(human: LazyFrame, goals: &Goals) -> PolarsResult<LazyFrame> {
    let human = human.with_column(window_of("event_ts", "1h").alias("hour_start"));
    let mut done: Vec<LazyFrame> = goals.goals.iter().map(|g| completions(&human, g)).collect();
    if done.is_empty() {
        // No goals: the table's columns, no rows.
        done.push(completions(&human.clone().filter(lit(false)), &no_goal()));
    }
    let done = concat(done, UnionArgs::default())?;
    let key = || [col("site_id"), col("hour_start"), col("goal")];
    let per_goal = done.clone().group_by(key()).agg([
        len().cast(DataType::UInt32).alias("completions"),
        col("session_id").n_unique().cast(DataType::UInt32).alias("converting_sessions"),
    ]);
    let sessions = human
        .clone()
        .group_by([col("site_id"), col("hour_start")])
        .agg([col("session_id").n_unique().cast(DataType::UInt32).alias("sessions")]);
    let spent = human
        .filter(is_type("purchase"))
        .group_by([col("site_id"), col("hour_start"), col("session_id")])
        .agg([col("revenue").sum().alias("spent")]);
    let session = || [col("site_id"), col("hour_start"), col("session_id")];
    let revenue = done
        .select([col("site_id"), col("hour_start"), col("session_id"), col("goal")])
        .unique(None, UniqueKeepStrategy::Any)
        .join(spent, session(), session(), JoinArgs::new(JoinType::Left))
        .group_by(key())
        .agg([col("spent").fill_null(lit(0.0)).sum().alias("revenue")]);
    let hour = || [col("site_id"), col("hour_start")];
    Ok(per_goal
        .join(sessions, hour(), hour(), JoinArgs::new(JoinType::Left))
        .join(revenue, key(), key(), JoinArgs::new(JoinType::Left))
        .select([
            col("site_id"),
            col("hour_start"),
            col("goal"),
            col("completions"),
            col("converting_sessions"),
            col("sessions"),
            rate(col("converting_sessions"), col("sessions")).alias("conversion_rate"),
            col("revenue").cast(DataType::Float64),
        ])
        .sort(["site_id", "hour_start", "goal"], SortMultipleOptions::default()))
}

fn no_goal() -> Goal {
    Goal {
        name: String::new(),
        site: every_site(),
        page: Some("/".into()),
        event: None,
        props: BTreeMap::new(),
        min_revenue: None,
    }
}

/// One row per site, hour and custom event name with human events, plus one
/// per value of each prop in `custom_event_props` the events of that name
/// carried.
///
/// Columns:
/// - `site_id`, `hour_start`, `event_name`;
/// - `prop`, `value`: null on the name's total row; else the prop and one
///   of its values (strings as sent, numbers and booleans as JSON text);
/// - `events` (u32), `visitors`: distinct `anonymous_id` (u32).
pub fn custom_events_1h(human: LazyFrame, goals: &Goals) -> PolarsResult<LazyFrame> {
    let custom = human
        .filter(is_type("custom").and(col("custom_name").is_not_null()))
        .with_column(window_of("event_ts", "1h").alias("hour_start"));
    let counts = || {
        [
            len().cast(DataType::UInt32).alias("events"),
            col("anonymous_id").n_unique().cast(DataType::UInt32).alias("visitors"),
        ]
    };
    let columns = || {
        [
            col("site_id"),
            col("hour_start"),
            col("custom_name").alias("event_name"),
            col("prop"),
            col("value"),
            col("events"),
            col("visitors"),
        ]
    };
    let mut parts = vec![custom
        .clone()
        .group_by([col("site_id"), col("hour_start"), col("custom_name")])
        .agg(counts())
        .with_columns([lit(NULL).cast(DataType::String).alias("prop"), lit(NULL).cast(DataType::String).alias("value")])
        .select(columns())];
    for prop in goals.custom_event_props.iter() {
        let name = prop.clone();
        let value = map_strings("props_extra", DataType::String, move |extra| {
            extra.iter().map(|e| prop_text(&decode(e)?, &name)).collect::<StringChunked>().into_column()
        });
        parts.push(
            custom
                .clone()
                .with_column(value.alias("value"))
                .filter(col("value").is_not_null())
                .group_by([col("site_id"), col("hour_start"), col("custom_name"), col("value")])
                .agg(counts())
                .with_column(lit(prop.clone()).alias("prop"))
                .select(columns()),
        );
    }
    Ok(concat(parts, UnionArgs::default())?.sort(
        ["site_id", "hour_start", "event_name", "prop", "value"],
        SortMultipleOptions::default().with_nulls_last(false),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shop_goals_are_valid_and_of_every_kind() {
        let shop = shop_goals();
        assert!(shop.goals.iter().any(|g| g.page.is_some()));
        assert!(shop.goals.iter().any(|g| g.event.is_some() && !g.props.is_empty()));
        assert!(shop.goals.iter().any(|g| g.min_revenue.is_some()));
        assert_eq!(&*shop.custom_event_props, ["placement".to_string()]);
    }

    #[test]
    fn a_star_stands_for_any_run_of_characters() {
        for (pattern, text, expected) in [
            ("/thank-you*", "/thank-you", true),
            ("/thank-you*", "/thank-you/order-1", true),
            ("/thank-you*", "/thanks", false),
            ("/thank-you", "/thank-you/x", false),
            ("/blog/*/comments", "/blog/a/b/comments", true),
            ("/blog/*/comments", "/blog/comments", false),
            ("*/done", "/a/done", true),
            ("/a*a", "/a", false),
            ("/a*a", "/aa", true),
            ("*", "/anything", true),
            ("/p/*.pdf", "/p/x.pdf.html", false),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    fn goal(toml_text: &str) -> Result<Goals, String> {
        #[derive(Deserialize)]
        struct File {
            goals: Vec<Goal>,
        }
        let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        Goals::new(file.goals, Vec::new())
    }

    #[test]
    fn each_goal_is_one_kind_with_a_name_unique_on_its_site() {
        let ok =
            goal("[[goals]]\nname = \"Signup\"\nevent = \"signup\"\nprops = { plan = \"pro\", seats = 5 }\n").unwrap();
        assert_eq!(ok.goals[0].site, "*");
        assert_eq!(ok.goals[0].props["seats"], serde_json::json!(5));
        for (text, says) in [
            ("[[goals]]\nname = \"Both\"\npage = \"/a\"\nevent = \"b\"\n", "exactly one of"),
            ("[[goals]]\nname = \"None\"\n", "exactly one of"),
            ("[[goals]]\nname = \"Rel\"\npage = \"thanks\"\n", "starts with /"),
            ("[[goals]]\nname = \"Q\"\npage = \"/a?b\"\n", "only * is a wildcard"),
            ("[[goals]]\nname = \"P\"\npage = \"/a\"\nprops = { a = \"b\" }\n", "give event too"),
            ("[[goals]]\nname = \"T\"\nevent = \"e\"\nprops = { a = [1] }\n", "a string, a number or a boolean"),
            ("[[goals]]\nname = \"R\"\nmin_revenue = -1.0\n", "positive"),
            ("[[goals]]\nname = \"D\"\npage = \"/a\"\n[[goals]]\nname = \"D\"\npage = \"/b\"\n", "defined twice"),
            ("[[goals]]\nname = \"X\"\npage = \"/a\"\nurl = \"/b\"\n", "unknown field"),
        ] {
            let err = goal(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        // The same name on two sites is two goals.
        goal("[[goals]]\nname = \"D\"\nsite = \"a\"\npage = \"/a\"\n[[goals]]\nname = \"D\"\nsite = \"b\"\npage = \"/b\"\n").unwrap();
    }
}
