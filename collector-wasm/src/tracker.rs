//! The tracker's state and rules, without a browser: the glue tells it
//! what happened (an event, a page change, a consent answer, the outcome
//! of a request) and when (`now`, ms), and it says what to do next.

use clickstream_schema::validate::MAX_TEXT_LEN;
use clickstream_schema::{Context, Event, EventType, Limits, Page, Props};

use crate::click::bounded_text;
use crate::consent::{Choice, Consent};
use crate::options::Options;
use crate::props::Extra;
use crate::queue::{Chunk, Queue};
use crate::retry::{outcome, Backoff, Outcome};
use crate::session::Session;
use crate::url::{clean_url, path_of};

/// What the tracker needs from where it runs.
pub trait Platform {
    /// A stored value (localStorage in browsers, a cookie where it is unavailable).
    fn load(&self, key: &str) -> Option<String>;
    fn save(&mut self, key: &str, value: &str);
    fn delete(&mut self, key: &str);
    /// A new random id.
    fn new_id(&mut self) -> String;
    /// A random number in [0, 1), for backoff jitter.
    fn random(&mut self) -> f64;
}

/// Counters, readable from JS with `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events recorded (accepted into the queue).
    pub recorded: u64,
    /// Events the collector acknowledged.
    pub delivered: u64,
    /// Events waiting in the queue.
    pub queued: u64,
    /// Events dropped because the queue was full.
    pub dropped: u64,
    /// Events the collector refused for good (a 4xx other than 408/429).
    pub refused: u64,
    pub requests: u64,
    pub failed_requests: u64,
    /// The tracker's own errors, caught so the page never sees them.
    pub errors: u64,
}

/// Drops `props` but for its map of extra props. The tracker keeps extra
/// props in [`Extra`], never in that map (see [`crate::props`]), so it is
/// empty and forgetting it leaks nothing; dropping it would bring the code
/// that frees a `BTreeMap<String, serde_json::Value>`, a kilobyte of wasm.
fn forget_extra(props: Props) {
    let Props { extra, .. } = props;
    debug_assert!(extra.is_empty());
    std::mem::forget(extra);
}

/// See [`Tracker::pending`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Nothing = 0,
    /// Some events wait: send them within the flush interval.
    SendLater = 1,
    /// A full batch waits: send it now.
    SendNow = 2,
}

const KEYS: [&str; 4] = ["aid", "uid", "sid", "queue"];

pub struct Tracker<P: Platform> {
    options: Options,
    platform: P,
    consent: Consent,
    anonymous_id: Option<String>,
    user_id: Option<String>,
    session: Option<Session>,
    queue: Queue,
    backoff: Backoff,
    /// No request before this time (ms): the backoff after a failure.
    retry_at: i64,
    page: Page,
    context: Context,
    stats: Stats,
}

