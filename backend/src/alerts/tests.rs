//! The rules fire exactly when they should, against the fixture data
//! directory, and alerts reach a real local webhook receiver: retried when
//! it fails, sent once per window, not again after a restart. What an
//! attacker controls cannot turn them into spam: a flood is cut to each
//! rule's hourly limit and one summary, visitor values cannot format the
//! message, redirects are not followed and webhook secrets stay out of
//! the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::config::{AlertRule, AlertingConfig, Condition};
use super::rules::{check, LOOKBACK_MS};
use super::{deliver, Alerts, SUMMARY};
use crate::api::iso;
use crate::gold::fixture::{at, ev, DataDir, HOUR, MIN};
use crate::metrics::Metrics;

fn data(label: &str) -> DataDir {
    let dir = DataDir::new(&format!("alerts-{label}"));
    let mut events = vec![
        ev("a1", "page_view", at(9, 10), "a"),
        ev("a2", "purchase", at(9, 14), "a").product("p-1").bought("o-1", 1, 20.0),
        ev("d1", "page_view", at(9, 58), "d"),
        // One order of two lines: 30 + 25.
        ev("d2", "purchase", at(9, 59), "d").product("p-2").bought("o-2", 1, 30.0),
        ev("d3", "purchase", at(9, 59) + 1000, "d").product("p-3").bought("o-2", 1, 25.0),
    ];
    events.extend((0..60).map(|i| ev(format!("bot-{i}"), "page_view", at(9, 30) + i * 900, "bot-7")));
    dir.publish(&events);
    dir.reject(&[
        ("missing_event_id", at(9, 20)),
        ("missing_event_id", at(9, 21)),
        ("missing_event_id", at(9, 22) + 59_999),
    ]);
    dir
}

fn rule(name: &str, condition: Condition, webhooks: Vec<String>) -> AlertRule {
    AlertRule { name: name.into(), condition, webhooks, max_notifications_per_hour: 10 }
}

fn keys(rule: &AlertRule, dir: &DataDir, now: i64) -> Vec<String> {
    check(rule, &dir.0, now).unwrap().into_iter().map(|a| a.key).collect()
}

#[test]
fn each_rule_fires_exactly_when_it_should() {
    let dir = data("rules");
    let now = at(10, 0) + 30_000;
    let hook = || vec!["http://127.0.0.1:9/".to_string()];

    // o-2's two lines make 55: over 50, not over 55.
    let big = rule("big", Condition::PurchaseOver { amount: 50.0 }, hook());
    assert_eq!(keys(&big, &dir, now), ["big|shop-1|o-2"]);
    assert!(keys(&rule("big", Condition::PurchaseOver { amount: 55.0 }, hook()), &dir, now).is_empty());
    let alert = &check(&big, &dir.0, now).unwrap()[0];
    assert_eq!(alert.details["revenue"], 55.0);
    assert_eq!(alert.details["lines"], 2);
    assert!(alert.text.starts_with("Order o-2 on shop-1: 55.00 EUR in 2 line(s)"), "{}", alert.text);
    // Orders older than the lookback are left alone.
    assert!(keys(&big, &dir, at(12, 30)).is_empty());

    let bots = rule("bots", Condition::BotAnomaly, hook());
    assert_eq!(keys(&bots, &dir, now), ["bots|shop-1|2026-11-22T09:30:00Z"]);

    // Three rejects from 09:20 to 09:22:59.999: over 2 in that 5-minute
    // window, while it runs and in the next one; not over 3; not in
    // windows that did not hold them.
    let spike = rule("spike", Condition::RejectsSpike { count: 2, window_minutes: 5 }, hook());
    assert_eq!(keys(&spike, &dir, at(9, 23)), ["spike|2026-11-22T09:20:00Z"]);
    assert_eq!(keys(&spike, &dir, at(9, 26)), ["spike|2026-11-22T09:20:00Z"]);
    assert!(keys(&spike, &dir, at(9, 31)).is_empty());
    assert!(keys(&rule("spike", Condition::RejectsSpike { count: 3, window_minutes: 5 }, hook()), &dir, at(9, 23))
        .is_empty());

    // 09:55 to 10:00 had 3 human events (d's; the bot's are not counted):
    // 0.6 a minute, below 1.0 and not below 0.6. Checked once that window
    // has settled.
    let drop =
        |level: f64| rule("drop", Condition::TrafficBelow { events_per_minute: level, window_minutes: 5 }, hook());
    assert_eq!(keys(&drop(1.0), &dir, at(10, 1) + 30_000), ["drop|2026-11-22T09:55:00Z"]);
    assert!(keys(&drop(0.6), &dir, at(10, 1) + 30_000).is_empty());
    // Before 10:01 the 09:55 window has not settled: the one before is judged.
    assert_eq!(keys(&drop(0.1), &dir, at(10, 0) + 30_000), ["drop|2026-11-22T09:50:00Z"]);
    // No Gold at all: nothing to watch yet.
    assert!(keys(&drop(1.0), &DataDir::new("alerts-empty"), now).is_empty());
}

