//! The rules fire exactly when they should, against the fixture data
//! directory, and alerts reach a real local webhook receiver: retried when
//! it fails, sent once per window, not again after a restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::config::{AlertRule, AlertingConfig, Condition};
use super::rules::check;
use super::{deliver, Alerts};
use crate::gold::fixture::{at, ev, DataDir};
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
    dir.reject(&[("missing_event_id", at(9, 20)), ("missing_event_id", at(9, 21)), ("missing_event_id", at(9, 22) + 59_999)]);
    dir
}

fn rule(name: &str, condition: Condition, webhooks: Vec<String>) -> AlertRule {
    AlertRule { name: name.into(), condition, webhooks }
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
    assert!(keys(&rule("spike", Condition::RejectsSpike { count: 3, window_minutes: 5 }, hook()), &dir, at(9, 23)).is_empty());

    // 09:55 to 10:00 had 3 human events (d's; the bot's are not counted):
    // 0.6 a minute, below 1.0 and not below 0.6. Checked once that window
    // has settled.
    let drop = |level: f64| rule("drop", Condition::TrafficBelow { events_per_minute: level, window_minutes: 5 }, hook());
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
    let r = Receiver { failures: Arc::new(Mutex::new(failures)), status_after: Arc::new(Mutex::new(status_after)), ..Receiver::default() };
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
    assert_eq!((delivery.delivered, delivery.attempts, delivery.status), (true, 3, Some(200)), "two 500s, then delivered");
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
    assert_eq!((entries[0]["outcome"].as_str(), entries[0]["attempts"].as_u64(), entries[0]["key"].as_str()), (Some("sent"), Some(3), Some("big|shop-1|o-2")));
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
    assert_eq!((deliveries[1].delivered, deliveries[1].attempts, deliveries[1].status), (false, 1, Some(404)), "4xx is not retried");
    assert_eq!((down.bodies.lock().unwrap().len(), refusing.bodies.lock().unwrap().len()), (3, 1));
    let log = std::fs::read_to_string(deliver::log_path(&dir.0)).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"outcome\":\"failed\"")).count(), 2);
    assert_eq!(metrics.alert_deliveries_failed.load(std::sync::atomic::Ordering::Relaxed), 2);
    // A receiver that is not there at all counts as a failure too.
    let lost = Alerts::new(vec![rule("bots2", Condition::BotAnomaly, vec!["http://127.0.0.1:9/hook".into()])], quick(), dir.0.clone(), metrics);
    let mut lost = lost;
    let sent = lost.check(at(10, 0)).await;
    assert!(sent[0].1[0].error.as_deref().unwrap().starts_with("unreachable"), "{:?}", sent[0].1[0]);
}
