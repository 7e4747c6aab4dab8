//! The Cloudflare Worker: `POST /v1/batch`, CORS preflights and
//! `GET /health`, over the same collect core the backend mounts. Requests
//! and answers are translated here; what to accept, whom to limit and what
//! to answer is decided in `collect` and `edge`.

use std::cell::RefCell;
use std::rc::Rc;

use clickstream_schema::signing::signature_header;
use clickstream_schema::{DailySalt, RequestMeta};
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{Headers, Request, Response, ResponseInit};
use worker::{event, Context, Delay, Env, KvStore, Result, SecureTransport, Socket};

use crate::collect;
use crate::edge::{
    answer_after_ingest, answer_after_produce, salt_unavailable, todays_salt, Answer, Delivery, EdgeConfig,
    IngestRequest, IpSalts, RateLimiter, SaltCache, SaltStore, IP_SALTS_BINDING,
};
use crate::fluvio::{Endpoint, FluvioTarget, Producer, ProducerCache, Transport};

thread_local! {
    // One isolate's buckets; see `RateLimiter` for what that covers.
    static LIMITER: RefCell<RateLimiter> = RefCell::new(RateLimiter::default());
    // One isolate's salt of the day from KV; see `SaltCache`. Shared by
    // reference: requests of the isolate interleave at their awaits.
    static SALTS: Rc<RefCell<SaltCache>> = Rc::default();
    // One isolate's partition leaders and Produce versions; see `fluvio`.
    static FLUVIO: Rc<RefCell<ProducerCache>> = Rc::default();
    // The /ingest secret imported into Web Crypto once per isolate (and
    // again if the secret changes), with the bytes it was imported from.
    static SIGNING_KEY: RefCell<Option<(Vec<u8>, JsValue)>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
extern "C" {
    // Web Crypto's CSPRNG, a global of the Workers runtime.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    fn get_random_values(array: &Uint8Array) -> std::result::Result<(), JsValue>;

    // Web Crypto's HMAC, native code: hashing a forwarded batch in the wasm
    // was an eighth of the Worker's CPU time.
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey, catch)]
    fn import_key(
        format: &str,
        key: &Uint8Array,
        algorithm: &JsValue,
        extractable: bool,
        usages: &JsValue,
    ) -> std::result::Result<Promise, JsValue>;
    // The runtime's fetch, given the request's parts: a `worker::Request`
    // built first parsed its URL and read its headers back, a tenth of the
    // Worker's CPU time per forwarded batch.
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(url: &str, init: &Object) -> std::result::Result<Promise, JsValue>;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = sign, catch)]
    fn subtle_sign(algorithm: &str, key: &JsValue, data: &Uint8Array) -> std::result::Result<Promise, JsValue>;
}

const PREFLIGHT_MAX_AGE_S: &str = "86400";

// The runtime's own Request and Response, not the `worker` crate's: its
// Request reads the URL, method, headers and `cf` object into Rust up front,
// and its Response is built back from Rust; both were a tenth of the
// Worker's CPU time per batch. Only what an answer needs is read here.
#[event(fetch)]
pub async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let salts = env.kv(IP_SALTS_BINDING).ok().map(KvSalts);
    let config = EdgeConfig::from_vars(
        |name| env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok(),
        salts.is_some(),
    );
    let config = match config {
        Ok(config) => config,
        Err(problem) => {
            worker::console_error!("clickstream-edge misconfigured: {problem}");
            return respond(Answer::error(500, "misconfigured", problem), None);
        }
    };
    let origin = req.headers().get("origin")?;
    // Paths end in the route's own: the Worker may be mounted under a prefix
    // of the site's domain (see wrangler.toml).
    let url = req.url();
    let path = path_of(&url);
    match req.method().as_str() {
        "OPTIONS" => preflight(&config, origin),
        "GET" if path.ends_with("/health") => {
            respond(Answer { status: 200, body: serde_json::json!({"status": "ok"}), retry_after_s: None }, None)
        }
        "POST" if path.ends_with("/v1/batch") => {
            let answer = collect_batch(req, &config, salts.as_ref(), origin.as_deref()).await;
            // CORS: the tracker's page may read the answer when its origin is allowed.
            let allowed = origin.filter(|o| config.origins.allows_any_site(o));
            respond(answer, allowed.as_deref())
        }
        _ => respond(Answer::error(404, "not_found", "routes: POST /v1/batch, GET /health"), None),
    }
}

