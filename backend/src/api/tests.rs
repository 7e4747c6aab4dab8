//! The dashboard API against exact fixtures: a handful of visits written to
//! Silver, Gold built from it by the aggregator's own refresh, rejects
//! written beside, and every endpoint asked through the router at a fixed
//! time.

use std::path::Path;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::clock::FixedClock;
use crate::gold::fixture::{at, ev, with_goals, DataDir, Ev, DAY, MIN};
use crate::metrics::Metrics;
use crate::server::{app, AppState};
use crate::stream::{EmbeddedLog, EventStream};

/// 10:00:30 on the fixture day: the last hour is [09:00:30, 10:00:30).
const NOW: i64 = DAY + 10 * 60 * MIN + 30_000;

fn visits() -> Vec<Ev> {
    let mut events = vec![
        // a: from Google, views a product, buys it: the whole funnel.
        ev("a1", "page_view", at(9, 10), "a").utm("google"),
        ev("a2", "page_view", at(9, 11), "a").path("/p/1").product("p-1"),
        ev("a3", "add_to_cart", at(9, 12), "a").path("/p/1").product("p-1").cart(1, 20.0),
        ev("a4", "begin_checkout", at(9, 13), "a").path("/checkout"),
        ev("a5", "purchase", at(9, 14), "a").path("/thanks").product("p-1").bought("o-1", 1, 20.0),
        // b: from Bing, one page, gone (a bounce).
        ev("b1", "page_view", at(9, 40), "b").referred_by("https://www.bing.com/"),
        // c: two pages in the last five minutes; the first exactly on the
        // edge of the events-per-minute window.
        ev("c1", "page_view", at(9, 55), "c").path("/c/shoes").referred_by("https://t.co/x"),
        ev("c2", "page_view", at(9, 58), "c").path("/p/2").product("p-2"),
        // d: a product page and a purchase, without a cart in between.
        ev("d1", "page_view", at(9, 59), "d").path("/p/2").product("p-2"),
        ev("d2", "purchase", at(9, 59) + 30_000, "d").path("/thanks").product("p-2").bought("o-2", 2, 50.0),
        // e: earlier in the day, outside the last hour.
        ev("e1", "page_view", at(7, 30), "e"),
    ];
    // A bot: 51 events in one minute, in no business table.
    events.extend((0..51).map(|i| ev(format!("bot-{i}"), "page_view", at(9, 30) + i * 1000, "bot-1")));
    events
}

/// Silver, Gold built from it, and rejects.
fn fixture(label: &str) -> DataDir {
    let dir = DataDir::new(&format!("api-{label}"));
    dir.publish(&visits());
    dir.reject(&[
        ("missing_event_id", at(9, 20)),
        ("missing_event_id", at(9, 21)),
        ("invalid_timestamp", at(9, 50)),
        ("invalid_timestamp", at(8, 0)),
    ]);
    dir
}

async fn get(data_dir: &Path, uri: &str) -> (StatusCode, Value) {
    get_in(data_dir, uri, crate::api::Zones::default()).await
}

