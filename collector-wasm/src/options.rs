//! What a site configures in `init({...})`. Names follow the JS API
//! (camelCase there, snake_case here); every option but the two first has
//! a default that suits a shop.

use crate::consent::ConsentMode;
use crate::props::PropValue;

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
    /// only `utm_*` survive (and ad click ids' names, without their
    /// values), since queries often carry emails and tokens.
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

    /// The options given to `init({...})`, as name/value pairs (see
    /// `js/loader.js`): values of the wrong type, negative or infinite
    /// numbers and unknown names are ignored, so their defaults stay.
    pub fn from_pairs(pairs: Vec<(String, PropValue)>) -> Options {
        let mut o = Options::new("", "");
        for (name, value) in pairs {
            let number = match value {
                PropValue::Number(n) if n.is_finite() && n >= 0.0 => Some(n),
                _ => None,
            };
            let flag = match &value {
                PropValue::Json(json) if json == "true" => Some(true),
                PropValue::Json(json) if json == "false" => Some(false),
                _ => None,
            };
            let text = value.into_text();
            match name.as_str() {
                "endpoint" => o.endpoint = text.unwrap_or_default(),
                "siteId" => o.site_id = text.unwrap_or_default(),
                "batchSize" => o.batch_size = number.map_or(o.batch_size, |v| (v as usize).max(1)),
                "flushIntervalMs" => o.flush_interval_ms = number.map_or(o.flush_interval_ms, |v| v as u32),
                "maxQueue" => o.max_queue = number.map_or(o.max_queue, |v| (v as usize).max(1)),
                "maxRequestBytes" => o.max_request_bytes = number.map_or(o.max_request_bytes, |v| v as usize),
                "sessionTimeoutMinutes" => {
                    o.session_timeout_ms = number.map_or(o.session_timeout_ms, |v| (v * 60_000.0) as i64);
                }
                "consent" if text.as_deref() == Some("opt-in") => o.consent = ConsentMode::OptIn,
                "cookieless" => o.cookieless = flag.unwrap_or(o.cookieless),
                "respectDoNotTrack" => o.respect_do_not_track = flag.unwrap_or(o.respect_do_not_track),
                "keepQuery" => o.keep_query = flag.unwrap_or(o.keep_query),
                "hashPageViews" => o.hash_page_views = flag.unwrap_or(o.hash_page_views),
                "autoPageViews" => o.auto_page_views = flag.unwrap_or(o.auto_page_views),
                "autocapture" => o.autocapture = flag.unwrap_or(o.autocapture),
                "currency" => o.currency = text.unwrap_or(o.currency),
                "storagePrefix" => o.storage_prefix = text.unwrap_or(o.storage_prefix),
                _ => {}
            }
        }
        o
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

#[cfg(test)]
mod tests {
    use super::*;
    use PropValue::*;

    fn pairs(items: &[(&str, PropValue)]) -> Vec<(String, PropValue)> {
        items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    crate::both! {
        fn options_are_read_by_their_js_names() {
            let o = Options::from_pairs(pairs(&[
                ("endpoint", Text("/v1/batch".into())),
                ("siteId", Number(42.0)),
                ("batchSize", Number(0.0)),
                ("flushIntervalMs", Number(1500.0)),
                ("sessionTimeoutMinutes", Number(1.5)),
                ("consent", Text("opt-in".into())),
                ("cookieless", Json("true".into())),
                ("autocapture", Json("false".into())),
                ("currency", Text("USD".into())),
                ("unknown", Text("x".into())),
            ]));
            assert_eq!((o.endpoint.as_str(), o.site_id.as_str()), ("/v1/batch", "42"));
            assert_eq!((o.batch_size, o.flush_interval_ms, o.session_timeout_ms), (1, 1500, 90_000));
            assert_eq!(o.consent, ConsentMode::OptIn);
            assert!(o.cookieless && !o.autocapture && o.auto_page_views);
            assert_eq!(o.currency, "USD");
            assert_eq!(o.problem(), None);
        }

        fn wrong_types_keep_the_defaults() {
            let o = Options::from_pairs(pairs(&[
                ("batchSize", Number(-5.0)),
                ("maxQueue", Number(f64::INFINITY)),
                ("flushIntervalMs", Text("100".into())),
                ("autoPageViews", Text("false".into())),
                ("keepQuery", Json("1".into())),
                ("consent", Text("opt-out".into())),
            ]));
            let defaults = Options::new("", "");
            assert_eq!(o, defaults);
            assert_eq!(o.problem(), Some("init needs an endpoint"));
        }
    }
}