/// A webhook receiver that fails its first `failures` requests with 500.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    failures: Arc<Mutex<u32>>,
    status_after: Arc<Mutex<u16>>,
}

async fn receive(State(r): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    r.bodies.lock().unwrap().push(body);
    let mut failures = r.failures.lock().unwrap();
    if *failures > 0 {
        *failures -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::from_u16(*r.status_after.lock().unwrap()).unwrap()
}

async fn receiver(failures: u32, status_after: u16) -> (Receiver, String) {
    let r = Receiver {
        failures: Arc::new(Mutex::new(failures)),
        status_after: Arc::new(Mutex::new(status_after)),
        ..Receiver::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = Router::new().route("/hook", post(receive)).with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, format!("http://{addr}/hook"))
}

fn quick() -> AlertingConfig {
    AlertingConfig { check_seconds: 1, attempts: 3, backoff_ms: 10 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_retried_sent_once_and_remembered_across_restarts() {
    let dir = data("deliver");
    let (hook, url) = receiver(2, 200).await;
    let rules = vec![rule("big", Condition::PurchaseOver { amount: 50.0 }, vec![url.clone()])];
    let metrics = Arc::new(Metrics::new());
    let now = at(10, 0) + 30_000;

    let mut alerts = Alerts::new(rules.clone(), quick(), dir.0.clone(), metrics.clone());
    let sent = alerts.check(now).await;
    assert_eq!(sent.len(), 1);
    let delivery = &sent[0].1[0];
    assert_eq!(
        (delivery.delivered, delivery.attempts, delivery.status),
        (true, 3, Some(200)),
        "two 500s, then delivered"
    );
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "the same alert three times");
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    assert!(bodies[0]["text"].as_str().unwrap().contains("o-2"), "a Slack-compatible text: {}", bodies[0]);
    assert_eq!((bodies[0]["rule"].as_str(), bodies[0]["when"].as_str()), (Some("big"), Some("purchase_over")));

    // Checked again: nothing new. Restarted: the log says it was sent.
    assert!(alerts.check(now + 5_000).await.is_empty());
    assert!(Alerts::new(rules, quick(), dir.0.clone(), metrics.clone()).check(now + 10_000).await.is_empty());
    assert_eq!(hook.bodies.lock().unwrap().len(), 3);

    let log = std::fs::read_to_string(deliver::log_path(&dir.0)).unwrap();
    let entries: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0]["outcome"].as_str(), entries[0]["attempts"].as_u64(), entries[0]["key"].as_str()),
        (Some("sent"), Some(3), Some("big|shop-1|o-2"))
    );
    assert!(metrics.render().contains("clickstream_alerts_fired_total{rule=\"big\"} 1\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_given_up_after_its_attempts_and_a_refusal_at_once() {
    let dir = data("failing");
    let (down, down_url) = receiver(u32::MAX, 200).await;
    let (refusing, refusing_url) = receiver(0, 404).await;
    let rules = vec![rule("bots", Condition::BotAnomaly, vec![down_url, refusing_url])];
    let metrics = Arc::new(Metrics::new());
    let sent = Alerts::new(rules, quick(), dir.0.clone(), metrics.clone()).check(at(10, 0)).await;
    let deliveries = &sent[0].1;
    assert_eq!((deliveries[0].delivered, deliveries[0].attempts, deliveries[0].status), (false, 3, Some(500)));
    assert_eq!(
        (deliveries[1].delivered, deliveries[1].attempts, deliveries[1].status),
        (false, 1, Some(404)),
        "4xx is not retried"
    );
    assert_eq!((down.bodies.lock().unwrap().len(), refusing.bodies.lock().unwrap().len()), (3, 1));
    let log = std::fs::read_to_string(deliver::log_path(&dir.0)).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"outcome\":\"failed\"")).count(), 2);
    assert_eq!(metrics.alert_deliveries_failed.load(std::sync::atomic::Ordering::Relaxed), 2);
    // A receiver that is not there at all counts as a failure too.
    let lost = Alerts::new(
        vec![rule("bots2", Condition::BotAnomaly, vec!["http://127.0.0.1:9/hook".into()])],
        quick(),
        dir.0.clone(),
        metrics,
    );
    let mut lost = lost;
    let sent = lost.check(at(10, 0)).await;
    assert!(sent[0].1[0].error.as_deref().unwrap().starts_with("unreachable"), "{:?}", sent[0].1[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_flood_of_10000_orders_posts_at_most_the_limit_and_one_summary() {
    let dir = DataDir::new("alerts-flood");
    let orders = 10_000;
    let events: Vec<_> = (0..orders)
        .map(|i| {
            ev(format!("flood-{i}"), "purchase", at(9, 30) + i * 100, &format!("v{i}")).product("p-1").bought(
                &format!("o-{i}"),
                1,
                600.0,
            )
        })
        .collect();
    dir.publish(&events);
    let (hook, url) = receiver(0, 200).await;
    let limit = 7;
    let rules = vec![AlertRule {
        max_notifications_per_hour: limit,
        ..rule("big", Condition::PurchaseOver { amount: 500.0 }, vec![url])
    }];
    let metrics = Arc::new(Metrics::new());
    let now = at(10, 0) + 30_000;

    let posted = Alerts::new(rules.clone(), quick(), dir.0.clone(), metrics.clone()).check(now).await;
    assert_eq!(posted.len(), limit as usize);
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), limit as usize, "one post per alert up to the limit");
    assert!(bodies.iter().all(|b| b["when"] == "purchase_over"));
    // Posted at once, so in any order; the last one says the limit is reached.
    let noted = bodies
        .iter()
        .filter(|b| b["text"].as_str().unwrap().contains("the limit of 7 alert(s) an hour is reached"))
        .count();
    assert_eq!(noted, 1);
    assert!(
        metrics.render().contains("clickstream_alerts_fired_total{rule=\"big\"} 7\n"),
        "suppressed alerts are not counted as fired"
    );
    assert!(
        metrics.render().contains("clickstream_alerts_suppressed_total{rule=\"big\"} 9993\n"),
        "they are counted as suppressed"
    );

    // Every alert is in the log, the suppressed ones as such.
    let log = std::fs::read_to_string(deliver::log_path(&dir.0)).unwrap();
    let outcomes: Vec<Value> =
        log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["outcome"].clone()).collect();
    assert_eq!(outcomes.len(), orders as usize);
    assert_eq!(outcomes.iter().filter(|o| *o == "suppressed").count(), orders as usize - limit as usize);

    // Restarted within the hour: nothing is posted again, suppressed or not.
    let mut restarted = Alerts::new(rules.clone(), quick(), dir.0.clone(), metrics.clone());
    assert!(restarted.check(now + MIN).await.is_empty());
    assert_eq!(hook.bodies.lock().unwrap().len(), limit as usize);

    // Once the hour has ended: one summary with the count, read back from
    // the log by the restarted server.
    let posted = restarted.check(at(11, 0) + 5_000).await;
    assert_eq!(posted.len(), 1);
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), limit as usize + 1);
    let summary = &bodies[limit as usize];
    assert_eq!((summary["when"].as_str(), summary["rule"].as_str()), (Some(SUMMARY), Some("big")));
    assert_eq!(summary["details"]["suppressed"], json!(orders - i64::from(limit)));
    let text = summary["text"].as_str().unwrap();
    assert!(
        text.starts_with("9993 more alert(s) of \"big\" were suppressed in the hour from 2026-11-22T10:00:00Z"),
        "{text}"
    );

    // Exactly one summary: not at the next check, nor after another restart.
    assert!(restarted.check(at(11, 0) + 10_000).await.is_empty());
    assert!(Alerts::new(rules, quick(), dir.0.clone(), metrics).check(at(11, 1)).await.is_empty());
    assert_eq!(hook.bodies.lock().unwrap().len(), limit as usize + 1, "at most the limit and one summary");
}

