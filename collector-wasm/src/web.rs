//! The wasm side of the browser glue: the `Core` class that the JS entry
//! point (`js/loader.js`) drives, and the browser's storage and randomness.
//! Rules live in the plain-Rust modules; this file only translates JS
//! values. Listeners, timers and requests are in the JS entry point: in
//! JS they are a few hundred bytes, through wasm-bindgen several KB, and
//! the tracker has a 25 KB budget.

use clickstream_schema::EventType;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{HtmlDocument, Storage, Window};

use crate::click::{bounded_text, click_props};
use crate::consent::ConsentMode;
use crate::props::{cart_line, from_pairs, purchase_line, PropValue};
use crate::json;
use crate::queue::Chunk;
use crate::{Options, Platform, Tracker};

#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// Storage in localStorage, or in first-party cookies where localStorage
/// is unavailable (disabled, or throwing in some private modes); the
/// queue, too large for a cookie, then lives in memory only.
pub struct Web {
    storage: Option<Storage>,
    cookies: Option<HtmlDocument>,
}

impl Web {
    fn new(window: &Window) -> Web {
        let storage = window.local_storage().ok().flatten().filter(|s| {
            // Some browsers hand out a storage that throws on write.
            s.set_item("cs__probe", "1").is_ok() && s.remove_item("cs__probe").is_ok()
        });
        let cookies = window.document().and_then(|d| d.dyn_into::<HtmlDocument>().ok());
        Web { storage, cookies }
    }

    fn set_cookie(&self, key: &str, value: &str, max_age_s: i64) {
        if let Some(doc) = &self.cookies {
            let value = String::from(js_sys::encode_uri_component(value));
            let mut cookie = String::from(key);
            cookie.push('=');
            cookie.push_str(&value);
            cookie.push_str("; path=/; SameSite=Lax; max-age=");
            crate::json::int(&mut cookie, max_age_s);
            let _ = doc.set_cookie(&cookie);
        }
    }
}

impl Platform for Web {
    fn load(&self, key: &str) -> Option<String> {
        if let Some(s) = &self.storage {
            return s.get_item(key).ok().flatten();
        }
        let all = self.cookies.as_ref()?.cookie().ok()?;
        let value = all.split(';').find_map(|c| c.trim_start().strip_prefix(key)?.strip_prefix('='))?;
        js_sys::decode_uri_component(value).ok().map(String::from)
    }

    fn save(&mut self, key: &str, value: &str) {
        match &self.storage {
            Some(s) => {
                let _ = s.set_item(key, value);
            }
            None if !key.ends_with("_queue") => self.set_cookie(key, value, 365 * 24 * 3600),
            None => {}
        }
    }

    fn delete(&mut self, key: &str) {
        match &self.storage {
            Some(s) => {
                let _ = s.remove_item(key);
            }
            None => self.set_cookie(key, "", 0),
        }
    }

