//! Small hand-written Silver frames for the Gold tests, and a data
//! directory published from them for the readers of Gold (the dashboard's
//! API, the alerts).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use clickstream_schema::BadRow;

use super::{datetime_ms, refresh, GoldConfig};
use crate::aggregate::rejects::{rejects_frame, LogBadRow};
use crate::storage::{Manifest, Table};

/// 2026-11-22T00:00:00Z in ms.
pub const DAY: i64 = 1_795_305_600_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 60 * MIN;

/// `DAY` plus hours and minutes.
pub fn at(h: i64, m: i64) -> i64 {
    DAY + h * HOUR + m * MIN
}

#[derive(Clone, Debug)]
pub struct Ev {
    pub id: String,
    pub kind: &'static str,
    pub ts: i64,
    pub anon: String,
    pub path: String,
    pub title: Option<String>,
    pub product: Option<String>,
    pub category: Option<String>,
    /// A custom event's name.
    pub custom_name: Option<String>,
    /// Extra props (`props_extra`): a product's name, a custom event's props.
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub price: Option<f64>,
    pub qty: Option<i64>,
    pub revenue: Option<f64>,
    pub order: Option<String>,
    pub user: Option<String>,
    pub utm: Option<String>,
    /// The referring URL (`""` for a direct visit).
    pub referrer: String,
    /// The page URL's query string (`gclid=...`), without the `?`.
    pub query: String,
    /// A click's link target.
    pub href: Option<String>,
    /// A page_leave's engaged time (ms) and scroll depth (percent).
    pub engaged: Option<i64>,
    pub depth: Option<i64>,
    pub bot: bool,
}

/// An event of visitor `anon`; ids are unique if `id` is.
pub fn ev(id: impl Into<String>, kind: &'static str, ts: i64, anon: &str) -> Ev {
    Ev {
        id: id.into(),
        kind,
        ts,
        anon: anon.into(),
        path: "/".into(),
        title: None,
        product: None,
        category: None,
        custom_name: None,
        extra: serde_json::Map::new(),
        price: None,
        qty: None,
        revenue: None,
        order: None,
        user: None,
        utm: None,
        referrer: String::new(),
        query: String::new(),
        href: None,
        engaged: None,
        depth: None,
        bot: false,
    }
}

impl Ev {
    pub fn path(mut self, p: &str) -> Ev {
        self.path = p.into();
        self
    }
    pub fn title(mut self, t: &str) -> Ev {
        self.title = Some(t.into());
        self
    }
    pub fn product(mut self, p: &str) -> Ev {
        self.product = Some(p.into());
        self
    }
    /// A product's name and category, as a product view or cart add sends them.
    pub fn named(mut self, name: &str, category: &str) -> Ev {
        self.category = Some(category.into());
        self.prop("product_name", serde_json::json!(name))
    }
    /// A custom event's name (the event's kind must be `custom`).
    pub fn custom(mut self, name: &str) -> Ev {
        self.custom_name = Some(name.into());
        self
    }
    /// An extra prop.
    pub fn prop(mut self, name: &str, value: serde_json::Value) -> Ev {
        self.extra.insert(name.into(), value);
        self
    }
    pub fn cart(mut self, qty: i64, price: f64) -> Ev {
        self.qty = Some(qty);
        self.price = Some(price);
        self
    }
    pub fn bought(mut self, order: &str, qty: i64, revenue: f64) -> Ev {
        self.order = Some(order.into());
        self.qty = Some(qty);
        self.revenue = Some(revenue);
        self
    }
    pub fn user(mut self, u: &str) -> Ev {
        self.user = Some(u.into());
        self
    }
    pub fn utm(mut self, s: &str) -> Ev {
        self.utm = Some(s.into());
        self
    }
    pub fn referred_by(mut self, url: &str) -> Ev {
        self.referrer = url.into();
        self
    }
    pub fn query(mut self, q: &str) -> Ev {
        self.query = q.into();
        self
    }
    pub fn href(mut self, url: &str) -> Ev {
        self.href = Some(url.into());
        self
    }
    /// A page_leave's report: engaged ms, and scroll depth (percent).
    pub fn read(mut self, engaged_ms: i64, depth: i64) -> Ev {
        self.engaged = Some(engaged_ms);
        self.depth = Some(depth);
        self
    }
    pub fn bot(mut self) -> Ev {
        self.bot = true;
        self
    }
}