#[test]
fn visitor_values_cannot_format_the_message() {
    let dir = DataDir::new("alerts-escape");
    let order = "<!channel> *x* <https://evil|click>";
    let mut events = vec![ev("e1", "purchase", at(9, 50), "a").product("p-1").bought(order, 1, 600.0)];
    // Seven bots in one minute, one named like a mention.
    for (b, anon) in ["<!here>", "b2", "b3", "b4", "b5", "b6", "b7"].iter().enumerate() {
        events.extend((0..60).map(|i| ev(format!("bot-{b}-{i}"), "page_view", at(9, 40) + i * 900, anon)));
    }
    dir.publish(&events);
    let now = at(10, 0);

    let alert = &check(&rule("big", Condition::PurchaseOver { amount: 50.0 }, vec![]), &dir.0, now).unwrap()[0];
    assert!(
        alert.text.starts_with("Order &lt;!channel&gt; ＊x＊ &lt;https://evil｜click&gt; on shop-1: 600.00 EUR"),
        "{}",
        alert.text
    );
    for markup in ['<', '>', '*', '|'] {
        assert!(!alert.text.contains(markup), "{markup:?} in {}", alert.text);
    }
    assert_eq!(alert.details["order_id"], order, "programs get the value as it is");

    let alert = &check(&rule("bots", Condition::BotAnomaly, vec![]), &dir.0, now).unwrap()[0];
    assert!(alert.text.ends_with(": &lt;!here&gt;, b2, b3, b4, b5 and 2 more (alert \"bots\")"), "{}", alert.text);
    assert_eq!(alert.details["visitors"].as_array().unwrap().len(), 7);
}

