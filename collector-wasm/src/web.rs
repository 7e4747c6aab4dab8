//! The wasm side of the browser glue: the functions over the page's one
//! `Core` that the JS entry point (`js/loader.js`) drives, and the device's
//! storage and randomness (`js/device.js`). Rules live in the plain-Rust modules; this file only
//! translates JS values. Listeners, timers, requests and storage calls are
//! in JS: there they are a few hundred bytes, through wasm-bindgen and
//! web-sys several KB, and the tracker has a 20 KB budget.

use std::cell::RefCell;

use clickstream_schema::{Context, EventType};
use wasm_bindgen::prelude::*;

use crate::click::{bounded_text, click_props};
use crate::json;
use crate::props::{cart_line, from_pairs, purchase_line, PropValue};
use crate::queue::Chunk;
use crate::{Options, Platform, Tracker};

/// Name/value pairs as the glue gets them from JS (`prop`).
type Pairs = Vec<(String, PropValue)>;

#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

#[wasm_bindgen(module = "/js/device.js")]
extern "C" {
    #[wasm_bindgen(js_name = localStorageWorks)]
    fn local_storage_works() -> bool;
    fn load(key: &str, in_cookies: bool) -> Option<String>;
    fn save(key: &str, value: &str, in_cookies: bool, max_age_seconds: u32);
    fn remove(key: &str, in_cookies: bool);
    #[wasm_bindgen(js_name = newId)]
    fn new_id() -> String;
}

/// A year: how long an identity cookie lives without a visit.
const COOKIE_MAX_AGE_S: u32 = 365 * 24 * 3600;

/// Storage in localStorage, or in first-party cookies where localStorage
/// is unavailable; the queue, too large for a cookie, then lives in
/// memory only.
pub struct Web {
    in_cookies: bool,
}

impl Web {
    pub fn new() -> Web {
        Web { in_cookies: !local_storage_works() }
    }
}

impl Platform for Web {
    fn load(&self, key: &str) -> Option<String> {
        load(key, self.in_cookies)
    }

    fn save(&mut self, key: &str, value: &str) {
        if !(self.in_cookies && key.ends_with("_queue")) {
            save(key, value, self.in_cookies, COOKIE_MAX_AGE_S);
        }
    }

    fn delete(&mut self, key: &str) {
        remove(key, self.in_cookies);
    }

    fn new_id(&mut self) -> String {
        new_id()
    }

    fn random(&mut self) -> f64 {
        js_sys::Math::random()
    }
}

// ---------------------------------------------------------------- the core

/// The tracker, as the JS entry point sees it (through the functions
/// below). Times are JS milliseconds.
pub struct Core {
    tracker: Tracker<Web>,
    /// Requests sent and not yet answered, by id.
    requests: Vec<(u32, Chunk)>,
    last_request: u32,
}