    fn new_id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        let drawn = web_sys::window()
            .and_then(|w| w.crypto().ok())
            .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
        if !drawn {
            for b in &mut bytes {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        crate::ids::uuid_v4(bytes)
    }

    fn random(&mut self) -> f64 {
        js_sys::Math::random()
    }
}

// ---------------------------------------------------------------- values

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A string, or a number written as one (ids are sometimes numbers).
fn text(v: &JsValue) -> Option<String> {
    v.as_string().or_else(|| {
        let n = v.as_f64().filter(|n| n.is_finite())?;
        let mut out = String::new();
        crate::json::number(&mut out, n);
        Some(out)
    })
}

/// The own properties of a JS object, as the props reader takes them.
fn pairs(obj: &JsValue) -> Vec<(String, PropValue)> {
    let mut out = Vec::new();
    if !obj.is_object() {
        return out;
    }
    for entry in Object::entries(obj.unchecked_ref()).iter() {
        let entry: Array = entry.unchecked_into();
        let (Some(key), value) = (entry.get(0).as_string(), entry.get(1)) else { continue };
        let value = if let Some(s) = value.as_string() {
            PropValue::Text(s)
        } else if let Some(n) = value.as_f64() {
            PropValue::Number(n)
        } else {
            // Booleans, objects, arrays; undefined and functions have no JSON.
            match js_sys::JSON::stringify(&value).ok().and_then(|s| s.as_string()) {
                Some(json) => PropValue::Json(json),
                None => continue,
            }
        };
        out.push((key, value));
    }
    out
}

fn options_from(js: &JsValue) -> Options {
    let s = |key| text(&get(js, key));
    let n = |key| get(js, key).as_f64().filter(|n| n.is_finite() && *n >= 0.0);
    let b = |key, default| get(js, key).as_bool().unwrap_or(default);
    let mut o = Options::new(s("endpoint").unwrap_or_default(), s("siteId").unwrap_or_default());
    o.batch_size = n("batchSize").map_or(o.batch_size, |v| (v as usize).max(1));
    o.flush_interval_ms = n("flushIntervalMs").map_or(o.flush_interval_ms, |v| v as u32);
    o.max_queue = n("maxQueue").map_or(o.max_queue, |v| (v as usize).max(1));
    o.max_request_bytes = n("maxRequestBytes").map_or(o.max_request_bytes, |v| v as usize);
    o.session_timeout_ms = n("sessionTimeoutMinutes").map_or(o.session_timeout_ms, |v| (v * 60_000.0) as i64);
    o.cookieless = b("cookieless", false);
    if s("consent").as_deref() == Some("opt-in") {
        o.consent = ConsentMode::OptIn;
    }
    o.respect_do_not_track = b("respectDoNotTrack", false);
    o.keep_query = b("keepQuery", false);
    o.hash_page_views = b("hashPageViews", false);
    o.auto_page_views = b("autoPageViews", true);
    o.autocapture = b("autocapture", true);
    o.currency = s("currency").unwrap_or(o.currency);
    o.storage_prefix = s("storagePrefix").unwrap_or(o.storage_prefix);
    o
}

// ---------------------------------------------------------------- the class

/// The tracker, as the JS entry point sees it. Times are JS milliseconds.
#[wasm_bindgen]
pub struct Core {
    tracker: Tracker<Web>,
    /// Requests sent and not yet answered, by id.
    requests: Vec<(u32, Chunk)>,
    last_request: u32,
}

#[wasm_bindgen]
impl Core {
    /// `new Core(options, privacySignal)`: throws a readable message when
    /// the options cannot work. `privacySignal`: the browser sends
    /// Do-Not-Track or Global Privacy Control.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, privacy_signal: bool) -> Result<Core, JsValue> {
        let options = options_from(&options);
        if let Some(problem) = options.problem() {
            return Err(JsValue::from_str(problem));
        }
        let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
        let honoured = options.respect_do_not_track && privacy_signal;
        Ok(Core { tracker: Tracker::new(options, Web::new(&window), honoured), requests: Vec::new(), last_request: 0 })
    }

    #[wasm_bindgen(js_name = setContext)]
    pub fn set_context(&mut self, screen: &str, lang: &str, tz: &str) {
        let context = clickstream_schema::Context { screen: screen.into(), lang: lang.into(), tz: tz.into() };
        self.tracker.set_context(context);
    }

    /// The visitor is on this page now; true when it is another page.
    #[wasm_bindgen(js_name = setPage)]
    pub fn set_page(&mut self, url: &str, title: &str, referrer: &str) -> bool {
        self.tracker.set_page(url, title, referrer)
    }

    #[wasm_bindgen(js_name = pageUrl)]
    pub fn page_url(&self) -> String {
        self.tracker.page_url().to_string()
    }

    /// Records an event (`page_view`, `add_to_cart`, `custom`, ...) with the
    /// site's props. Returns whether a batch is due.
    pub fn record(&mut self, event_type: &str, props: JsValue, now: f64) -> bool {
        let Some(event_type) = EventType::parse(event_type) else {
            self.tracker.count_error();
            return false;
        };
        let (mut props, extra) = from_pairs(pairs(&props));
        let currency = &self.tracker.options().currency;
        match event_type {
            EventType::AddToCart | EventType::RemoveFromCart => props = cart_line(props, currency),
            EventType::BeginCheckout if props.currency.is_none() => props.currency = Some(currency.clone()),
            EventType::Search => props.query = props.query.map(|q| bounded_text(&q, 200)),
            // One event per order line; its revenue is price × quantity.
            EventType::Purchase => props = purchase_line(props, currency),
            _ => {}
        }
        self.tracker.record(event_type, props, &extra, now as i64)
    }