/// A Silver frame (the columns Gold reads) for site `shop-1`.
pub fn silver(events: &[Ev]) -> LazyFrame {
    let n = events.len();
    let s = |f: fn(&Ev) -> String| events.iter().map(f).collect::<Vec<_>>();
    let o = |f: fn(&Ev) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
    let ts =
        Column::new("event_ts".into(), events.iter().map(|e| e.ts).collect::<Vec<_>>()).cast(&datetime_ms()).unwrap();
    let df = DataFrame::new(
        n,
        vec![
            Column::new("event_id".into(), s(|e| e.id.clone())),
            Column::new("event_type".into(), events.iter().map(|e| e.kind).collect::<Vec<_>>()),
            ts,
            Column::new("site_id".into(), vec!["shop-1"; n]),
            Column::new("anonymous_id".into(), s(|e| e.anon.clone())),
            Column::new("user_id".into(), o(|e| e.user.clone())),
            Column::new("session_id".into(), s(|e| format!("client-{}", e.anon))),
            Column::new("page_path".into(), s(|e| e.path.clone())),
            Column::new("page_title".into(), o(|e| e.title.clone())),
            Column::new("product_id".into(), o(|e| e.product.clone())),
            Column::new("category".into(), o(|e| e.category.clone())),
            Column::new(
                "props_extra".into(),
                o(|e| (!e.extra.is_empty()).then(|| serde_json::Value::Object(e.extra.clone()).to_string())),
            ),
            Column::new("custom_name".into(), o(|e| e.custom_name.clone())),
            Column::new("price".into(), events.iter().map(|e| e.price).collect::<Vec<_>>()),
            Column::new("quantity".into(), events.iter().map(|e| e.qty).collect::<Vec<_>>()),
            Column::new("revenue".into(), events.iter().map(|e| e.revenue).collect::<Vec<_>>()),
            Column::new("order_id".into(), o(|e| e.order.clone())),
            Column::new(
                "currency".into(),
                o(|e| (e.price.is_some() || e.revenue.is_some()).then(|| "EUR".to_string())),
            ),
            Column::new("utm_source".into(), o(|e| e.utm.clone())),
            Column::new("utm_medium".into(), vec![None::<&str>; n]),
            Column::new("utm_campaign".into(), vec![None::<&str>; n]),
            Column::new(
                "page_url".into(),
                s(|e| {
                    let query = if e.query.is_empty() { String::new() } else { format!("?{}", e.query) };
                    format!("https://shop.example{}{query}", e.path)
                }),
            ),
            Column::new("referrer".into(), s(|e| e.referrer.clone())),
            Column::new("click_href".into(), o(|e| e.href.clone())),
            Column::new("engaged_ms".into(), events.iter().map(|e| e.engaged).collect::<Vec<_>>()),
            Column::new("scroll_depth".into(), events.iter().map(|e| e.depth).collect::<Vec<_>>()),
            Column::new("country".into(), vec!["DE"; n]),
            Column::new("device_type".into(), vec!["desktop"; n]),
            Column::new("browser".into(), vec!["Chrome"; n]),
            Column::new("is_bot".into(), events.iter().map(|e| e.bot).collect::<Vec<_>>()),
        ],
    )
    .unwrap();
    df.lazy()
}

