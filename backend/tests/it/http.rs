//! The HTTP surface through the router, without sockets: every bad-input
//! class of `POST /v1/batch`, CORS, `/ingest` signatures, health, metrics.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use clickstream_backend::clock::FixedClock;
use clickstream_backend::metrics::Metrics;
use clickstream_backend::secrets::Redacted;
use clickstream_backend::server::auth::parse_token;
use clickstream_backend::server::{app, Access, AppState, IngestAuth, Tokens};
use clickstream_backend::stream::{EmbeddedLog, EventStream, Topic};
use clickstream_schema::signing::sign;
use edge_worker::CollectConfig;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::temp_dir;

const NOW: i64 = 1_732_262_400_000;

struct Harness {
    state: Arc<AppState>,
    log: Arc<EmbeddedLog>,
    _dir: crate::support::TempDir,
}

fn harness(configure: impl FnOnce(&mut AppState)) -> Harness {
    let dir = temp_dir("http");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    let stream: Arc<dyn EventStream> = log.clone();
    let mut collect = CollectConfig::new("salt", "backend");
    collect.limits.max_body_bytes = 4096;
    let mut state = AppState::new(stream, collect, Arc::new(Metrics::new()), Arc::new(FixedClock::new(NOW)));
    configure(&mut state);
    Harness { state: Arc::new(state), log, _dir: dir }
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec();
        (status, headers, body)
    }

    async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let req = Request::post(path)
            .header("content-type", content_type)
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
            .header("cf-ipcountry", "NL")
            .body(body.into())
            .unwrap();
        let (status, _, body) = self.send(req).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn stored(&self, topic: Topic) -> Vec<Value> {
        let mut out = Vec::new();
        for p in 0..self.log.partitions(topic) {
            for f in self.log.fetch(topic, p, 0, 10_000).await.unwrap() {
                out.push(match topic {
                    // Events are stored as binary records; read as JSON here.
                    Topic::Events => {
                        serde_json::to_value(clickstream_schema::EnrichedEvent::from_record(&f.value).unwrap()).unwrap()
                    }
                    Topic::Rejects => serde_json::from_slice(&f.value).unwrap(),
                });
            }
        }
        out
    }
}

fn event(id: &str) -> Value {
    json!({"event_id": id, "event_type": "page_view", "ts": NOW - 5000, "anonymous_id": "a-1", "session_id": "s-1",
           "page": {"url": "https://shop.example/?utm_source=x", "path": "/"}})
}

fn batch(events: Vec<Value>) -> String {
    json!({"v": 1, "site_id": "shop-1", "sent_at": NOW - 1000, "events": events}).to_string()
}

#[tokio::test]
async fn a_valid_batch_is_durable_before_the_answer() {
    let h = harness(|_| {});
    let (status, body) = h.post("/v1/batch", "application/json", batch(vec![event("e-1"), event("e-2")])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"accepted": 2, "rejected": 0, "errors": []}));
    let stored = h.stored(Topic::Events).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["country"], "NL");
    assert_eq!(stored[0]["browser"], "Firefox");
    assert_eq!(stored[0]["event_ts"], NOW - 4000, "skew-corrected by received_at - sent_at");
}

#[tokio::test]
async fn text_plain_bodies_from_send_beacon_are_accepted() {
    let h = harness(|_| {});
    let (status, body) = h.post("/v1/batch", "text/plain;charset=UTF-8", batch(vec![event("e-1")])).await;
    assert_eq!((status, body["accepted"].as_u64()), (StatusCode::OK, Some(1)));
}

#[tokio::test]
async fn invalid_events_become_bad_rows_and_the_rest_is_accepted() {
    let h = harness(|_| {});
    let mut bad = event("e-2");
    bad["event_type"] = json!("teleport");
    let (status, body) = h.post("/v1/batch", "application/json", batch(vec![event("e-1"), bad, json!(5)])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["rejected"], 2);
    assert_eq!(body["errors"][0]["reason"], "unknown_event_type");
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][1]["reason"], "not_an_object");
    let rejects = h.stored(Topic::Rejects).await;
    assert_eq!(rejects.len(), 2);
    assert!(rejects.iter().any(|r| r["payload"] == "5"));
    let metrics = h.state.metrics.render();
    assert!(metrics.contains("clickstream_events_rejected_total{reason=\"unknown_event_type\"} 1"), "{metrics}");
}