/// [`get`] with day boundaries in `zones`.
async fn get_in(data_dir: &Path, uri: &str, zones: crate::api::Zones) -> (StatusCode, Value) {
    let log_dir = data_dir.join("log");
    let stream: Arc<dyn EventStream> = Arc::new(EmbeddedLog::open(&log_dir, 1).unwrap());
    let mut state = AppState::new(
        stream,
        edge_worker::CollectConfig::new("k", "backend"),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(NOW)),
    );
    state.data_dir = Some(data_dir.to_path_buf());
    state.zones = Arc::new(zones);
    // Who may call the API is the security tests' subject; these read it.
    state.access = crate::server::Access::Open;
    let response = app(Arc::new(state)).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_links_and_downloads_most_clicked_first() {
    let dir = DataDir::new("api-links");
    let insta = "https://www.instagram.com/shop";
    dir.publish(&[
        ev("1", "click", at(9, 30), "a").href(insta),
        ev("2", "click", at(9, 31), "b").href(insta),
        ev("3", "click", at(9, 32), "a").href("https://shop.example/files/guide.pdf"),
        ev("4", "click", at(9, 33), "a").href("https://partner.example.org/"),
        ev("5", "click", at(9, 34), "a").href("/c/shoes"),
    ]);
    let (_, links) = get(&dir.0, "/api/links").await;
    let row = |url: &str, clicks: i64, visitors: i64| json!({"url": url, "clicks": clicks, "visitors": visitors});
    assert_eq!(
        links,
        json!({"range": "1h",
            "outbound": [row(insta, 2, 2), row("https://partner.example.org/", 1, 1)],
            "downloads": [row("https://shop.example/files/guide.pdf", 1, 1)]})
    );
    let (_, one) = get(&dir.0, "/api/links?limit=1").await;
    assert_eq!(one["outbound"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engaged_time_per_view_and_per_session_and_scroll_depth_per_page() {
    let dir = DataDir::new("api-engagement");
    dir.publish(&[
        ev("a1", "page_view", at(9, 30), "a").path("/p/1"),
        ev("a2", "page_leave", at(9, 32), "a").path("/p/1").read(60_000, 50),
        ev("a3", "page_view", at(9, 33), "a"),
        ev("a4", "page_leave", at(9, 40), "a").read(30_000, 100),
        // b hides the tab once: two reports of one view add up.
        ev("b1", "page_view", at(9, 35), "b").path("/p/1"),
        ev("b2", "page_leave", at(9, 36), "b").path("/p/1").read(20_000, 70),
        ev("b3", "page_leave", at(9, 38), "b").path("/p/1").read(10_000, 90),
    ]);
    let (status, body) = get(&dir.0, "/api/engagement").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"range": "1h", "sessions": 2, "engaged_ms_per_session": 60_000.0, "pages": [
            {"page_path": "/p/1", "page_views": 2, "leaves": 3, "avg_engaged_ms": 45_000.0, "avg_scroll_depth": 70.0},
            {"page_path": "/", "page_views": 1, "leaves": 1, "avg_engaged_ms": 30_000.0, "avg_scroll_depth": 100.0},
        ]})
    );
    let (_, one) = get(&dir.0, "/api/engagement?limit=1").await;
    assert_eq!(one["pages"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_of_the_last_hour() {
    let f = fixture("summary");
    let (status, body) = get(&f.0, "/api/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "range": "1h", "from": "2026-11-22T09:00:30Z", "to": "2026-11-22T10:00:30Z",
            // c and d were seen after 09:55:30.
            "active_visitors": 2,
            // 09:55 to 10:00: c's two events and d's two.
            "events_per_minute": 0.8,
            "revenue_today": 70.0, "currency": "EUR",
            // a, b, c and d started in the hour; a and d bought; b and d saw one page.
            "sessions": 4, "converted_sessions": 2, "conversion_rate": 0.5, "bounce_rate": 0.5,
            "events": 10, "revenue": 70.0, "time_zone": "UTC",
            // The hour before: nothing (e came at 07:30).
            "previous": {"sessions": 0, "converted_sessions": 0, "conversion_rate": null, "bounce_rate": null,
                         "events": 0, "revenue": 0.0},
        })
    );
    // Two hours from 08:00:30; the two before hold e's page view.
    let (_, two) = get(&f.0, "/api/summary?from=2026-11-22T08:00:30Z&to=2026-11-22T10:00:30Z").await;
    assert_eq!((two["range"].clone(), two["sessions"].clone()), (json!("custom"), json!(4)));
    assert_eq!((two["previous"]["sessions"].clone(), two["previous"]["events"].clone()), (json!(1), json!(1)));
    let (_, day) = get(&f.0, "/api/summary?range=24h").await;
    assert_eq!(
        (day["sessions"].clone(), day["events"].clone(), day["active_visitors"].clone()),
        (json!(5), json!(11), json!(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_by_minute_and_by_five_minutes() {
    let f = fixture("traffic");
    let (_, hour) = get(&f.0, "/api/traffic").await;
    assert_eq!(hour["bucket"], "1m");
    let points = hour["points"].as_array().unwrap();
    assert_eq!(points.len(), 9, "{hour}");
    assert_eq!(
        points[0],
        json!({"t": "2026-11-22T09:10:00Z", "events": 1, "page_views": 1, "active_users": 1, "sessions": 1})
    );
    assert_eq!(
        points[8],
        json!({"t": "2026-11-22T09:59:00Z", "events": 2, "page_views": 1, "active_users": 1, "sessions": 1})
    );
    assert!(points.iter().all(|p| p["t"] != "2026-11-22T09:30:00Z"), "the bot's minute has no human traffic");

    let (_, day) = get(&f.0, "/api/traffic?range=24h").await;
    assert_eq!(day["bucket"], "5m");
    assert_eq!(
        day["points"],
        json!([
            {"t": "2026-11-22T07:30:00Z", "events": 1, "page_views": 1, "active_users": 1, "sessions": 1},
            {"t": "2026-11-22T09:10:00Z", "events": 5, "page_views": 2, "active_users": 1, "sessions": 1},
            {"t": "2026-11-22T09:40:00Z", "events": 1, "page_views": 1, "active_users": 1, "sessions": 1},
            // c at 09:55 and 09:58, c and d at 09:59: the busiest minute had one visitor.
            {"t": "2026-11-22T09:55:00Z", "events": 4, "page_views": 3, "active_users": 1, "sessions": 1},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_by_product_with_the_rest_as_other() {
    let f = fixture("revenue");
    let (_, body) = get(&f.0, "/api/revenue").await;
    assert_eq!(body["products"], json!(["p-2", "p-1"]));
    assert_eq!(
        body["points"],
        json!([
            {"t": "2026-11-22T09:10:00Z", "total": 20.0, "by_product": {"p-1": 20.0}},
            {"t": "2026-11-22T09:55:00Z", "total": 50.0, "by_product": {"p-2": 50.0}},
        ])
    );
    assert_eq!(
        body["totals"],
        json!([{"product_id": "p-2", "revenue": 50.0, "orders": 1, "units": 2}, {"product_id": "p-1", "revenue": 20.0, "orders": 1, "units": 1}])
    );
    let (_, top1) = get(&f.0, "/api/revenue?top=1").await;
    assert_eq!(top1["products"], json!(["p-2", "other"]));
    assert_eq!(top1["points"][0]["by_product"], json!({"other": 20.0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_pages_funnel_and_sessions() {
    let f = fixture("pages");
    let (_, pages) = get(&f.0, "/api/top_pages").await;
    assert_eq!(
        pages["pages"],
        json!([
            {"page_path": "/", "views": 2, "unique_visitors": 2},
            {"page_path": "/p/2", "views": 2, "unique_visitors": 2},
            {"page_path": "/c/shoes", "views": 1, "unique_visitors": 1},
            {"page_path": "/p/1", "views": 1, "unique_visitors": 1},
        ])
    );
    assert_eq!(get(&f.0, "/api/top_pages?limit=1").await.1["pages"].as_array().unwrap().len(), 1);

    let (_, funnel) = get(&f.0, "/api/funnel").await;
    assert_eq!(
        funnel,
        json!({"range": "1h", "conversion_rate": 0.25, "steps": [
            {"step": "sessions", "count": 4, "rate": null},
            // d bought without a cart: a product view, then no step in order.
            {"step": "product_view", "count": 3, "rate": 0.75},
            {"step": "add_to_cart", "count": 1, "rate": 1.0 / 3.0},
            {"step": "checkout", "count": 1, "rate": 1.0},
            {"step": "purchase", "count": 1, "rate": 1.0},
        ]})
    );

    let (_, paths) = get(&f.0, "/api/pages").await;
    assert_eq!(
        paths,
        json!({"range": "1h",
        // a and b landed on /, b bounced, a bought; d bounced on /p/2 and bought.
        "entry": [
            {"page_path": "/", "sessions": 2, "bounces": 1, "bounce_rate": 0.5, "converted": 1},
            {"page_path": "/c/shoes", "sessions": 1, "bounces": 0, "bounce_rate": 0.0, "converted": 0},
            {"page_path": "/p/2", "sessions": 1, "bounces": 1, "bounce_rate": 1.0, "converted": 1},
        ],
        // Exits over the page's views in those hours.
        "exit": [
            {"page_path": "/p/2", "exits": 2, "views": 2, "exit_rate": 1.0},
            {"page_path": "/", "exits": 1, "views": 2, "exit_rate": 0.5},
            {"page_path": "/p/1", "exits": 1, "views": 1, "exit_rate": 1.0},
        ]})
    );

    // a went / → /p/1, c /c/shoes → /p/2: from / by default (ties by path).
    let (_, next) = get(&f.0, "/api/next_pages").await;
    assert_eq!(
        next,
        json!({"range": "1h", "page": "/", "total": 1,
            "next": [{"next_page": "/p/1", "transitions": 1, "sessions": 1, "share": 1.0}],
            "pages": [{"page_path": "/", "transitions": 1}, {"page_path": "/c/shoes", "transitions": 1}]})
    );
    let (_, from_shoes) = get(&f.0, "/api/next_pages?page=/c/shoes").await;
    assert_eq!(
        (from_shoes["page"].clone(), from_shoes["next"][0]["next_page"].clone()),
        (json!("/c/shoes"), json!("/p/2"))
    );
    let (_, nowhere) = get(&f.0, "/api/next_pages?page=/nowhere").await;
    assert_eq!((nowhere["total"].clone(), nowhere["next"].clone()), (json!(0), json!([])));

    // a: utm_source=google; b from Bing and c from Twitter, untagged; d direct.
    let (_, sources) = get(&f.0, "/api/sources").await;
    let figures = |sessions: i64, bounces: i64, conversions: i64, revenue: f64| {
        json!({"sessions": sessions, "visitors": sessions, "bounces": bounces,
               "bounce_rate": bounces as f64 / sessions as f64, "conversions": conversions,
               "conversion_rate": conversions as f64 / sessions as f64, "revenue": revenue})
    };
    let with = |keys: Value, figures: Value| {
        let mut row = keys.as_object().unwrap().clone();
        row.extend(figures.as_object().unwrap().clone());
        Value::Object(row)
    };
    assert_eq!(
        sources,
        json!({"range": "1h", "channel": null,
        "channels": [
            with(json!({"channel": "Organic Search"}), figures(2, 1, 1, 20.0)),
            with(json!({"channel": "Direct"}), figures(1, 1, 1, 50.0)),
            with(json!({"channel": "Organic Social"}), figures(1, 0, 0, 0.0)),
        ],
        "sources": [
            with(json!({"source": "(direct)", "medium": "(none)", "channel": "Direct"}), figures(1, 1, 1, 50.0)),
            with(json!({"source": "Bing", "medium": "organic", "channel": "Organic Search"}), figures(1, 1, 0, 0.0)),
            with(json!({"source": "Twitter", "medium": "social", "channel": "Organic Social"}), figures(1, 0, 0, 0.0)),
            with(json!({"source": "google", "medium": "(none)", "channel": "Organic Search"}), figures(1, 0, 1, 20.0)),
        ]})
    );
    // Retention: the five human visitors are one cohort, first seen on
    // Sunday the 22nd (the week of Monday the 16th), which is still today.
    let (_, weekly) = get(&f.0, "/api/retention?range=7d").await;
    assert_eq!(
        weekly,
        json!({"range": "7d", "period": "week",
               "cohorts": [{"cohort": "2026-11-16", "size": 5, "active": [5], "rates": [1.0]}]})
    );
    let (_, daily) = get(&f.0, "/api/retention?range=30d&period=day").await;
    assert_eq!(daily["cohorts"], json!([{"cohort": "2026-11-22", "size": 5, "active": [5], "rates": [1.0]}]));
    let (status, bad) = get(&f.0, "/api/retention?period=month").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["message"].as_str().unwrap().contains("period must be one of week, day"), "{bad}");
    let (_, search) = get(&f.0, "/api/sources?channel=Organic%20Search&limit=1").await;
    assert_eq!(search["sources"].as_array().unwrap().len(), 1);
    assert_eq!(search["sources"][0]["source"], json!("Bing"));
    assert_eq!(search["channels"].as_array().unwrap().len(), 3, "the channels stay whole");

    let (_, source) = get(&f.0, "/api/sessions/breakdown?by=source").await;
    assert_eq!(
        source["rows"],
        json!([
            {"key": "(direct)", "sessions": 3, "converted": 1, "revenue": 50.0},
            {"key": "google", "sessions": 1, "converted": 1, "revenue": 20.0},
        ])
    );
    let (_, device) = get(&f.0, "/api/sessions/breakdown?by=device").await;
    assert_eq!(device["rows"], json!([{"key": "desktop", "sessions": 4, "converted": 2, "revenue": 70.0}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_and_custom_events_of_the_range() {
    let dir = DataDir::new("api-goals");
    let mut events = visits();
    events.extend([
        ev("a6", "page_view", at(9, 15), "a").path("/thank-you"),
        ev("c3", "custom", at(9, 56), "c").custom("newsletter_signup").prop("placement", json!("home")),
        ev("d3", "custom", at(9, 59) + 40_000, "d").custom("newsletter_signup").prop("placement", json!("footer")),
    ]);
    dir.publish_with(&events, &with_goals());
    let (status, goals) = get(&dir.0, "/api/goals").await;
    assert_eq!(status, StatusCode::OK, "{goals}");
    // Four sessions started in the last hour (a, b, c, d; not the bot's).
    assert_eq!(
        goals,
        json!({"range": "1h", "sessions": 4, "currency": "EUR", "goals": [
            {"goal": "Newsletter", "completions": 2, "converting_sessions": 2, "conversion_rate": 0.5, "revenue": 50.0},
            {"goal": "Newsletter home", "completions": 1, "converting_sessions": 1, "conversion_rate": 0.25, "revenue": 0.0},
            {"goal": "Purchase", "completions": 1, "converting_sessions": 1, "conversion_rate": 0.25, "revenue": 20.0},
        ]})
    );
    let (_, custom) = get(&dir.0, "/api/custom_events").await;
    assert_eq!(
        custom,
        json!({"range": "1h", "events": [
            {"event_name": "newsletter_signup", "events": 2, "visitors": 2, "props": {"placement": [
                {"value": "footer", "events": 1, "visitors": 1},
                {"value": "home", "events": 1, "visitors": 1},
            ]}},
        ]})
    );
    // Without goals defined, the panels are empty, not errors.
    let plain = fixture("no-goals");
    assert_eq!(get(&plain.0, "/api/goals").await.1["goals"], json!([]));
    assert_eq!(get(&plain.0, "/api/custom_events").await.1["events"], json!([]));
    assert_eq!(get(&plain.0, "/api/custom_events?limit=0").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_rejects_and_sites() {
    let f = fixture("bots");
    let (_, bots) = get(&f.0, "/api/bots").await;
    assert_eq!(
        bots,
        json!({"range": "1h", "visitors": 1, "anomalies": [{"anonymous_id": "bot-1", "window_start": "2026-11-22T09:30:00Z", "events": 51}]})
    );
    let (_, rejects) = get(&f.0, "/api/rejects").await;
    assert_eq!(
        rejects,
        json!({"range": "1h", "total": 3, "reasons": [{"reason": "missing_event_id", "count": 2}, {"reason": "invalid_timestamp", "count": 1}]})
    );
    assert_eq!(get(&f.0, "/api/rejects?range=24h").await.1["total"], 4);
    assert_eq!(get(&f.0, "/api/sites").await.1, json!({"sites": ["shop-1"]}));
    // Another site's view of the same data is empty, not an error.
    let (status, other) = get(&f.0, "/api/summary?site=shop-2").await;
    assert_eq!(
        (status, other["sessions"].clone(), other["revenue_today"].clone()),
        (StatusCode::OK, json!(0), json!(0.0))
    );
    assert_eq!(other["conversion_rate"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_starts_at_the_sites_midnight_and_days_are_its_days() {
    let f = fixture("zones");
    let sites = std::collections::HashMap::from([("shop-1".to_string(), "Asia/Tokyo".to_string())]);
    let tokyo = || crate::api::Zones::new(None, &sites).unwrap();
    // 10:00:30 UTC is 19:00:30 in Tokyo: its day began at 15:00 UTC the day before.
    let (_, today) = get_in(&f.0, "/api/summary?range=today&site=shop-1", tokyo()).await;
    assert_eq!(
        (today["from"].clone(), today["time_zone"].clone()),
        (json!("2026-11-21T15:00:00Z"), json!("Asia/Tokyo"))
    );
    assert_eq!((today["sessions"].clone(), today["revenue_today"].clone()), (json!(5), json!(70.0)));
    // The same query in UTC starts at midnight UTC; other sites keep UTC.
    let (_, utc) = get_in(&f.0, "/api/summary?range=today&site=other", tokyo()).await;
    assert_eq!(utc["from"], json!("2026-11-22T00:00:00Z"));
    // Daily traffic buckets over a month start at Tokyo's midnights.
    let (_, month) = get_in(&f.0, "/api/traffic?range=30d&site=shop-1", tokyo()).await;
    assert_eq!(month["bucket"], json!("1d"));
    assert_eq!(month["points"][0]["t"], json!("2026-11-21T15:00:00Z"), "{month}");
    assert_eq!(month["points"][0]["events"], json!(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_and_no_data_is_503() {
    let f = fixture("errors");
    for (uri, message) in [
        ("/api/summary?range=2h", "range must be one of 1h, 24h, 7d, 30d, today, yesterday, this_month (got '2h')"),
        ("/api/traffic?rnage=1h", "unknown parameter 'rnage'; this endpoint takes range, site, from, to"),
        ("/api/traffic?from=2026-11-22", "from and to go together"),
        ("/api/revenue?top=abc", "top must be a whole number from 1 to 20 (got 'abc')"),
        ("/api/sessions/breakdown", "by must be one of source, country, device (got '')"),
    ] {
        let (status, body) = get(&f.0, uri).await;
        assert_eq!(
            (status, body["error"].as_str(), body["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_parameter"), Some(message)),
            "{uri}"
        );
    }
    let empty = DataDir::new("api-empty");
    let (status, body) = get(&empty.0, "/api/summary").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("no_data")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_page_is_served_whole() {
    let f = fixture("page");
    let log_dir = f.0.join("log");
    let stream: Arc<dyn EventStream> = Arc::new(EmbeddedLog::open(&log_dir, 1).unwrap());
    let mut state = AppState::new(
        stream,
        edge_worker::CollectConfig::new("k", "backend"),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(NOW)),
    );
    state.access = crate::server::Access::Open;
    let app = app(Arc::new(state));
    let response = app.clone().oneshot(Request::get("/dashboard").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("script-src 'self';") && policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = String::from_utf8(to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(html.contains(r#"data-metric="active_visitors""#), "the page carries the hooks its browser test reads");
    // Nothing is fetched from elsewhere: the only URL is SVG's namespace
    // (in the stylesheet's icons), and the script is serve's own.
    let urls = html.matches("http://").count() + html.matches("https://").count();
    assert_eq!(
        urls,
        html.matches("http://www.w3.org/2000/svg").count(),
        "no external assets: the dashboard works offline"
    );
    assert!(html.contains(r#"<script src="/dashboard/app.js" defer></script>"#));

    // The script, with the charting library: gzipped to a browser that
    // takes it, plain otherwise, and 304 while its ETag holds.
    let get = |encoding: Option<&str>, etag: Option<&str>| {
        let mut request = Request::get("/dashboard/app.js");
        if let Some(e) = encoding {
            request = request.header("accept-encoding", e);
        }
        if let Some(t) = etag {
            request = request.header("if-none-match", t);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let plain = get(None, None).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let js = to_bytes(plain.into_body(), usize::MAX).await.unwrap();
    assert!(js.len() > 100_000 && std::str::from_utf8(&js).unwrap().contains("echarts"), "{} bytes", js.len());
    let zipped = get(Some("br;q=1.0, gzip;q=0.8"), None).await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let gz = to_bytes(zipped.into_body(), usize::MAX).await.unwrap();
    assert!(gz.starts_with(&[0x1f, 0x8b]) && gz.len() < js.len() / 2, "{} of {} bytes", gz.len(), js.len());
    assert_eq!(get(Some("gzip"), Some(&etag)).await.unwrap().status(), StatusCode::NOT_MODIFIED);
    assert_eq!(get(None, Some("\"other\"")).await.unwrap().status(), StatusCode::OK);
}
