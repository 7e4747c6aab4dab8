//! What a site configures in `init({...})`. Names follow the JS API
//! (camelCase there, snake_case here); every option but the two first has
//! a default that suits a shop.

use crate::consent::ConsentMode;

#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Where batches are posted (`endpoint`), for example `/v1/batch` or a
    /// first-party path of the site's own.
    pub endpoint: String,
    /// The site's id (`siteId`).
    pub site_id: String,
    /// Flush as soon as this many events wait (`batchSize`, 20).
    pub batch_size: usize,
    /// Flush waiting events after this long (`flushIntervalMs`, 5 s).
    pub flush_interval_ms: u32,
    /// Most events kept while they cannot be delivered (`maxQueue`, 1000);
    /// the oldest are dropped, and counted, beyond it.
    pub max_queue: usize,
    /// Largest request body (`maxRequestBytes`, 64 KB): the limit browsers
    /// put on `sendBeacon` and `fetch(keepalive)`.
    pub max_request_bytes: usize,
    /// Inactivity after which the next event starts a new session
    /// (`sessionTimeoutMinutes`, 30).
    pub session_timeout_ms: i64,
    /// Store nothing on the device (`cookieless`, false): the anonymous id
    /// and the session live for one page load, and the queue in memory.
    pub cookieless: bool,
    /// `consent: "opt-in"` collects nothing before `consent(true)`;
    /// the default, opt-out, collects until `consent(false)`.
    pub consent: ConsentMode,
    /// Treat Do-Not-Track and Global Privacy Control as a refusal
    /// (`respectDoNotTrack`, false).
    pub respect_do_not_track: bool,
    /// Keep every query parameter of URLs (`keepQuery`, false): by default
    /// only `utm_*` survive, since queries often carry emails and tokens.
    pub keep_query: bool,
    /// Count a change of `#hash` as a page view (`hashPageViews`, false).
    pub hash_page_views: bool,
    /// Send a page view at start and on history navigation (`autoPageViews`, true).
    pub auto_page_views: bool,
    /// Capture clicks on links, buttons and `data-track` elements
    /// (`autocapture`, true).
    pub autocapture: bool,
    /// Currency of cart and purchase events that name none (`currency`, EUR).
    pub currency: String,
    /// Prefix of the storage keys and cookie names (`storagePrefix`, `cs`).
    pub storage_prefix: String,
}

impl Options {
    pub fn new(endpoint: impl Into<String>, site_id: impl Into<String>) -> Options {
        Options {
            endpoint: endpoint.into(),
            site_id: site_id.into(),
            batch_size: 20,
            flush_interval_ms: 5_000,
            max_queue: 1_000,
            max_request_bytes: 64 * 1024,
            session_timeout_ms: 30 * 60 * 1000,
            cookieless: false,
            consent: ConsentMode::OptOut,
            respect_do_not_track: false,
            keep_query: false,
            hash_page_views: false,
            auto_page_views: true,
            autocapture: true,
            currency: "EUR".into(),
            storage_prefix: "cs".into(),
        }
    }

    /// Why these options cannot start a tracker, if they cannot.
    pub fn problem(&self) -> Option<&'static str> {
        if self.endpoint.is_empty() {
            Some("init needs an endpoint")
        } else if self.site_id.is_empty() {
            Some("init needs a siteId")
        } else {
            None
        }
    }

    pub(crate) fn key(&self, name: &str) -> String {
        let mut key = self.storage_prefix.clone();
        key.push('_');
        key.push_str(name);
        key
    }
}