    /// A click on `tag` (its text, a link's href, its `data-*` as props).
    pub fn click(&mut self, tag: &str, text: &str, href: Option<String>, data: JsValue, now: f64) -> bool {
        let (props, extra) = from_pairs(pairs(&data));
        let props = click_props(props, tag, text, href.as_deref(), self.tracker.options().keep_query);
        self.tracker.record(EventType::Click, props, &extra, now as i64)
    }

    pub fn identify(&mut self, user_id: JsValue, now: f64) -> bool {
        let user_id = text(&user_id).unwrap_or_default();
        self.tracker.identify(&user_id, now as i64)
    }

    /// The visitor's answer; true when collection just started.
    pub fn consent(&mut self, granted: bool) -> bool {
        self.tracker.set_consent(granted)
    }

    /// The body of the next request, if one is due; its id is then
    /// `requestId()`, to give to `settle` or `unsent`.
    #[wasm_bindgen(js_name = nextRequest)]
    pub fn next_request(&mut self, now: f64) -> Option<String> {
        let mut chunk = self.tracker.next_request(now as i64)?;
        self.last_request = self.last_request.wrapping_add(1);
        // The body goes to JS; settling needs only the chunk's range.
        let body = std::mem::take(&mut chunk.body);
        self.requests.push((self.last_request, chunk));
        Some(body)
    }

    #[wasm_bindgen(js_name = requestId)]
    pub fn request_id(&self) -> u32 {
        self.last_request
    }

    fn take(&mut self, id: u32) -> Option<Chunk> {
        let at = self.requests.iter().position(|(i, _)| *i == id)?;
        Some(self.requests.swap_remove(at).1)
    }

    /// A request's outcome: HTTP status (0: network error) and
    /// Retry-After in ms (negative: none). Returns the wait before the
    /// retry in ms, or -1 when none is due.
    pub fn settle(&mut self, id: u32, status: u16, retry_after_ms: f64, now: f64) -> f64 {
        let Some(chunk) = self.take(id) else { return -1.0 };
        let retry_after = (retry_after_ms >= 0.0).then_some(retry_after_ms as u64);
        self.tracker.settle(&chunk, status, retry_after, now as i64).map_or(-1.0, |ms| ms as f64)
    }

    /// The request could not be handed to the browser.
    pub fn unsent(&mut self, id: u32) {
        if let Some(chunk) = self.take(id) {
            self.tracker.unsent(&chunk);
        }
    }

    pub fn online(&mut self) {
        self.tracker.online();
    }

    #[wasm_bindgen(js_name = inFlight)]
    pub fn in_flight(&self) -> bool {
        self.tracker.in_flight()
    }

    pub fn waiting(&self) -> u32 {
        self.tracker.waiting() as u32
    }

    /// A full batch waits.
    pub fn due(&self) -> bool {
        self.tracker.waiting() >= self.tracker.options().batch_size
    }

    /// What the JS side needs of the options:
    /// `[endpoint, flushIntervalMs, autoPageViews, autocapture, hashPageViews]`.
    pub fn config(&self) -> Array {
        let o = self.tracker.options();
        let flags = [o.auto_page_views, o.autocapture, o.hash_page_views].map(JsValue::from_bool);
        let out = Array::of2(&JsValue::from_str(&o.endpoint), &JsValue::from_f64(o.flush_interval_ms.into()));
        for flag in flags {
            out.push(&flag);
        }
        out
    }

    #[wasm_bindgen(js_name = countError)]
    pub fn count_error(&mut self) {
        self.tracker.count_error();
    }

    /// Counters and ids as JSON, for debugging and tests.
    pub fn stats(&self) -> String {
        let s = self.tracker.stats();
        let numbers = [
            ("recorded", s.recorded),
            ("delivered", s.delivered),
            ("queued", s.queued),
            ("dropped", s.dropped),
            ("refused", s.refused),
            ("requests", s.requests),
            ("failedRequests", s.failed_requests),
            ("errors", s.errors),
        ];
        let mut out = String::from("{");
        for (key, n) in numbers {
            json::string(&mut out, key);
            out.push(':');
            json::int(&mut out, n as i64);
            out.push(',');
        }
        for (key, id) in [("anonymousId", self.tracker.anonymous_id()), ("sessionId", self.tracker.session_id())] {
            json::string(&mut out, key);
            out.push(':');
            match id {
                Some(id) => json::string(&mut out, id),
                None => out.push_str("null"),
            }
            out.push(',');
        }
        out.pop();
        out.push('}');
        out
    }
}