/// A config with goals of every kind and one prop custom events are
/// counted by.
pub fn with_goals() -> GoldConfig {
    let goal = |name: &str| super::goals::Goal {
        name: name.into(),
        site: "*".into(),
        page: None,
        event: None,
        props: Default::default(),
        min_revenue: None,
    };
    let goals = vec![
        super::goals::Goal { page: Some("/thank-you*".into()), ..goal("Purchase") },
        super::goals::Goal { event: Some("newsletter_signup".into()), ..goal("Newsletter") },
        super::goals::Goal {
            event: Some("newsletter_signup".into()),
            props: [("placement".to_string(), serde_json::json!("home"))].into(),
            ..goal("Newsletter home")
        },
        super::goals::Goal { min_revenue: Some(100.0), ..goal("Big order") },
        // Another site's goal: never completed here.
        super::goals::Goal { site: "shop-2".into(), page: Some("*".into()), ..goal("Anything elsewhere") },
    ];
    let goals = super::goals::Goals::new(goals, vec!["placement".into()]).unwrap();
    // Days and weeks in New York (UTC-5 in November): the retention
    // tables' days are not UTC days.
    let zones = crate::zones::Zones::new(Some("America/New_York"), &Default::default()).unwrap();
    GoldConfig { goals, zones, ..GoldConfig::default() }
}

pub fn u32s(df: &DataFrame, name: &str) -> Vec<Option<u32>> {
    df.column(name).unwrap().cast(&DataType::UInt32).unwrap().u32().unwrap().iter().collect()
}

pub fn i64s(df: &DataFrame, name: &str) -> Vec<Option<i64>> {
    df.column(name).unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().iter().collect()
}

pub fn f64s(df: &DataFrame, name: &str) -> Vec<Option<f64>> {
    df.column(name).unwrap().cast(&DataType::Float64).unwrap().f64().unwrap().iter().collect()
}

pub fn strs(df: &DataFrame, name: &str) -> Vec<Option<String>> {
    df.column(name).unwrap().str().unwrap().iter().map(|v| v.map(str::to_owned)).collect()
}

pub fn bools(df: &DataFrame, name: &str) -> Vec<Option<bool>> {
    df.column(name).unwrap().bool().unwrap().iter().collect()
}

/// Writes a frame to a Parquet file, creating its folder.
pub fn write_parquet(path: &Path, df: &mut DataFrame) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(df).unwrap();
}

/// A temporary data directory, removed when dropped.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(label: &str) -> DataDir {
        let dir = std::env::temp_dir().join(format!("clickstream-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        DataDir(dir)
    }

    /// Writes bad rows of site `shop-1`, each (reason, received_at), to the
    /// rejects table.
    pub fn reject(&self, rows: &[(&str, i64)]) {
        let rows: Vec<LogBadRow> = rows
            .iter()
            .map(|&(reason, received_at)| LogBadRow {
                partition: 0,
                offset: 0,
                row: BadRow {
                    reason: reason.into(),
                    detail: String::new(),
                    payload: "{}".into(),
                    received_at,
                    site_id: "shop-1".into(),
                    index: 0,
                    event_id: None,
                    anonymous_id: None,
                    source: "backend".into(),
                },
            })
            .collect();
        let dir = self.0.join(Table::Rejects.partition_dir(rows.first().map_or(DAY, |r| r.row.received_at)));
        let n = std::fs::read_dir(&dir).map_or(0, std::iter::Iterator::count);
        write_parquet(&dir.join(format!("part-{n}.parquet")), &mut rejects_frame(&rows).unwrap());
    }

    /// Writes the events to Silver, one file per event hour, and builds
    /// Gold from them with the aggregator's own refresh.
    pub fn publish(&self, events: &[Ev]) {
        self.publish_with(events, &GoldConfig::default());
    }

    /// [`DataDir::publish`] with the given Gold rules.
    pub fn publish_with(&self, events: &[Ev], config: &GoldConfig) {
        let hours: BTreeSet<i64> = events.iter().map(|e| e.ts.div_euclid(HOUR)).collect();
        for hour in hours {
            let in_hour: Vec<Ev> = events.iter().filter(|e| e.ts.div_euclid(HOUR) == hour).cloned().collect();
            let mut df = silver(&in_hour).collect().unwrap();
            let dir = self.0.join(Table::Silver.partition_dir(hour * HOUR));
            let n = std::fs::read_dir(&dir).map_or(0, std::iter::Iterator::count);
            write_parquet(&dir.join(format!("part-{n}.parquet")), &mut df);
        }
        refresh::build(&self.0, Manifest::default(), config, &mut |_, _| {}).unwrap();
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