impl Core {
    /// The tracker, or a readable message when the options cannot work.
    /// `privacy_signal`: the browser sends Do-Not-Track or Global Privacy
    /// Control.
    pub fn new(
        options: Pairs,
        privacy_signal: bool,
        screen: String,
        lang: String,
        tz: String,
    ) -> Result<Core, &'static str> {
        let options = Options::from_pairs(options);
        if let Some(problem) = options.problem() {
            return Err(problem);
        }
        let honoured = options.respect_do_not_track && privacy_signal;
        let mut tracker = Tracker::new(options, Web::new(), honoured);
        tracker.set_context(Context { screen, lang, tz });
        Ok(Core { tracker, requests: Vec::new(), last_request: 0 })
    }

    /// The visitor is on this page now, coming from `referrer` (undefined:
    /// from the previous page, inside a single-page app). True when it is
    /// another page.
    pub fn set_page(&mut self, url: &str, title: &str, referrer: Option<String>) -> bool {
        self.tracker.set_page(url, title, referrer.as_deref())
    }

    /// Records an event (`page_view`, `click`, `add_to_cart`, `custom`,
    /// ...) with its props; a click's are the element's `data-*` with its
    /// `tag`, `text` and `href`.
    pub fn record(&mut self, event_type: &str, props: Pairs, now: f64) {
        let Some(event_type) = EventType::parse(event_type) else {
            self.tracker.count_error();
            return;
        };
        let (mut props, extra) = from_pairs(props);
        let o = self.tracker.options();
        match event_type {
            EventType::Click => props = click_props(props, o.keep_query),
            EventType::AddToCart | EventType::RemoveFromCart => props = cart_line(props, &o.currency),
            EventType::BeginCheckout if props.currency.is_none() => props.currency = Some(o.currency.clone()),
            EventType::Search => props.query = props.query.map(|q| bounded_text(&q, 200)),
            // One event per order line; its revenue is price × quantity.
            EventType::Purchase => props = purchase_line(props, &o.currency),
            _ => {}
        }
        self.tracker.record(event_type, props, &extra, now as i64);
    }

    /// `user_id`: a string, or a number (written as one).
    pub fn identify(&mut self, user_id: Option<PropValue>, now: f64) {
        let user_id = user_id.and_then(PropValue::into_text).unwrap_or_default();
        self.tracker.identify(&user_id, now as i64);
    }

    /// The visitor's answer; true when collection just started.
    pub fn consent(&mut self, granted: bool) -> bool {
        self.tracker.set_consent(granted)
    }

    /// What to do about waiting events: 0 nothing, 1 send them within the
    /// flush interval, 2 send now.
    pub fn pending(&self) -> u8 {
        self.tracker.pending() as u8
    }

    /// The body of the next request, if one is due; its id is then
    /// `requestId()`, to give to `settle` or `unanswered`. `leaving`: the page
    /// is being hidden or left, and the body goes by beacon.
    pub fn next_request(&mut self, now: f64, leaving: bool) -> Option<String> {
        let mut chunk = self.tracker.next_request(now as i64, leaving)?;
        self.last_request = self.last_request.wrapping_add(1);
        // The body goes to JS; settling needs only the chunk's range.
        let body = std::mem::take(&mut chunk.body);
        self.requests.push((self.last_request, chunk));
        Some(body)
    }

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

    /// A beacon the browser took (`beaconed`) or refused: no answer will
    /// come, so its events stay queued (see `Tracker::unanswered`).
    pub fn unanswered(&mut self, id: u32, beaconed: bool) {
        if let Some(chunk) = self.take(id) {
            self.tracker.unanswered(&chunk, beaconed);
        }
    }

    pub fn online(&mut self) {
        self.tracker.online();
    }

    /// The options' switches the JS side needs: 1 `autoPageViews`, 2
    /// `autocapture`, 4 `hashPageViews`.
    pub fn flags(&self) -> u8 {
        let o = self.tracker.options();
        u8::from(o.auto_page_views) | u8::from(o.autocapture) << 1 | u8::from(o.hash_page_views) << 2
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

// ---------------------------------------------------------------- the exports

// The page's one tracker, behind free functions rather than an exported
// class: a page has one tracker, and the class's glue (a pointer checked
// on every call, a finalizer, `free`) cost about 600 bytes gzipped.
//
// No JS object crosses: `prop` hands over options and props one name and
// string or number at a time (js/loader.js walks the object). Reading
// objects from wasm (Reflect.get, Object.entries, type checks, the table
// of JS references) cost about 1300 bytes gzipped of glue.
thread_local! {
    static CORE: RefCell<Option<Core>> = const { RefCell::new(None) };
    /// The pairs given since the last `start`, `record` or `identify`.
    static PAIRS: RefCell<Pairs> = const { RefCell::new(Vec::new()) };
}

fn take_pairs() -> Pairs {
    PAIRS.with(|pairs| std::mem::take(&mut *pairs.borrow_mut()))
}

/// One property of the object the next call takes: `kind` 0, a string
/// (`text`); 1, a number; 2, any other value as `JSON.stringify` wrote it
/// (`text`).
#[wasm_bindgen]
pub fn prop(name: String, kind: u8, text: String, number: f64) {
    let value = match kind {
        0 => PropValue::Text(text),
        1 => PropValue::Number(number),
        _ => PropValue::Json(text),
    };
    PAIRS.with(|pairs| pairs.borrow_mut().push((name, value)));
}

fn with<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    // js/loader.js calls nothing else before `start` succeeded.
    CORE.with(|core| f(core.borrow_mut().as_mut().expect("start() came first")))
}