impl<P: Platform> Tracker<P> {
    /// A tracker picking up what earlier pages stored (identity, session,
    /// undelivered events), if storing is allowed. `privacy_signal`: the
    /// browser sends Do-Not-Track or Global Privacy Control and the site
    /// honours them.
    pub fn new(options: Options, platform: P, privacy_signal: bool) -> Tracker<P> {
        let stored = |key: &str| if options.cookieless { None } else { platform.load(&options.key(key)) };
        let choice = Consent::parse_stored(stored("consent").as_deref());
        let consent = Consent { mode: options.consent, choice, privacy_signal };
        let mut tracker = Tracker {
            queue: Queue::new(options.max_queue),
            consent,
            anonymous_id: None,
            user_id: None,
            session: None,
            backoff: Backoff::default(),
            retry_at: 0,
            page: Page::default(),
            context: Context::default(),
            stats: Stats::default(),
            options,
            platform,
        };
        if tracker.may_store() {
            tracker.anonymous_id = tracker.load("aid").filter(|id| !id.is_empty());
            tracker.user_id = tracker.load("uid").filter(|id| !id.is_empty());
            tracker.session = tracker.load("sid").and_then(|s| Session::decode(&s));
            if let Some(stored) = tracker.load("queue") {
                tracker.queue = Queue::restore(&stored, tracker.options.max_queue);
            }
        }
        tracker
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn collecting(&self) -> bool {
        self.consent.allows_collection()
    }

    fn may_store(&self) -> bool {
        !self.options.cookieless && self.collecting()
    }

    fn load(&self, name: &str) -> Option<String> {
        self.platform.load(&self.options.key(name))
    }

    fn save(&mut self, name: &str, value: &str) {
        if self.may_store() {
            let key = self.options.key(name);
            self.platform.save(&key, value);
        }
    }

    fn save_queue(&mut self) {
        let stored = self.queue.encode();
        self.save("queue", &stored);
    }

    pub fn set_context(&mut self, context: Context) {
        self.context = context;
    }

    /// The visitor is on this page now, coming from `referrer`, or, for a
    /// navigation inside a single-page app (`None`), from the page before.
    /// Returns whether it is another page than before (its path, or its
    /// hash when hash changes are page views): whether an automatic page
    /// view is due.
    pub fn set_page(&mut self, url: &str, title: &str, referrer: Option<&str>) -> bool {
        let (keep_query, keep_hash) = (self.options.keep_query, self.options.hash_page_views);
        let url = clean_url(url, keep_query, keep_hash);
        let place = |u: &str| -> (String, String) {
            let hash = if keep_hash { crate::url::find(u, b"#").map_or("", |i| &u[i..]) } else { "" };
            (path_of(u).to_string(), hash.to_string())
        };
        let changed = self.page.url.is_empty() || place(&url) != place(&self.page.url);
        let previous = if changed { &self.page.url } else { &self.page.referrer };
        let referrer = referrer.unwrap_or(previous);
        self.page = Page {
            path: path_of(&url).to_string(),
            referrer: clean_url(referrer, keep_query, false),
            title: bounded_text(title, MAX_TEXT_LEN / 2),
            url,
        };
        changed
    }

    pub fn page_url(&self) -> &str {
        &self.page.url
    }

    /// Records an event on the current page at `now`. Returns whether a
    /// flush is due (a full batch waits).
    pub fn record(&mut self, event_type: EventType, props: Props, extra: &Extra, now: i64) -> bool {
        if !self.collecting() {
            forget_extra(props);
            return false;
        }
        let anonymous_id = match self.anonymous_id.clone() {
            Some(id) => id,
            None => {
                let id = self.platform.new_id();
                self.save("aid", &id);
                self.anonymous_id = Some(id.clone());
                id
            }
        };
        let platform = &mut self.platform;
        let session = Session::touch(self.session.take(), now, self.options.session_timeout_ms, || platform.new_id());
        self.save("sid", &session.encode());
        let event = Event {
            event_id: self.platform.new_id(),
            event_type,
            ts: now,
            anonymous_id,
            user_id: self.user_id.clone(),
            session_id: session.id.clone(),
            page: self.page.clone(),
            props,
            context: self.context.clone(),
        };
        self.session = Some(session);
        self.queue.push(crate::json::event(&event, extra));
        forget_extra(event.props);
        self.stats.recorded += 1;
        self.save_queue();
        self.queue.waiting() >= self.options.batch_size
    }

    /// The visitor logged in: later events carry `user_id`, and an
    /// `identify` event links the anonymous visitor to the user.
    pub fn identify(&mut self, user_id: &str, now: i64) -> bool {
        let user_id = user_id.trim();
        if user_id.is_empty() {
            self.stats.errors += 1;
            return false;
        }
        self.user_id = Some(user_id.to_string());
        self.save("uid", user_id);
        self.record(EventType::Identify, Props::default(), &Extra::default(), now)
    }

    /// The visitor's consent answer. A no forgets everything stored and
    /// queued. Returns whether collection just started (a page view of the
    /// current page is then due).
    pub fn set_consent(&mut self, granted: bool) -> bool {
        let was = self.collecting();
        self.consent.choice = if granted { Choice::Granted } else { Choice::Denied };
        if !granted {
            self.queue.clear();
            self.anonymous_id = None;
            self.user_id = None;
            self.session = None;
            if !self.options.cookieless {
                for name in KEYS {
                    let key = self.options.key(name);
                    self.platform.delete(&key);
                }
            }
        }
        if !self.options.cookieless {
            let key = self.options.key("consent");
            match self.consent.stored_choice() {
                Some(choice) => self.platform.save(&key, choice),
                None => self.platform.delete(&key),
            }
        }
        !was && self.collecting()
    }

    /// The next request to send, if one is due: events wait, no backoff
    /// runs, collection is allowed, and no other request is in flight,
    /// unless the visitor is `leaving` the page (beacons then take all that
    /// waits, since the page may not get another chance). Its events are in
    /// flight until [`Tracker::settle`].
    pub fn next_request(&mut self, now: i64, leaving: bool) -> Option<Chunk> {
        if !self.collecting() || now < self.retry_at || (!leaving && self.queue.in_flight()) {
            return None;
        }
        let max_events = Limits::default().max_events;
        let chunk =
            self.queue.next_chunk(&self.options.site_id, now, self.options.max_request_bytes, max_events, leaving)?;
        self.stats.requests += 1;
        Some(chunk)
    }

    /// The outcome of a request: its HTTP status (0 for a network error)
    /// and `Retry-After`, if any. Returns the wait before the retry, when
    /// one is due.
    pub fn settle(&mut self, chunk: &Chunk, status: u16, retry_after_ms: Option<u64>, now: i64) -> Option<u64> {
        let retry = match outcome(status) {
            Outcome::Delivered => {
                self.queue.settle(chunk);
                self.backoff.succeed();
                self.retry_at = 0;
                self.stats.delivered += chunk.events as u64;
                None
            }
            Outcome::Refused => {
                self.queue.settle(chunk);
                self.stats.refused += chunk.events as u64;
                self.stats.failed_requests += 1;
                None
            }
            Outcome::Retry => {
                self.queue.give_back(chunk, false);
                self.stats.failed_requests += 1;
                let wait = self.backoff.fail(self.platform.random(), retry_after_ms);
                self.retry_at = now + wait as i64;
                Some(wait)
            }
        };
        self.save_queue();
        retry
    }

    /// A request with no answer to wait for: a beacon the browser refused
    /// (`beaconed` false), or one it took (true). A beacon's answer never
    /// reaches the page, and a collector that was down or busy loses its
    /// events, so they stay queued and stored either way, with no failure
    /// counted and no backoff: a later request, on this page or the next,
    /// sends them again, and the collector keeps the first copy of each
    /// event id.
    pub fn unanswered(&mut self, chunk: &Chunk, beaconed: bool) {
        self.queue.give_back(chunk, beaconed);
        if !beaconed {
            self.stats.requests = self.stats.requests.saturating_sub(1);
        }
    }

    /// The network is back: the next flush need not wait for the backoff.
    pub fn online(&mut self) {
        self.retry_at = 0;
    }

    /// What the glue should do about the events waiting.
    pub fn pending(&self) -> Pending {
        match self.queue.waiting() {
            0 => Pending::Nothing,
            n if n >= self.options.batch_size => Pending::SendNow,
            _ => Pending::SendLater,
        }
    }

    pub fn count_error(&mut self) {
        self.stats.errors += 1;
    }

    pub fn stats(&self) -> Stats {
        Stats { queued: self.queue.len() as u64, dropped: self.queue.dropped, ..self.stats }
    }

    pub fn anonymous_id(&self) -> Option<&str> {
        self.anonymous_id.as_deref()
    }

    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use super::*;
    use crate::consent::ConsentMode;

    /// Storage shared between "page loads", ids counted, no randomness.
    #[derive(Clone, Default)]
    struct TestPlatform {
        store: Rc<RefCell<BTreeMap<String, String>>>,
        ids: Rc<RefCell<u32>>,
    }

    impl Platform for TestPlatform {
        fn load(&self, key: &str) -> Option<String> {
            self.store.borrow().get(key).cloned()
        }
        fn save(&mut self, key: &str, value: &str) {
            self.store.borrow_mut().insert(key.into(), value.into());
        }
        fn delete(&mut self, key: &str) {
            self.store.borrow_mut().remove(key);
        }
        fn new_id(&mut self) -> String {
            *self.ids.borrow_mut() += 1;
            format!("id-{}", self.ids.borrow())
        }
        fn random(&mut self) -> f64 {
            0.0
        }
    }

    const T0: i64 = 1_732_262_400_000;
    const MIN: i64 = 60_000;

    fn tracker(platform: &TestPlatform, options: Options) -> Tracker<TestPlatform> {
        let mut t = Tracker::new(options, platform.clone(), false);
        t.set_page("https://shop.example/?utm_source=news&email=x", "Home", Some(""));
        t
    }

    fn options() -> Options {
        Options::new("/v1/batch", "shop-1")
    }

    fn events(chunk: &Chunk) -> Vec<Event> {
        let parsed = clickstream_schema::parse_batch(chunk.body.as_bytes(), &Limits::default()).unwrap();
        parsed
            .events
            .iter()
            .map(|e| clickstream_schema::validate_event(e.json, parsed.sent_at, T0, &Limits::default()).unwrap())
            .collect()
    }

    crate::both! {
        fn a_batch_is_due_at_twenty_events_and_passes_the_contract() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            for i in 0..19 {
                assert!(!t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + i), "due after {i}");
            }
            assert!(t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 19));
            assert_eq!(t.pending(), Pending::SendNow);
            let chunk = t.next_request(T0 + 20, false).unwrap();
            let sent = events(&chunk);
            assert_eq!(sent.len(), 20);
            assert!(sent.iter().all(|e| e.page.url == "https://shop.example/?utm_source=news" && e.page.path == "/"));
            assert_eq!(sent[0].anonymous_id, sent[19].anonymous_id);
            assert_eq!(sent[0].session_id, sent[19].session_id);
            assert_ne!(sent[0].event_id, sent[1].event_id);
            assert_eq!(t.settle(&chunk, 200, None, T0 + 22), None);
            assert_eq!(t.stats().delivered, 20);
            assert_eq!(t.stats().queued, 0);
        }

        fn one_request_flies_at_a_time_unless_the_visitor_is_leaving() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            assert_eq!(t.pending(), Pending::Nothing);
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            assert_eq!(t.pending(), Pending::SendLater);
            let first = t.next_request(T0, false).unwrap();
            assert_eq!(t.pending(), Pending::Nothing, "events in flight are not waiting");
            t.record(EventType::Search, Props { query: Some("boots".into()), ..Props::default() }, &Extra::default(), T0 + 1);
            assert_eq!(t.next_request(T0 + 2, false), None, "the first request is unanswered");
            let beacon = t.next_request(T0 + 3, true).expect("leaving: a beacon takes what waits");
            assert_eq!(events(&beacon)[0].event_type, EventType::Search);
            assert_eq!(t.settle(&beacon, 202, None, T0 + 4), None);
            assert_eq!(t.settle(&first, 200, None, T0 + 5), None);
            assert_eq!((t.stats().delivered, t.stats().queued), (2, 0));
        }

        fn beaconed_events_stay_stored_until_a_request_confirms_them() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            let beacon = t.next_request(T0 + 1, true).unwrap();
            assert_eq!(t.next_request(T0 + 2, true), None, "all that waited went in one beacon");
            t.unanswered(&beacon, true);
            assert_eq!(t.next_request(T0 + 3, true), None, "pagehide after visibilitychange: not beaconed twice");
            assert_eq!((t.stats().requests, t.stats().delivered), (1, 0));
            drop(t); // the page is gone; was the beacon delivered?

            let mut t = tracker(&p, options());
            let again = t.next_request(T0 + MIN, false).expect("resent on the next page");
            assert_eq!(events(&again)[0].event_id, events(&beacon)[0].event_id, "the same id: the collector keeps one");
            t.settle(&again, 200, None, T0 + MIN);
            assert_eq!(p.store.borrow().get("cs_queue").map(String::as_str), Some(""));
        }

        fn identity_session_and_queue_survive_a_reload() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.identify("user-7", T0);
            t.record(EventType::Click, Props { tag: Some("a".into()), ..Props::default() }, &Extra::default(), T0 + MIN);
            let (aid, sid) = (t.anonymous_id().unwrap().to_string(), t.session_id().unwrap().to_string());
            let before = t.next_request(T0 + MIN, false).unwrap();
            drop(t); // the page unloads with the request unanswered

            let mut t = tracker(&p, options());
            assert_eq!(t.anonymous_id(), Some(aid.as_str()));
            let again = t.next_request(T0 + 2 * MIN, false).unwrap();
            let (before, again) = (events(&before), events(&again));
            assert_eq!(again, before, "same events, same ids");
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 3 * MIN);
            assert_eq!(t.session_id(), Some(sid.as_str()));
            let third = t.queue.encode();
            assert!(third.contains("\"user_id\":\"user-7\""));
        }

        fn a_new_session_after_thirty_idle_minutes() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            let first = t.session_id().unwrap().to_string();
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 30 * MIN);
            assert_eq!(t.session_id().unwrap(), first);
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 60 * MIN + 1);
            assert_ne!(t.session_id().unwrap(), first);
        }

        fn failures_back_off_and_resend_the_same_events_then_succeed() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            let first = t.next_request(T0, false).unwrap();
            assert_eq!(t.settle(&first, 0, None, T0), Some(500));
            assert_eq!(t.next_request(T0 + 499, false), None, "still backing off");
            let second = t.next_request(T0 + 500, false).unwrap();
            assert_eq!(events(&second), events(&first));
            assert_eq!(t.settle(&second, 503, Some(7_000), T0 + 500), Some(7_000), "Retry-After is honoured");
            t.online();
            let third = t.next_request(T0 + 600, false).expect("back online: no wait");
            t.settle(&third, 204, None, T0 + 700);
            let s = t.stats();
            assert_eq!((s.delivered, s.failed_requests, s.requests, s.queued), (1, 2, 3, 0));
        }

        fn a_refused_batch_is_dropped_not_retried() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            let chunk = t.next_request(T0, false).unwrap();
            assert_eq!(t.settle(&chunk, 400, None, T0), None);
            assert_eq!(t.next_request(T0 + 10, false), None);
            assert_eq!(t.stats().refused, 1);
        }

        fn the_queue_holds_at_most_max_queue_events() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, Options { max_queue: 5, ..options() });
            for i in 0..8 {
                t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + i);
            }
            let s = t.stats();
            assert_eq!((s.queued, s.dropped, s.recorded), (5, 3, 8));
            let reloaded = tracker(&p, Options { max_queue: 5, ..options() });
            assert_eq!(reloaded.stats().queued, 5);
        }

        fn opt_in_stores_and_sends_nothing_before_consent() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, Options { consent: ConsentMode::OptIn, ..options() });
            assert!(!t.record(EventType::PageView, Props::default(), &Extra::default(), T0));
            assert_eq!(t.next_request(T0, false), None);
            assert!(p.store.borrow().is_empty(), "{:?}", p.store.borrow());
            assert!(t.set_consent(true), "a page view is due once consent is given");
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 1);
            assert_eq!(events(&t.next_request(T0 + 2, false).unwrap()).len(), 1);
            assert_eq!(p.store.borrow().get("cs_consent").map(String::as_str), Some("granted"));
            // The next page remembers the yes.
            assert!(tracker(&p, Options { consent: ConsentMode::OptIn, ..options() }).collecting());
        }

        fn opting_out_forgets_everything_and_is_remembered() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            t.identify("user-7", T0);
            assert!(!t.set_consent(false));
            assert_eq!(t.stats().queued, 0);
            assert_eq!(p.store.borrow().keys().collect::<Vec<_>>(), vec!["cs_consent"]);
            assert!(!t.record(EventType::PageView, Props::default(), &Extra::default(), T0 + 1));
            assert!(!tracker(&p, options()).collecting());
        }

        fn cookieless_mode_stores_nothing() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, Options { cookieless: true, ..options() });
            t.identify("user-7", T0);
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            t.set_consent(false);
            t.set_consent(true);
            t.record(EventType::PageView, Props::default(), &Extra::default(), T0);
            assert!(p.store.borrow().is_empty());
            assert!(t.next_request(T0, false).is_some());
        }

        fn do_not_track_is_honoured_when_configured() {
            let p = TestPlatform::default();
            let mut t = Tracker::new(Options { respect_do_not_track: true, ..options() }, p.clone(), true);
            t.set_page("https://shop.example/", "", Some(""));
            assert!(!t.record(EventType::PageView, Props::default(), &Extra::default(), T0));
            assert!(p.store.borrow().is_empty());
        }

        fn page_changes_are_page_views_query_changes_are_not() {
            let p = TestPlatform::default();
            let mut t = tracker(&p, options());
            assert!(!t.set_page("https://shop.example/?utm_source=other", "Home", Some("")));
            assert!(t.set_page("https://shop.example/c/shoes", "Shoes", Some("https://shop.example/")));
            assert!(!t.set_page("https://shop.example/c/shoes#top", "Shoes", Some("")));
            // Inside a single-page app, the referrer is the page before.
            assert!(t.set_page("https://shop.example/c/jackets?email=x", "Jackets", None));
            assert_eq!(t.page.referrer, "https://shop.example/c/shoes");
            assert!(!t.set_page("https://shop.example/c/jackets", "Jackets", None), "the same page again");
            assert_eq!(t.page.referrer, "https://shop.example/c/shoes");
            let mut t = tracker(&p, Options { hash_page_views: true, ..options() });
            assert!(t.set_page("https://shop.example/#/cart", "Cart", Some("")));
            assert_eq!(t.page_url(), "https://shop.example/#/cart");
        }
    }
}