#[tokio::test]
async fn bad_bodies_get_4xx_with_a_machine_readable_reason_and_store_nothing() {
    let h = harness(|_| {});
    let cases = [
        ("{not json".to_string(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("[1,2]".to_string(), StatusCode::BAD_REQUEST, "invalid_envelope"),
        (json!({"v": 2, "site_id": "s", "events": []}).to_string(), StatusCode::BAD_REQUEST, "unsupported_version"),
        ("x".repeat(5000), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
    ];
    for (body, status, reason) in cases {
        let (got, json) = h.post("/v1/batch", "application/json", body).await;
        assert_eq!((got, json["error"].as_str()), (status, Some(reason)));
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(h.stored(Topic::Events).await.is_empty());
    assert!(h.stored(Topic::Rejects).await.is_empty());
    assert!(h.state.metrics.render().contains("clickstream_batches_refused_total{reason=\"body_too_large\"} 1"));
}

#[tokio::test]
async fn an_oversized_body_without_content_length_is_refused_too() {
    let h = harness(|_| {});
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let (status, json) = h.post("/v1/batch", "application/json", body).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large")));
}

#[tokio::test]
async fn cors_preflight_allows_pages_of_allowed_origins_to_post_batches() {
    let h = harness(|_| {});
    let req = Request::builder()
        .method("OPTIONS")
        .uri("/v1/batch")
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = h.send(req).await;
    assert!(status.is_success(), "{status}");
    // Any origin by default (`allowed_origins` narrows it), echoed back.
    assert_eq!(headers["access-control-allow-origin"], "https://shop.example");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
}

/// What the Worker forwards for a batch of one good and one bad event: the
/// binary body, or (`json`) the JSON body of Workers before it.
fn ingest_body(json: bool) -> (Vec<u8>, &'static str) {
    let body = batch(vec![event("e-9"), json!({"event_type": "click"})]);
    let meta = clickstream_schema::RequestMeta { received_at: NOW, ..Default::default() };
    let collected = edge_worker::collect(body.as_bytes(), &meta, &CollectConfig::new("edge-salt", "edge")).unwrap();
    if !json {
        let body = clickstream_schema::ingest::encode_ingest(&collected.accepted, &collected.bad_rows, "n-1");
        return (body, clickstream_schema::ingest::INGEST_RECORDS_TYPE);
    }
    let batch =
        clickstream_schema::IngestBatch { events: collected.accepted, bad_rows: collected.bad_rows, nonce: None };
    (serde_json::to_vec(&batch).unwrap(), "application/json")
}

async fn post_ingest(
    h: &Harness,
    (body, content_type): &(Vec<u8>, &str),
    ts: Option<i64>,
    signature: Option<String>,
) -> (StatusCode, Value) {
    let mut req = Request::post("/ingest").header("content-type", *content_type);
    if let Some(ts) = ts {
        req = req.header("x-clickstream-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        req = req.header("x-clickstream-signature", sig);
    }
    let (status, _, body) = h.send(req.body(Body::from(body.clone())).unwrap()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ingest_accepts_only_fresh_correct_signatures_and_never_twice() {
    let h = harness(|s| s.ingest_auth = IngestAuth::Signed(vec![Redacted(b"shared".to_vec())]));
    let body = ingest_body(false);
    let good = sign(b"shared", NOW, &body.0);

    let (status, json) = post_ingest(&h, &body, Some(NOW), None).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("signature_missing")));
    let (status, json) = post_ingest(&h, &body, Some(NOW), Some(sign(b"forged", NOW, &body.0))).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("signature_mismatch")));
    let stale = NOW - 5 * 60 * 1000 - 1;
    let (status, json) = post_ingest(&h, &body, Some(stale), Some(sign(b"shared", stale, &body.0))).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("signature_stale")));
    assert!(h.stored(Topic::Events).await.is_empty(), "nothing written before a valid signature");

    let (status, json) = post_ingest(&h, &body, Some(NOW), Some(good.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json, json!({"accepted": 1, "rejected": 1}));
    let (status, json) = post_ingest(&h, &body, Some(NOW), Some(good)).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("signature_replayed")));
    assert_eq!(h.stored(Topic::Events).await.len(), 1);
    assert_eq!(h.stored(Topic::Rejects).await.len(), 1);
    assert_eq!(h.stored(Topic::Events).await[0]["ip_hash"], Value::Null);
}