/// The path of a URL as the runtime serializes it (`scheme://host/path?query`).
fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

async fn collect_batch(req: Request, config: &EdgeConfig, salts: Option<&KvSalts>, origin: Option<&str>) -> Answer {
    let now = worker::Date::now().as_millis() as i64;
    let headers = req.headers();
    let header = |name: &str| headers.get(name).ok().flatten();
    let ip = header("cf-connecting-ip");
    if let Err(wait_s) =
        LIMITER.with(|l| l.borrow_mut().check(ip.as_deref().unwrap_or("unknown"), config.rate_per_minute, now))
    {
        return Answer {
            retry_after_s: Some(wait_s),
            ..Answer::error(429, "rate_limited", "too many requests from this visitor")
        };
    }
    let limit = config.limits.max_body_bytes;
    // A declared length over the limit is refused before the body is read.
    if header("content-length").and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l > limit) {
        return too_large(limit);
    }
    let cf = EdgeFacts::of(&req);
    let meta = RequestMeta {
        received_at: now,
        user_agent: header("user-agent"),
        ip,
        country: cf.text("country").or_else(|| header("cf-ipcountry")),
        colo: cf.text("colo"),
        asn: cf.number("asn").map(|n| n as u32),
        tls_version: cf.text("tlsVersion"),
    };
    let body = match body_of(&req).await {
        Ok(body) if body.len() > limit => return too_large(limit),
        Ok(body) => body,
        Err(e) => return Answer::error(400, "unreadable_body", format!("{e:?}")),
    };
    let ip_salt = match (&config.ip_salts, salts) {
        (IpSalts::Derived(salt), _) => salt.clone(),
        (IpSalts::Kv, Some(store)) => match todays_salt(store, &SALTS.with(Rc::clone), now, random_salt).await {
            Ok(today) => {
                if let Some(problem) = today.replaced {
                    worker::console_warn!("clickstream-edge: {IP_SALTS_BINDING} {problem}");
                }
                DailySalt::fixed(today.salt)
            }
            Err(problem) => {
                worker::console_error!("clickstream-edge: no IP-hash salt: {problem}; the tracker is told to retry");
                return salt_unavailable(&problem);
            }
        },
        (IpSalts::Kv, None) => return salt_unavailable(&format!("{IP_SALTS_BINDING} is not bound")),
    };
    let collected = match collect(&body, &meta, &config.collect_config(ip_salt)) {
        Ok(collected) => collected,
        Err(e) => return Answer::error(e.http_status(), e.code(), e.to_string()),
    };
    if !config.origins.allows(&collected.site_id, origin) {
        let message =
            format!("origin {} may not send events for site {:?}", origin.unwrap_or_default(), collected.site_id);
        return Answer::error(403, "origin_not_allowed", message);
    }
    match &config.delivery {
        Delivery::Ingest { url, secret } => {
            let status = forward(&collected, url, secret, now).await;
            match status {
                Some(200..=299) => {}
                Some(status) => {
                    worker::console_warn!("clickstream-edge: /ingest answered {status}; the tracker is told to retry")
                }
                None => worker::console_warn!("clickstream-edge: /ingest unreachable; the tracker is told to retry"),
            }
            answer_after_ingest(&collected, status)
        }
        Delivery::Fluvio(target) => {
            let produced = produce(target, &collected, now).await;
            if let Err(problem) = &produced {
                worker::console_warn!("clickstream-edge: {problem}; the tracker is told to retry");
            }
            answer_after_produce(&collected, produced)
        }
    }
}

