//! Attacks on a real `clickstream serve` (in-process on a real socket, or
//! the binary): reading what needs a token, forging origins, flooding,
//! stalling, slowloris, replaying `/ingest`, and what is left on disk
//! about visitors' IPs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use clickstream_backend::aggregate::{AggregateConfig, Aggregator};
use clickstream_backend::clock::{Clock, FixedClock};
use clickstream_backend::metrics::Metrics;
use clickstream_backend::salts::SaltStore;
use clickstream_backend::secrets::Redacted;
use clickstream_backend::serve::{serve, ServeSettings};
use clickstream_backend::server::auth::parse_token;
use clickstream_backend::server::{app, Access, AppState, CollectGuard, IngestAuth};
use clickstream_backend::stream::{EmbeddedLog, EventStream, Fetched, Record, StreamError, Topic};
use clickstream_schema::signing::{sign, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use clickstream_schema::time::DAY_MS;
use clickstream_schema::DailySalt;
use edge_worker::edge::AllowedOrigins;
use edge_worker::CollectConfig;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

use crate::support::{temp_dir, TempDir};

const TOKEN: &str = "security-test-token-current-0001";
const OLD_TOKEN: &str = "security-test-token-retired-0002";
const METRICS_TOKEN: &str = "security-test-token-metrics-0003";
const SECRET: &str = "ingest-secret-now";
const PREVIOUS_SECRET: &str = "ingest-secret-before";

fn now_ms() -> i64 {
    clickstream_backend::clock::SystemClock.now_ms()
}

fn batch(site: &str, id: &str, ts: i64) -> String {
    json!({"v": 1, "site_id": site, "sent_at": ts, "events": [{
        "event_id": id, "event_type": "page_view", "ts": ts - 1000, "anonymous_id": format!("a-{id}"), "session_id": "s-1",
        "page": {"url": "https://shop.example/", "path": "/"}}]})
    .to_string()
}

/// `clickstream serve` in this process, on a real socket.
struct Running {
    base: String,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(dir: &Path, configure: impl FnOnce(&mut ServeSettings)) -> Running {
        let mut settings = ServeSettings::new(dir);
        settings.port = 0;
        settings.aggregate = None;
        configure(&mut settings);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(settings, stop_rx, Some(ready_tx)));
        let addr = ready_rx.await.expect("serve started");
        Running { base: format!("http://{addr}"), addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn hashed(tokens: &[&str]) -> Vec<[u8; 32]> {
    tokens.iter().map(|t| parse_token(t).unwrap()).collect()
}

const PRIVATE: [&str; 5] = ["/dashboard", "/dashboard/app.js", "/api/summary", "/api/traffic?range=1h", "/metrics"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_private_route_needs_a_current_token_and_the_collect_routes_none() {
    let dir = temp_dir("sec-routes");
    let tracker = dir.path().join("tracker");
    std::fs::create_dir_all(&tracker).unwrap();
    std::fs::write(tracker.join("clickstream.js"), "// the tracker").unwrap();
    let data = dir.path().to_path_buf();
    let configure = |tokens: Vec<[u8; 32]>| {
        let (tracker, data) = (tracker.clone(), data.clone());
        move |s: &mut ServeSettings| {
            s.api_tokens = tokens;
            s.tracker = Some((tracker, "/t".into()));
            let mut aggregate = AggregateConfig::new(&data);
            aggregate.poll_interval = Duration::from_millis(100);
            s.aggregate = Some(aggregate);
        }
    };
    // Before rotation, both tokens are valid; send one event so Gold exists.
    let server = Running::start(dir.path(), configure(hashed(&[TOKEN, OLD_TOKEN]))).await;
    let http = client();
    // A browser's user agent: a visitor without one counts as a bot, and
    // bots stay out of Gold's traffic.
    let sent = http
        .post(format!("{}/v1/batch", server.base))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        .body(batch("shop-1", "e-1", now_ms()))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    assert_eq!(sent.json::<Value>().await.unwrap()["accepted"], 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(format!("{}/api/summary", server.base)).bearer_auth(OLD_TOKEN).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        if Instant::now() >= deadline {
            let listing: Vec<String> = every_file(dir.path()).into_iter().map(|(p, _)| p).collect();
            panic!("Gold did not appear: {} {:?} {listing:?}", r.status(), r.text().await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;

    // The old token is revoked: the server restarts without it.
    let server = Running::start(dir.path(), configure(hashed(&[TOKEN]))).await;
    for path in PRIVATE {
        let url = format!("{}{path}", server.base);
        let anonymous = http.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path} without a token");
        let spoofed = http.get(&url).header("x-forwarded-for", "198.51.100.4").send().await.unwrap();
        assert_eq!(spoofed.status(), 401, "{path}: a forwarded public client without a token");
        assert_eq!(
            http.get(&url).bearer_auth(OLD_TOKEN).send().await.unwrap().status(),
            401,
            "{path} with the revoked token"
        );
        assert_eq!(
            http.get(&url).bearer_auth("x".repeat(40)).send().await.unwrap().status(),
            401,
            "{path} with a made-up token"
        );
        let ok = http.get(&url).bearer_auth(TOKEN).header("x-forwarded-for", "198.51.100.4").send().await.unwrap();
        assert_eq!(ok.status(), 200, "{path} with the token, on a loopback bind, forwarded for a public client");
    }
    let logout = http.post(format!("{}/auth/logout", server.base)).send().await.unwrap();
    assert_eq!(logout.status(), 401, "sign-out is private too");
    // What stays public.
    assert_eq!(http.get(format!("{}/health", server.base)).send().await.unwrap().status(), 200);
    assert_eq!(http.get(format!("{}/t/clickstream.js", server.base)).send().await.unwrap().status(), 200);
    let collect =
        http.post(format!("{}/v1/batch", server.base)).body(batch("shop-1", "e-2", now_ms())).send().await.unwrap();
    assert_eq!(collect.status(), 200);
    assert_eq!(http.get(format!("{}/", server.base)).send().await.unwrap().status(), 404, "no demo shop in serve");
    assert_eq!(http.get(format!("{}/demo/catalog.js", server.base)).send().await.unwrap().status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_with_a_strict_cookie_and_signs_out_for_good() {
    let dir = temp_dir("sec-cookie");
    let server = Running::start(dir.path(), |s| {
        s.api_tokens = hashed(&[TOKEN]);
        s.metrics_tokens = hashed(&[METRICS_TOKEN]);
    })
    .await;
    let http = client();
    let page = http.get(format!("{}/dashboard", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 401);
    assert!(page.text().await.unwrap().contains("action=\"/auth/login\""), "the dashboard asks for a token");

    let wrong = http
        .post(format!("{}/auth/login", server.base))
        .form(&[("token", "not-the-token-at-all")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let signed = http
        .post(format!("{}/auth/login", server.base))
        .header("x-forwarded-proto", "https")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let plain = http.post(format!("{}/auth/login", server.base)).form(&[("token", TOKEN)]).send().await.unwrap();
    assert!(!plain.headers()["set-cookie"].to_str().unwrap().contains("Secure"), "no Secure without TLS in front");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = |path: &str| http.get(format!("{}{path}", server.base)).header("cookie", session.clone()).send();
    assert_eq!(with_cookie("/dashboard").await.unwrap().status(), 200);
    assert_eq!(with_cookie("/metrics").await.unwrap().status(), 200);

    // The link `serve` prints: the token moves into a cookie.
    let link = http.get(format!("{}/dashboard?token={TOKEN}", server.base)).send().await.unwrap();
    assert_eq!((link.status().as_u16(), link.headers()["location"].to_str().unwrap()), (303, "/dashboard"));

    // A metrics token reads /metrics and nothing else.
    assert_eq!(
        http.get(format!("{}/metrics", server.base)).bearer_auth(METRICS_TOKEN).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/api/summary", server.base)).bearer_auth(METRICS_TOKEN).send().await.unwrap().status(),
        401
    );

    let out = http.post(format!("{}/auth/logout", server.base)).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie("/dashboard").await.unwrap().status(), 401, "the session ended on the server");

    // Guessing tokens at speed meets a wall.
    let mut statuses = Vec::new();
    for i in 0..25 {
        let r = http
            .post(format!("{}/auth/login", server.base))
            .form(&[("token", format!("guess-number-{i:08}"))])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_origins_floods_and_stalls_are_refused_with_clear_answers() {
    let dir = temp_dir("sec-collect");
    let server = Running::start(dir.path(), |s| {
        s.guard = CollectGuard {
            origins: AllowedOrigins::parse(
                r#"{"shop-1": ["https://shop.example"], "shop-2": ["https://blog.example"]}"#,
            )
            .unwrap(),
            per_client_per_minute: 5,
            per_site_events_per_minute: 1000,
            ..CollectGuard::default()
        };
        s.guard.site_tokens.insert("shop-1".into(), hashed(&["shop-1-server-token"]));
    })
    .await;
    let http = client();
    let url = format!("{}/v1/batch", server.base);
    let post = |site: &str, id: &str, client_ip: &str| {
        http.post(&url).header("x-forwarded-for", client_ip).body(batch(site, id, now_ms()))
    };

    let forged = post("shop-1", "o-1", "192.0.2.1").header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.json::<Value>().await.unwrap()["error"], "origin_not_allowed");
    let page = post("shop-1", "o-2", "192.0.2.1").header("origin", "https://shop.example").send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["access-control-allow-origin"], "https://shop.example");
    let server_side = post("shop-1", "o-3", "192.0.2.1").send().await.unwrap();
    assert_eq!(server_side.status(), 403, "no Origin and no site token");
    assert_eq!(server_side.json::<Value>().await.unwrap()["error"], "site_token_required");
    let with_token = post("shop-1", "o-4", "192.0.2.1").bearer_auth("shop-1-server-token").send().await.unwrap();
    assert_eq!(with_token.status(), 200);
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "no CORS grant for a forged origin");

    // One address floods: it is limited, another is not.
    let mut flood = Vec::new();
    for i in 0..7 {
        flood.push(post("shop-2", &format!("f-{i}"), "198.51.100.4").send().await.unwrap());
    }
    let limited = flood.iter().find(|r| r.status() == 429).expect("the flood is limited");
    let wait: u32 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(post("shop-2", "g-1", "203.0.113.9").send().await.unwrap().status(), 200, "another client still passes");
    server.stop().await;

    // Not behind a trusted proxy, the header proves nothing: every request
    // counts against the peer itself.
    let server = Running::start(dir.path(), |s| {
        s.guard = CollectGuard {
            per_client_per_minute: 3,
            proxies: clickstream_backend::server::TrustedProxies::none(),
            ..CollectGuard::default()
        };
    })
    .await;
    let url = format!("{}/v1/batch", server.base);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = http
            .post(&url)
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .body(batch("shop-2", &format!("h-{i}"), now_ms()))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "rotating a forged header does not escape the limit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_its_own_listener_with_its_own_token() {
    let dir = temp_dir("sec-admin");
    let admin_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Running::start(dir.path(), |s| {
        s.api_tokens = hashed(&[TOKEN]);
        s.metrics_tokens = hashed(&[METRICS_TOKEN]);
        s.admin_bind = Some(format!("127.0.0.1:{admin_port}"));
    })
    .await;
    let http = client();
    let admin = format!("http://127.0.0.1:{admin_port}");
    assert_eq!(
        http.get(format!("{admin}/metrics")).send().await.unwrap().status(),
        401,
        "metrics tokens are configured"
    );
    let scraped = http.get(format!("{admin}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("clickstream_events_accepted_total"));
    assert_eq!(http.get(format!("{admin}/health")).send().await.unwrap().status(), 200);
    assert_eq!(
        http.get(format!("{admin}/api/summary")).bearer_auth(TOKEN).send().await.unwrap().status(),
        404,
        "only metrics and health there"
    );
    assert_eq!(http.get(format!("{admin}/v1/batch")).send().await.unwrap().status(), 404);
    assert_eq!(
        http.get(format!("{}/metrics", server.base)).send().await.unwrap().status(),
        401,
        "the main listener still asks"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_site_flood_leaves_the_other_sites_their_share() {
    let dir = temp_dir("sec-sites");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    let mut state = AppState::new(
        log,
        CollectConfig::new("k", "backend"),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(1_732_262_400_000)),
    );
    state.guard = CollectGuard { per_site_events_per_minute: 3, ..CollectGuard::unlimited() };
    let router = app(Arc::new(state));
    let send = |site: &str, id: &str| {
        let router = router.clone();
        let body = batch(site, id, 1_732_262_399_000);
        async move { router.oneshot(Request::post("/v1/batch").body(Body::from(body)).unwrap()).await.unwrap().status() }
    };
    let mut noisy = Vec::new();
    for i in 0..5 {
        noisy.push(send("noisy", &format!("n-{i}")).await);
    }
    assert_eq!(noisy, [200, 200, 200, 429, 429]);
    assert_eq!(send("quiet", "q-1").await, 200);
}

/// A stream that takes records and never acknowledges them.
struct Stalled;

#[async_trait]
impl EventStream for Stalled {
    fn partitions(&self, _: Topic) -> u32 {
        1
    }
    async fn produce(&self, _: Vec<Record>) -> Result<(), StreamError> {
        std::future::pending().await
    }
    async fn fetch(&self, _: Topic, _: u32, _: u64, _: usize) -> Result<Vec<Fetched>, StreamError> {
        Ok(Vec::new())
    }
    async fn end_offset(&self, _: Topic, _: u32) -> Result<u64, StreamError> {
        Ok(0)
    }
    async fn commit(&self, _: &str, _: Topic, _: u32, _: u64) -> Result<(), StreamError> {
        Ok(())
    }
    async fn committed(&self, _: &str, _: Topic, _: u32) -> Result<Option<u64>, StreamError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_stalled_stream_is_a_503_with_retry_after_within_the_bound() {
    let mut state = AppState::new(
        Arc::new(Stalled),
        CollectConfig::new("k", "backend"),
        Arc::new(Metrics::new()),
        Arc::new(FixedClock::new(1_732_262_400_000)),
    );
    state.guard = CollectGuard { ack_timeout: Duration::from_millis(300), ..CollectGuard::unlimited() };
    let started = Instant::now();
    let request = Request::post("/v1/batch").body(Body::from(batch("shop-1", "s-1", 1_732_262_399_000))).unwrap();
    let response = app(Arc::new(state)).oneshot(request).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_eq!(body["error"], "overloaded");
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}, not hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let dir = temp_dir("sec-slow");
    let server = Running::start(dir.path(), |s| {
        s.connections.header_timeout = Duration::from_secs(1);
        s.guard.body_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.addr;
    let (headers_cut, body_answer) = tokio::task::spawn_blocking(move || {
        // Slowloris: headers a byte at a time, never finished.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        slow.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n").unwrap();
        let started = Instant::now();
        let mut cut = None;
        while started.elapsed() < Duration::from_secs(8) {
            if slow.write_all(b"X").is_err() {
                cut = Some(started.elapsed());
                break;
            }
            let mut buf = [0u8; 512];
            match slow.read(&mut buf) {
                Ok(0) => {
                    cut = Some(started.elapsed());
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    cut = Some(started.elapsed());
                    break;
                }
            }
        }
        // A body announced and never sent.
        let mut trickle = TcpStream::connect(addr).unwrap();
        trickle.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        trickle.write_all(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"v\":1").unwrap();
        let mut answer = Vec::new();
        let _ = trickle.read_to_end(&mut answer);
        (cut, String::from_utf8_lossy(&answer).into_owned())
    })
    .await
    .unwrap();
    let cut = headers_cut.expect("the slowloris connection was never closed");
    assert!(cut < Duration::from_secs(5), "cut after {cut:?}");
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_ingest_is_refused_in_any_spelling_and_after_a_restart() {
    let dir = temp_dir("sec-ingest");
    let signed = || {
        IngestAuth::Signed(vec![Redacted(SECRET.as_bytes().to_vec()), Redacted(PREVIOUS_SECRET.as_bytes().to_vec())])
    };
    let server = Running::start(dir.path(), |s| s.ingest_auth = signed()).await;
    let http = client();
    let url = format!("{}/ingest", server.base);
    let body = json!({"events": [], "bad_rows": [], "nonce": "n-1"}).to_string();
    let now = now_ms();
    let signature = sign(SECRET.as_bytes(), now, body.as_bytes());
    let send = |signature: String, body: String| {
        http.post(&url).header(TIMESTAMP_HEADER, now.to_string()).header(SIGNATURE_HEADER, signature).body(body).send()
    };
    assert_eq!(send(signature.clone(), body.clone()).await.unwrap().status(), 200);
    let again = send(signature.clone(), body.clone()).await.unwrap();
    assert_eq!(again.status(), 401);
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "signature_replayed");
    let upper = format!("v1={}", signature.trim_start_matches("v1=").to_uppercase());
    assert_eq!(send(upper.clone(), body.clone()).await.unwrap().status(), 401, "upper-case hex is the same signature");
    // The previous secret is still good during a rotation.
    let rotated = json!({"events": [], "bad_rows": [], "nonce": "n-2"}).to_string();
    assert_eq!(
        send(sign(PREVIOUS_SECRET.as_bytes(), now, rotated.as_bytes()), rotated.clone()).await.unwrap().status(),
        200
    );
    let unknown = json!({"events": [], "bad_rows": [], "nonce": "n-3"}).to_string();
    assert_eq!(send(sign(b"someone-elses", now, unknown.as_bytes()), unknown).await.unwrap().status(), 401);
    server.stop().await;

    let server = Running::start(dir.path(), |s| s.ingest_auth = signed()).await;
    let url = format!("{}/ingest", server.base);
    let after = http
        .post(&url)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, upper)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "a restart remembers the signatures it saw");

    // A request whose signature headers fail is refused before its body
    // is read: it announces 1 MB and sends none, and is answered at once.
    let addr = server.addr;
    let (answer, waited) = tokio::task::spawn_blocking(move || {
        let mut raw = TcpStream::connect(addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let started = Instant::now();
        raw.write_all(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nx-clickstream-timestamp: 1\r\nx-clickstream-signature: v1=00\r\n\r\n").unwrap();
        let mut buf = [0u8; 256];
        let n = raw.read(&mut buf).unwrap_or(0);
        (String::from_utf8_lossy(&buf[..n]).into_owned(), started.elapsed())
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    server.stop().await;
}

#[test]
fn serve_without_a_configured_token_prints_a_working_dashboard_link() {
    let dir = temp_dir("sec-link");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["serve", "--port", "0", "--no-aggregate", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("CLICKSTREAM_API_TOKENS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut link = None;
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) > 0 {
        if let Some(at) = line.find("http://") {
            link = Some(line[at..].trim().to_string());
            break;
        }
        line.clear();
    }
    let link = link.expect("serve printed no dashboard link");
    assert!(link.contains("/dashboard?token="), "{link}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = client();
        let base = link.split("/dashboard").next().unwrap().to_string();
        assert_eq!(http.get(format!("{base}/api/summary")).send().await.unwrap().status(), 401);
        let opened = http.get(&link).send().await.unwrap();
        assert_eq!(opened.status(), 303);
        let session = opened.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        let page = http.get(format!("{base}/dashboard")).header("cookie", session).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Sign out"));
    });
    let _ = child.kill();
    let mut stderr = String::new();
    let _ = child.wait();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let token = link.rsplit('=').next().unwrap();
    assert!(!stderr.contains(token), "the token reached the log");
}

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// Multi-threaded: the aggregator's Polars work needs it. The log captured
// is this thread's, where the router's requests run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_ip_and_no_past_salt_is_left_on_disk_or_in_the_log() {
    const IP: &str = "198.51.100.77";
    let day0 = 1_732_262_400_000;
    let dir: TempDir = temp_dir("sec-salts");
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let clock = Arc::new(FixedClock::new(day0));
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log"), 2).unwrap());
    let salts = Arc::new(SaltStore::open(dir.path(), clock.now_ms()).unwrap());
    let mut collect = CollectConfig::new("unused", "backend");
    collect.ip_salt = DailySalt::from_source(salts.clone());
    let mut state = AppState::new(log.clone(), collect, Arc::new(Metrics::new()), clock.clone());
    state.access = Access::Open;
    let router = app(Arc::new(state));
    let send = |id: &str, at: i64| {
        let mut request = Request::post("/v1/batch")
            .header("x-forwarded-for", IP)
            .header("cf-connecting-ip", IP)
            .body(Body::from(batch("shop-1", id, at)))
            .unwrap();
        // As the socket would: a proxy on loopback forwarded it.
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5000))));
        let router = router.clone();
        async move { router.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(send("d0", day0).await, 200);
    let salt_file = salts.dir().join("2024-11-22.salt");
    let day0_salt = std::fs::read_to_string(&salt_file).unwrap();
    assert_eq!(day0_salt.len(), 64);
    for day in 1..=2 {
        clock.set(day0 + day * DAY_MS);
        assert_eq!(send(&format!("d{day}"), day0 + day * DAY_MS).await, 200);
    }
    assert!(!salt_file.exists(), "day 0's salt is deleted once day 2 began");

    // Through Bronze and Silver.
    let mut aggregator =
        Aggregator::open(log, AggregateConfig::new(dir.path()), Arc::new(Metrics::new()), clock.clone()).await.unwrap();
    aggregator.drain().await.unwrap();
    drop(aggregator);
    let silver = clickstream_backend::storage::range::silver(dir.path(), None, day0 - DAY_MS, day0 + 3 * DAY_MS)
        .unwrap()
        .expect("Silver written")
        .collect()
        .unwrap();
    assert_eq!(silver.height(), 3);
    let hashes: std::collections::HashSet<_> =
        silver.column("ip_hash").unwrap().str().unwrap().iter().flatten().map(str::to_string).collect();
    assert_eq!(hashes.len(), 3, "a new hash each day: {hashes:?}");

    let raw_salt = hex::decode(day0_salt.trim()).unwrap();
    let files = every_file(dir.path());
    assert!(files.iter().any(|(p, _)| p.contains("silver")), "Silver is among the files scanned");
    for (path, bytes) in &files {
        assert!(!contains(bytes, IP.as_bytes()), "{path} holds the raw IP");
        assert!(
            !contains(bytes, day0_salt.trim().as_bytes()) && !contains(bytes, &raw_salt),
            "{path} holds day 0's salt"
        );
    }
    let logged = logs.0.lock().unwrap().clone();
    assert!(!contains(&logged, IP.as_bytes()), "the log holds the raw IP");
    assert!(!contains(&logged, day0_salt.trim().as_bytes()), "the log holds a salt");
}