/// A server that counts every request it gets, whatever the method.
async fn counter() -> (Arc<AtomicUsize>, String) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hits, format!("http://{addr}/elsewhere"))
}

/// A webhook that answers every request with `status` and a `Location`.
async fn redirecting(status: u16, location: String) -> (Arc<AtomicUsize>, String) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/hook",
        any(move || {
            let (counted, location) = (counted.clone(), location.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                (StatusCode::from_u16(status).unwrap(), [(header::LOCATION, location)])
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hits, format!("http://{addr}/hook"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_final_failure_and_is_not_followed() {
    let dir = data("redirect");
    // 302 would be followed as a GET, 307 and 308 as the same POST.
    for status in [302, 307, 308] {
        let (elsewhere, elsewhere_url) = counter().await;
        let (hook, hook_url) = redirecting(status, elsewhere_url).await;
        let name = format!("bots-{status}");
        let mut alerts = Alerts::new(
            vec![rule(&name, Condition::BotAnomaly, vec![hook_url])],
            quick(),
            dir.0.clone(),
            Arc::new(Metrics::new()),
        );
        let sent = alerts.check(at(10, 0)).await;
        let delivery = &sent[0].1[0];
        assert_eq!((delivery.delivered, delivery.attempts, delivery.status), (false, 1, Some(status)), "not retried");
        assert!(delivery.error.as_deref().unwrap().contains("redirects are not followed"), "{delivery:?}");
        assert_eq!(hook.load(Ordering::SeqCst), 1);
        assert_eq!(elsewhere.load(Ordering::SeqCst), 0, "{status}: the redirect target got a request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_stay_out_of_deliveries_and_the_alert_log() {
    let dir = data("secrets");
    let (_hook, url) = receiver(0, 200).await;
    let answering = format!("{url}?token=SECRET-1");
    let absent = "http://127.0.0.1:9/services/T000/B000/SECRET-2".to_string();
    let rules = vec![rule("bots", Condition::BotAnomaly, vec![answering, absent])];
    let sent = Alerts::new(rules, quick(), dir.0.clone(), Arc::new(Metrics::new())).check(at(10, 0)).await;
    let deliveries = &sent[0].1;
    let port = url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/hook");
    assert_eq!(deliveries[0].webhook, format!("http://127.0.0.1:{port}/…"));
    assert_eq!(deliveries[1].webhook, "http://127.0.0.1:9/…");
    assert!(deliveries[1].error.as_deref().unwrap().starts_with("unreachable"), "{:?}", deliveries[1]);
    // What is logged (tracing and the file) is what a delivery holds.
    let log = std::fs::read_to_string(deliver::log_path(&dir.0)).unwrap();
    for shown in [format!("{deliveries:?}"), log.clone()] {
        for secret in ["SECRET", "token", "/services", "/hook"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
    assert!(log.contains("\"webhook\":\"http://127.0.0.1:9/…\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_keys_are_read_back_only_while_recent_and_then_forgotten() {
    let dir = data("bounded");
    let now = at(10, 0) + 30_000;
    let line = |at: i64, key: &str| {
        json!({ "at": iso(at), "rule": "big", "when": "purchase_over", "key": key, "outcome": "sent" }).to_string()
    };
    let log = deliver::log_path(&dir.0);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(
        &log,
        [line(now - 30 * HOUR, "big|shop-1|o-old"), line(now - 10 * MIN, "big|shop-1|o-2"), "not json".into()]
            .join("\n")
            + "\n",
    )
    .unwrap();

    let (hook, url) = receiver(0, 200).await;
    let mut alerts = Alerts::new(
        vec![rule("big", Condition::PurchaseOver { amount: 50.0 }, vec![url])],
        quick(),
        dir.0.clone(),
        Arc::new(Metrics::new()),
    );
    // Orders are read from the lookback to an hour ahead; twice that is kept.
    assert_eq!(alerts.keep_ms, 2 * (LOOKBACK_MS + HOUR));
    assert!(alerts.check(now).await.is_empty(), "o-2 was sent 10 minutes ago");
    assert!(alerts.sent.contains("big|shop-1|o-2"));
    assert!(!alerts.sent.contains("big|shop-1|o-old"), "older than the lookback bound: not read back");
    assert_eq!(alerts.sent.len(), 1);

    // Once o-2 is out of every window the rule reads, its key is dropped,
    // and the rule does not raise it again.
    let later = now + alerts.keep_ms + MIN;
    assert!(alerts.check(later).await.is_empty());
    assert_eq!(alerts.sent.len(), 0);
    assert!(hook.bodies.lock().unwrap().is_empty());

    // A day-long window is remembered for as long as it can fire.
    let daily = Alerts::new(
        vec![rule("spike", Condition::RejectsSpike { count: 1, window_minutes: 1440 }, vec![])],
        quick(),
        dir.0.clone(),
        Arc::new(Metrics::new()),
    );
    assert_eq!(daily.keep_ms, 2 * 2 * 24 * HOUR);
}