/// Produces the batch to Fluvio over Workers sockets.
async fn produce(target: &FluvioTarget, collected: &crate::Collected<'_>, now: i64) -> std::result::Result<(), String> {
    let cache = FLUVIO.with(Rc::clone);
    let producer = Producer { transport: &WorkerSockets { tls: target.tls }, target, cache: &cache };
    producer.produce(collected, now).await.map(|_| ()).map_err(|e| e.to_string())
}

/// TCP (or TLS) through the Workers runtime's `connect()`, and its timer.
struct WorkerSockets {
    tls: bool,
}

impl Transport for WorkerSockets {
    type Io = Socket;

    async fn connect(&self, to: &Endpoint) -> std::io::Result<Socket> {
        let transport = if self.tls { SecureTransport::On } else { SecureTransport::Off };
        let socket = Socket::builder()
            .secure_transport(transport)
            .connect(to.host.clone(), to.port)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Resolves once connected (and the TLS handshake is done), or fails
        // with why: a refused connection is an error here, not at the first read.
        socket.opened().await.map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(socket)
    }

    async fn sleep_ms(&self, ms: u32) {
        Delay::from(std::time::Duration::from_millis(ms.into())).await;
    }
}

/// The request's `cf` object, read field by field: the `worker` crate's
/// typed getters panic when a field is absent (no `tlsVersion` on plain
/// HTTP, for example), and a panic would cost the isolate its instance.
struct EdgeFacts(JsValue);

impl EdgeFacts {
    fn of(req: &Request) -> EdgeFacts {
        EdgeFacts(Reflect::get(req, &JsValue::from_str("cf")).unwrap_or(JsValue::UNDEFINED))
    }

    fn field(&self, name: &str) -> Option<JsValue> {
        if !self.0.is_object() {
            return None;
        }
        Reflect::get(&self.0, &JsValue::from_str(name)).ok()
    }

    fn text(&self, name: &str) -> Option<String> {
        self.field(name)?.as_string().filter(|s| !s.is_empty())
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.field(name)?.as_f64().filter(|n| n.is_finite() && *n >= 0.0)
    }
}

/// The `IP_SALTS` KV namespace, for `edge::todays_salt`.
struct KvSalts(KvStore);

impl SaltStore for KvSalts {
    async fn read(&self, key: &str) -> std::result::Result<Option<String>, String> {
        self.0.get(key).text().await.map_err(|e| format!("{IP_SALTS_BINDING}: reading {key}: {e}"))
    }

    async fn write(&self, key: &str, value: &str, ttl_s: u64) -> std::result::Result<(), String> {
        let put = self.0.put(key, value).map_err(|e| format!("{IP_SALTS_BINDING}: writing {key}: {e}"))?;
        put.expiration_ttl(ttl_s).execute().await.map_err(|e| format!("{IP_SALTS_BINDING}: writing {key}: {e}"))
    }
}

/// 32 bytes from Web Crypto's CSPRNG: a new day's salt.
fn random_salt() -> std::result::Result<[u8; 32], String> {
    let array = Uint8Array::new_with_length(32);
    get_random_values(&array).map_err(|e| format!("crypto.getRandomValues failed: {e:?}"))?;
    let mut salt = [0; 32];
    array.copy_to(&mut salt);
    Ok(salt)
}