#[tokio::test]
async fn ingest_stores_the_binary_body_as_the_json_body_of_older_workers_and_refuses_a_broken_one() {
    let open = || harness(|s| s.ingest_auth = IngestAuth::Unsigned);
    let (binary, json) = (open(), open());
    let (status, answer) = post_ingest(&binary, &ingest_body(false), None, None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"accepted": 1, "rejected": 1})));
    let (status, answer) = post_ingest(&json, &ingest_body(true), None, None).await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"accepted": 1, "rejected": 1})));
    for topic in [Topic::Events, Topic::Rejects] {
        let stored = binary.stored(topic).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored, json.stored(topic).await, "{topic:?}");
    }

    // Cut short, or a record that is not an event: 400, nothing stored.
    let broken = open();
    let (body, content_type) = ingest_body(false);
    let cut = (body[..body.len() - 3].to_vec(), content_type);
    let (status, answer) = post_ingest(&broken, &cut, None, None).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_ingest_body")), "{answer}");
    let (status, answer) = post_ingest(&broken, &(b"{}".to_vec(), content_type), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("unknown ingest body format"), "{answer}");
    assert!(broken.stored(Topic::Events).await.is_empty());
    assert!(broken.stored(Topic::Rejects).await.is_empty());
}

#[tokio::test]
async fn ingest_is_closed_without_a_secret_unless_unsigned_is_asked_for() {
    let closed = harness(|_| {});
    let (status, json) = post_ingest(&closed, &ingest_body(false), None, None).await;
    assert_eq!((status, json["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("ingest_disabled")));
    let open = harness(|s| s.ingest_auth = IngestAuth::Unsigned);
    let (status, _) = post_ingest(&open, &ingest_body(false), None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn health_and_metrics() {
    const TOKEN: &str = "metrics-scraper-token-01";
    let h = harness(|s| s.access = Access::Tokens(Tokens::new(vec![parse_token(TOKEN).unwrap()], Vec::new())));
    h.post("/v1/batch", "application/json", batch(vec![event("e-1")])).await;
    let (status, _, body) = h.send(Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["status"], "ok");
    let scrape =
        Request::get("/metrics").header("authorization", format!("Bearer {TOKEN}")).body(Body::empty()).unwrap();
    let (status, headers, body) = h.send(scrape).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert!(String::from_utf8(body).unwrap().contains("clickstream_events_accepted_total 1\n"));
}

#[tokio::test]
async fn the_site_loads_on_its_browser_routes_and_gets_the_demo_catalog() {
    let site = temp_dir("site");
    std::fs::write(site.path().join("index.html"), "<!doctype html><title>shop</title>").unwrap();
    std::fs::write(site.path().join("shop.js"), "export {}").unwrap();
    let h = harness(|s| s.site_dir = Some(site.path().to_path_buf()));
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();

    for route in ["/", "/p/42", "/c/shoes", "/cart", "/guides/layering"] {
        let (status, _, body) = h.send(get(route)).await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, b"<!doctype html><title>shop</title>".as_slice()),
            "{route}"
        );
    }
    let (status, _, body) = h.send(get("/shop.js")).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"export {}".as_slice()));
    let (status, _, _) = h.send(get("/missing.js")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a missing file is not the index page");

    let (status, headers, body) = h.send(get("/demo/catalog.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let module = String::from_utf8(body).unwrap();
    let line = module.lines().find_map(|l| l.strip_prefix("export const PRODUCTS = ")).unwrap();
    let products: Vec<Value> = serde_json::from_str(line.trim_end_matches(';')).unwrap();
    assert!(products.len() > 30, "{}", products.len());
    assert!(products.iter().any(|p| p["id"] == "p-1" && p["n"] == 1 && p["price"].as_f64().is_some()));
}