/// `start(privacySignal, "screen\nlang\ntz")`, the options given as
/// `prop`s: starts the tracker, or returns why the options cannot work.
/// The context comes as one string (none of its parts can hold a line
/// break): each string argument costs the glue about 60 bytes gzipped.
#[wasm_bindgen]
pub fn start(privacy_signal: bool, context: &str) -> Option<String> {
    let (screen, rest) = line(context);
    let (lang, tz) = line(rest.unwrap_or_default());
    let tz = tz.unwrap_or_default();
    match Core::new(take_pairs(), privacy_signal, screen.into(), lang.into(), tz.into()) {
        Ok(core) => {
            CORE.with(|c| *c.borrow_mut() = Some(core));
            None
        }
        Err(problem) => Some(problem.into()),
    }
}

/// See [`Core::set_page`]: `"url\ntitle"`, then `"\nreferrer"` unless the
/// visitor came from the page before (one string, as for `start`: a URL
/// and `document.title` never hold a line break).
#[wasm_bindgen(js_name = setPage)]
pub fn set_page(page: &str) -> bool {
    let (url, rest) = line(page);
    let (title, referrer) = line(rest.unwrap_or_default());
    with(|core| core.set_page(url, title, referrer.map(String::from)))
}

/// The text up to the first line break, and what follows it if there is
/// one (by bytes: `str::split`'s pattern machinery costs the tracker about
/// 150 bytes gzipped).
fn line(s: &str) -> (&str, Option<&str>) {
    match s.bytes().position(|b| b == b'\n') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

/// See [`Core::record`]; the props given as `prop`s.
#[wasm_bindgen]
pub fn record(event_type: &str, now: f64) {
    let props = take_pairs();
    with(|core| core.record(event_type, props, now));
}

/// See [`Core::identify`]; the user id given as a `prop`.
#[wasm_bindgen]
pub fn identify(now: f64) {
    let user_id = take_pairs().pop().map(|(_, id)| id);
    with(|core| core.identify(user_id, now));
}

/// See [`Core::consent`].
#[wasm_bindgen]
pub fn consent(granted: bool) -> bool {
    with(|core| core.consent(granted))
}

/// See [`Core::pending`].
#[wasm_bindgen]
pub fn pending() -> u8 {
    with(|core| core.pending())
}

/// See [`Core::next_request`].
#[wasm_bindgen(js_name = nextRequest)]
pub fn next_request(now: f64, leaving: bool) -> Option<String> {
    with(|core| core.next_request(now, leaving))
}

#[wasm_bindgen(js_name = requestId)]
pub fn request_id() -> u32 {
    with(|core| core.request_id())
}

/// See [`Core::settle`].
#[wasm_bindgen]
pub fn settle(id: u32, status: u16, retry_after_ms: f64, now: f64) -> f64 {
    with(|core| core.settle(id, status, retry_after_ms, now))
}

/// See [`Core::unanswered`].
#[wasm_bindgen]
pub fn unanswered(id: u32, beaconed: bool) {
    with(|core| core.unanswered(id, beaconed));
}

#[wasm_bindgen]
pub fn online() {
    with(Core::online);
}

#[wasm_bindgen]
pub fn endpoint() -> String {
    with(|core| core.tracker.options().endpoint.clone())
}

#[wasm_bindgen(js_name = flushIntervalMs)]
pub fn flush_interval_ms() -> u32 {
    with(|core| core.tracker.options().flush_interval_ms)
}

/// See [`Core::flags`].
#[wasm_bindgen]
pub fn flags() -> u8 {
    with(|core| core.flags())
}

/// See [`Core::stats`].
#[wasm_bindgen]
pub fn stats() -> String {
    with(|core| core.stats())
}

// The glue in a real browser (wasm-bindgen-test in headless Chromium):
// storage is checked through web-sys, not through the functions under test.
#[cfg(test)]
mod tests {
    use wasm_bindgen::JsCast;
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use web_sys::HtmlDocument;

    use super::*;

    fn local_storage() -> web_sys::Storage {
        web_sys::window().unwrap().local_storage().unwrap().unwrap()
    }

    fn cookies() -> String {
        let document: HtmlDocument = web_sys::window().unwrap().document().unwrap().unchecked_into();
        document.cookie().unwrap()
    }

    /// Options or props as js/loader.js hands them over, all strings here.
    fn pairs(pairs: &[(&str, &str)]) -> Pairs {
        pairs.iter().map(|(k, v)| (k.to_string(), PropValue::Text(v.to_string()))).collect()
    }

    #[test]
    fn ids_and_session_go_to_local_storage() {
        let mut web = Web::new();
        assert!(!web.in_cookies, "Chromium has a working localStorage");
        web.save("t1_aid", "a|b=c; d");
        assert_eq!(local_storage().get_item("t1_aid").unwrap().as_deref(), Some("a|b=c; d"));
        assert_eq!(web.load("t1_aid").as_deref(), Some("a|b=c; d"));
        web.delete("t1_aid");
        assert_eq!(local_storage().get_item("t1_aid").unwrap(), None);
        assert_eq!(web.load("t1_aid"), None);
    }

    #[test]
    fn without_local_storage_ids_go_to_cookies_and_the_queue_stays_in_memory() {
        let mut web = Web { in_cookies: true };
        web.save("t2_aid", "a|b=c; d");
        assert!(cookies().contains("t2_aid=a%7Cb%3Dc%3B%20d"), "{}", cookies());
        assert_eq!(web.load("t2_aid").as_deref(), Some("a|b=c; d"));
        assert_eq!(web.load("t2_ai"), None, "a prefix of a name is not the name");
        web.save("t2_queue", "{}");
        assert!(!cookies().contains("t2_queue"), "the queue is too large for a cookie");
        assert_eq!(local_storage().get_item("t2_aid").unwrap(), None);
        web.delete("t2_aid");
        assert!(!cookies().contains("t2_aid"), "{}", cookies());
        assert_eq!(web.load("t2_aid"), None);
    }

    #[test]
    fn ids_are_random_version_4_uuids() {
        let mut web = Web::new();
        let (a, b) = (web.new_id(), web.new_id());
        assert_ne!(a, b);
        for id in [a, b] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        }
    }

    #[test]
    fn options_that_cannot_work_are_refused_with_a_reason() {
        let no_site = pairs(&[("endpoint", "/v1/batch")]);
        let refused = Core::new(no_site, false, String::new(), String::new(), String::new());
        assert_eq!(refused.err().as_deref(), Some("init needs a siteId"));
    }

    #[test]
    fn a_click_from_js_values_becomes_a_safe_click_event() {
        let o = pairs(&[("endpoint", "/v1/batch"), ("siteId", "shop-1"), ("storagePrefix", "t3")]);
        let mut core = Core::new(o, false, "1280x720".into(), "en-GB".into(), "Europe/Paris".into()).unwrap();
        assert!(core.set_page("https://shop.example/c/shoes?email=x@y.z", "Shoes", Some(String::new())));
        let clicked =
            pairs(&[("productId", "p-1"), ("tag", "BUTTON"), ("text", "  Add \n to cart "), ("list", "grid")]);
        core.record("click", clicked, 1_732_262_400_000.0);
        assert_eq!(core.pending(), 1);
        let body = core.next_request(1_732_262_400_001.0, false).expect("a request");
        let batch: serde_json::Value = serde_json::from_str(&body).unwrap();
        let event = &batch["events"][0];
        assert_eq!(event["event_type"], "click");
        assert_eq!(event["props"]["tag"], "button");
        assert_eq!(event["props"]["text"], "Add to cart");
        assert_eq!(event["props"]["product_id"], "p-1");
        assert_eq!(event["props"]["list"], "grid");
        assert_eq!(event["page"]["url"], "https://shop.example/c/shoes");
        assert_eq!(event["context"]["tz"], "Europe/Paris");
        assert_eq!(
            local_storage().get_item("t3_aid").unwrap().as_ref(),
            event["anonymous_id"].as_str().map(String::from).as_ref()
        );
        assert_eq!(core.settle(core.request_id(), 200, -1.0, 1_732_262_400_002.0), -1.0);
        assert_eq!(core.pending(), 0);
    }

    #[test]
    fn a_page_leave_from_js_values_has_the_contracts_typed_props() {
        let o = pairs(&[("endpoint", "/v1/batch"), ("siteId", "shop-1"), ("storagePrefix", "t6")]);
        let mut core = Core::new(o, false, String::new(), String::new(), String::new()).unwrap();
        core.set_page("https://shop.example/p/1", "Product", Some(String::new()));
        // As js/loader.js gives them: numbers, under the contract's names.
        let leave = vec![
            ("engaged_ms".to_string(), PropValue::Number(12_500.0)),
            ("scroll_depth".to_string(), PropValue::Number(80.0)),
        ];
        core.record("page_leave", leave, 1_732_262_400_000.0);
        let body = core.next_request(1_732_262_400_001.0, false).expect("a request");
        let batch: serde_json::Value = serde_json::from_str(&body).unwrap();
        let event = batch["events"][0].to_string();
        let limits = clickstream_schema::Limits::default();
        let valid = clickstream_schema::validate_event(&event, Some(1_732_262_400_001), 1_732_262_400_001, &limits)
            .unwrap_or_else(|r| panic!("{event}: {r:?}"));
        assert_eq!(valid.event_type, EventType::PageLeave);
        assert_eq!((valid.props.engaged_ms, valid.props.scroll_depth), (Some(12_500), Some(80)));
        assert!(valid.props.extra.is_empty(), "{:?}", valid.props.extra);
    }

    #[test]
    fn the_exports_split_their_one_string_at_line_breaks() {
        assert_eq!(
            line("https://shop.example/\nHome\nhttps://www.google.com/"),
            ("https://shop.example/", Some("Home\nhttps://www.google.com/"))
        );
        assert_eq!(line("Home\n"), ("Home", Some("")), "an empty referrer: a direct visit");
        assert_eq!(line("Home"), ("Home", None), "no referrer: the page before");
    }

    #[test]
    fn in_opt_in_mode_nothing_is_stored_or_sent_before_consent() {
        let o =
            pairs(&[("endpoint", "/v1/batch"), ("siteId", "shop-1"), ("storagePrefix", "t4"), ("consent", "opt-in")]);
        let mut core = Core::new(o, false, String::new(), String::new(), String::new()).unwrap();
        core.set_page("https://shop.example/", "Home", None);
        core.record("page_view", Vec::new(), 1_732_262_400_000.0);
        assert_eq!((core.pending(), core.next_request(1_732_262_400_001.0, false)), (0, None));
        let stored = (0..local_storage().length().unwrap()).filter_map(|i| local_storage().key(i).unwrap());
        assert_eq!(stored.filter(|k| k.starts_with("t4_")).count(), 0);
        assert!(core.consent(true));
        core.record("page_view", Vec::new(), 1_732_262_400_002.0);
        assert!(core.next_request(1_732_262_400_003.0, false).is_some());
        assert_eq!(local_storage().get_item("t4_consent").unwrap().as_deref(), Some("granted"));
    }
}