/// POSTs to the backend's `/ingest`; its status, or `None` if unreachable.
async fn forward(collected: &crate::Collected<'_>, url: &str, secret: &[u8], now: i64) -> Option<u16> {
    let nonce = format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
    let request = IngestRequest::new(collected, now, &nonce);
    // One copy into JavaScript: the body is the message's tail.
    let message = Uint8Array::from(request.signed_message().as_slice());
    let body = message.subarray(message.length() - request.body.len() as u32, message.length());
    let signature = match hmac_sha256(secret, &message).await {
        Ok(mac) => signature_header(&mac),
        Err(problem) => {
            worker::console_error!("clickstream-edge: cannot sign for /ingest: {problem}");
            return None;
        }
    };
    let headers = Object::new();
    for (name, value) in request.headers(signature) {
        Reflect::set(&headers, &name.into(), &value.into()).ok()?;
    }
    let init = Object::new();
    Reflect::set(&init, &"method".into(), &"POST".into()).ok()?;
    Reflect::set(&init, &"headers".into(), &headers).ok()?;
    Reflect::set(&init, &"body".into(), &body).ok()?;
    let response = JsFuture::from(global_fetch(url, &init).ok()?).await.ok()?;
    Reflect::get(&response, &"status".into()).ok()?.as_f64().map(|status| status as u16)
}

/// HMAC-SHA256 of `message` under `secret`, by Web Crypto.
async fn hmac_sha256(secret: &[u8], message: &Uint8Array) -> std::result::Result<Vec<u8>, String> {
    let problem = |e: JsValue| format!("{e:?}");
    let cached =
        SIGNING_KEY.with(|k| k.borrow().as_ref().filter(|(bytes, _)| bytes == secret).map(|(_, key)| key.clone()));
    let key = match cached {
        Some(key) => key,
        None => {
            let algorithm = Object::new();
            Reflect::set(&algorithm, &"name".into(), &"HMAC".into()).map_err(problem)?;
            Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into()).map_err(problem)?;
            let usages = Array::of1(&"sign".into());
            let imported = import_key("raw", &Uint8Array::from(secret), &algorithm, false, &usages).map_err(problem)?;
            let key = JsFuture::from(imported).await.map_err(problem)?;
            SIGNING_KEY.with(|k| *k.borrow_mut() = Some((secret.to_vec(), key.clone())));
            key
        }
    };
    let signed = subtle_sign("HMAC", &key, message).map_err(problem)?;
    let mac = JsFuture::from(signed).await.map_err(problem)?;
    Ok(Uint8Array::new(&mac).to_vec())
}

fn too_large(limit: usize) -> Answer {
    Answer::error(413, "body_too_large", format!("the body is over {limit} bytes"))
}

/// The request's body, whole.
async fn body_of(req: &Request) -> std::result::Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(req.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

fn preflight(config: &EdgeConfig, origin: Option<String>) -> Result<Response> {
    let Some(origin) = origin.filter(|o| config.origins.allows_any_site(o)) else {
        return respond(Answer::error(403, "origin_not_allowed", "this origin may not send events"), None);
    };
    let headers = cors_headers(Some(&origin))?;
    headers.set("access-control-allow-methods", "POST, OPTIONS")?;
    headers.set("access-control-allow-headers", "content-type")?;
    headers.set("access-control-max-age", PREFLIGHT_MAX_AGE_S)?;
    let init = ResponseInit::new();
    init.set_status(204);
    init.set_headers(&headers);
    Ok(Response::new_with_opt_str_and_init(None, &init)?)
}

fn cors_headers(origin: Option<&str>) -> Result<Headers> {
    let headers = Headers::new()?;
    if let Some(origin) = origin {
        headers.set("access-control-allow-origin", origin)?;
        headers.set("vary", "origin")?;
    }
    Ok(headers)
}

fn respond(answer: Answer, origin: Option<&str>) -> Result<Response> {
    let headers = cors_headers(origin)?;
    headers.set("content-type", "application/json")?;
    if let Some(seconds) = answer.retry_after_s {
        headers.set("retry-after", &seconds.to_string())?;
    }
    let init = ResponseInit::new();
    init.set_status(answer.status);
    init.set_headers(&headers);
    Ok(Response::new_with_opt_str_and_init(Some(&answer.body.to_string()), &init)?)
}
