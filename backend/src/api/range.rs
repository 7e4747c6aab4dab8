//! The parameters every dashboard endpoint takes: a time range, an
//! optional site, and each endpoint's own few; anything else is refused by
//! name, so a typo is a clear 400 rather than a silently ignored filter.
//!
//! A range is a preset ending now (`1h`, `24h`, `7d`, `30d`), a calendar one
//! in the site's time zone (`today`, `yesterday`, `this_month`), or `from` and
//! `to` (dates, whole days in the site's zone, `to` included; or RFC 3339
//! times). Day boundaries are the site's: a shop in Berlin does not think in
//! UTC days.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;
use clickstream_schema::time::{DAY_MS, HOUR_MS, MINUTE_MS};

use super::DashboardError;
pub use crate::zones::Zones;

/// The presets, by the name the API and the dashboard use.
pub const PRESETS: [&str; 7] = ["1h", "24h", "7d", "30d", "today", "yesterday", "this_month"];

/// The longest range asked for with `from` and `to`.
pub const MAX_RANGE_DAYS: i64 = 400;

/// The range a request asked for, resolved to `[from, to)` in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    /// The preset's name, or `custom`.
    name: String,
    pub from: i64,
    pub to: i64,
    pub zone: Tz,
}

impl Range {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn length_ms(&self) -> i64 {
        self.to - self.from
    }

    /// The period of the same length just before, for comparisons.
    pub fn previous(&self) -> (i64, i64) {
        (self.from - self.length_ms(), self.from)
    }

    /// Traffic points: a minute up to an hour, five minutes up to two days,
    /// an hour up to eight, then a day.
    pub fn traffic_bucket_ms(&self) -> i64 {
        match self.length_ms() {
            n if n <= HOUR_MS + MINUTE_MS => MINUTE_MS,
            n if n <= 2 * DAY_MS => 5 * MINUTE_MS,
            n if n <= 8 * DAY_MS => HOUR_MS,
            _ => DAY_MS,
        }
    }

    /// Revenue points: `revenue_5m`'s own windows up to two days, then
    /// hours up to eight, then days.
    pub fn revenue_bucket_ms(&self) -> i64 {
        match self.length_ms() {
            n if n <= 2 * DAY_MS => 5 * MINUTE_MS,
            n if n <= 8 * DAY_MS => HOUR_MS,
            _ => DAY_MS,
        }
    }

    /// How far the zone is ahead of UTC at the range's start (ms): buckets
    /// of an hour or a day start on the zone's own hours and midnights.
    pub fn offset_ms(&self) -> i64 {
        offset_ms(self.zone, self.from)
    }

    /// The start of the `bucket` holding `ms`, on the zone's boundaries.
    pub fn bucket_start(&self, ms: i64, bucket: i64) -> i64 {
        let off = self.offset_ms();
        (ms + off).div_euclid(bucket) * bucket - off
    }
}

/// The first millisecond of the day `now` falls on, in `zone`.
pub fn day_start(zone: Tz, now: i64) -> i64 {
    midnight(zone, date_at(zone, now))
}

fn offset_ms(zone: Tz, ms: i64) -> i64 {
    zone.timestamp_millis_opt(ms).single().map_or(0, |t| i64::from(t.offset().fix().local_minus_utc()) * 1000)
}

/// The first millisecond of a date in a zone (the earliest, if midnight
/// happens twice; the first that exists, if a change of offset skips it).
fn midnight(zone: Tz, date: NaiveDate) -> i64 {
    let start = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    match zone.from_local_datetime(&start).earliest() {
        Some(t) => t.timestamp_millis(),
        // Skipped: an hour later exists.
        None => zone
            .from_local_datetime(&(start + chrono::Duration::hours(1)))
            .earliest()
            .map_or(0, |t| t.timestamp_millis()),
    }
}

/// The date `ms` falls on in a zone.
fn date_at(zone: Tz, ms: i64) -> NaiveDate {
    zone.timestamp_millis_opt(ms).single().map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// What a request asked for, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub range: Range,
    /// Only this site's rows; all sites when absent.
    pub site: Option<String>,
    /// The range, `[from, to)` in ms (the range's own, repeated: every
    /// endpoint reads them).
    pub from: i64,
    pub to: i64,
    extra: HashMap<String, String>,
}

impl Params {
    /// The start of the hour `from` falls in: where the hourly tables'
    /// rows of the range start (an hour the range only partly covers is
    /// read whole).
    pub fn from_hour(&self) -> i64 {
        self.from.div_euclid(HOUR_MS) * HOUR_MS
    }

    /// Checks the query string of an endpoint that also takes `allowed`,
    /// with day boundaries in `zones`.
    pub fn parse(
        query: &HashMap<String, String>,
        allowed: &[&str],
        now: i64,
        zones: &Zones,
    ) -> Result<Params, DashboardError> {
        for key in query.keys() {
            if !["range", "site", "from", "to"].contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
                let mut takes = vec!["range", "site", "from", "to"];
                takes.extend_from_slice(allowed);
                return Err(DashboardError::BadParameter(format!(
                    "unknown parameter '{key}'; this endpoint takes {}",
                    takes.join(", ")
                )));
            }
        }
        let site = query.get("site").filter(|s| !s.is_empty()).cloned();
        let zone = zones.of(site.as_deref());
        let get = |k: &str| query.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let range = match (get("range"), get("from"), get("to")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad("give either range or from and to, not both"));
            }
            (None, Some(from), Some(to)) => custom(from, to, now, zone)?,
            (None, Some(_), None) | (None, None, Some(_)) => return Err(bad("from and to go together")),
            (name, None, None) => preset(name.unwrap_or("1h"), now, zone)?,
        };
        Ok(Params { from: range.from, to: range.to, range, site, extra: query.clone() })
    }

    /// A whole-number parameter within `1..=max`, or its default.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, DashboardError> {
        match self.extra.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(DashboardError::BadParameter(format!(
                    "{name} must be a whole number from 1 to {max} (got '{text}')"
                ))),
            },
        }
    }

    /// A text parameter of at most `max` bytes, if given and not empty.
    pub fn text(&self, name: &str, max: usize) -> Result<Option<String>, DashboardError> {
        match self.extra.get(name).filter(|v| !v.is_empty()) {
            Some(v) if v.len() > max => Err(bad(format!("{name} is at most {max} bytes (got {})", v.len()))),
            other => Ok(other.cloned()),
        }
    }

    /// One of `choices`; required.
    pub fn choice<'c>(&self, name: &str, choices: &[&'c str]) -> Result<&'c str, DashboardError> {
        let got = self.extra.get(name).map_or("", String::as_str);
        choices.iter().find(|c| **c == got).copied().ok_or_else(|| {
            DashboardError::BadParameter(format!("{name} must be one of {} (got '{got}')", choices.join(", ")))
        })
    }
}

fn bad(message: impl Into<String>) -> DashboardError {
    DashboardError::BadParameter(message.into())
}

fn preset(name: &str, now: i64, zone: Tz) -> Result<Range, DashboardError> {
    let today = date_at(zone, now);
    let (from, to) = match name {
        "1h" => (now - HOUR_MS, now),
        "24h" => (now - DAY_MS, now),
        "7d" => (now - 7 * DAY_MS, now),
        "30d" => (now - 30 * DAY_MS, now),
        "today" => (midnight(zone, today), now),
        "yesterday" => (midnight(zone, today.pred_opt().unwrap_or(today)), midnight(zone, today)),
        "this_month" => (midnight(zone, today.with_day(1).unwrap_or(today)), now),
        _ => return Err(bad(format!("range must be one of {} (got '{name}')", PRESETS.join(", ")))),
    };
    Ok(Range { name: name.to_string(), from, to: to.max(from + 1), zone })
}

/// `from`/`to` as dates (whole days in `zone`, `to` included) or RFC 3339
/// times.
fn custom(from: &str, to: &str, now: i64, zone: Tz) -> Result<Range, DashboardError> {
    let at = |name: &str, text: &str, end: bool| -> Result<i64, DashboardError> {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let date = if end { date.succ_opt().unwrap_or(date) } else { date };
            return Ok(midnight(zone, date));
        }
        chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|_| {
            bad(format!("{name} must be a date (2026-11-22) or an RFC 3339 time (2026-11-22T10:00:00Z), not '{text}'"))
        })
    };
    let (from_ms, to_ms) = (at("from", from, false)?, at("to", to, true)?);
    if from_ms >= to_ms {
        return Err(bad(format!("from ({from}) must come before to ({to})")));
    }
    if to_ms - from_ms > MAX_RANGE_DAYS * DAY_MS {
        return Err(bad(format!("a range is at most {MAX_RANGE_DAYS} days (from {from} to {to} is longer)")));
    }
    // Nothing exists after now: the range ends there (and its previous
    // period is as long as what is left of it).
    let to_ms = to_ms.min(now).max(from_ms + 1);
    Ok(Range { name: "custom".into(), from: from_ms, to: to_ms, zone })
}

/// Milliseconds as the API writes times: ISO 8601 UTC to the second.
pub fn iso(ms: i64) -> String {
    let (y, m, d) = clickstream_schema::time::utc_date(ms);
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_262_400_000; // 2024-11-22T08:00:00Z

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(pairs: &[(&str, &str)], zones: &Zones) -> Result<Params, DashboardError> {
        Params::parse(&query(pairs), &[], NOW, zones)
    }

    #[test]
    fn ranges_default_to_the_last_hour_and_end_now() {
        let utc = Zones::default();
        let p = parse(&[], &utc).unwrap();
        assert_eq!((p.range.name(), p.from, p.to, p.site), ("1h", NOW - HOUR_MS, NOW, None));
        let p = parse(&[("range", "7d"), ("site", "shop-1")], &utc).unwrap();
        assert_eq!((p.range.name(), p.from, p.site.as_deref()), ("7d", NOW - 7 * 24 * HOUR_MS, Some("shop-1")));
        assert_eq!(p.range.previous(), (NOW - 14 * DAY_MS, NOW - 7 * DAY_MS));
        assert_eq!(parse(&[("range", "30d")], &utc).unwrap().range.traffic_bucket_ms(), DAY_MS);
    }

    #[test]
    fn calendar_ranges_follow_the_sites_time_zone() {
        let sites = HashMap::from([("berlin".to_string(), "Europe/Berlin".to_string())]);
        let zones = Zones::new(Some("America/New_York"), &sites).unwrap();
        // 08:00 UTC is 09:00 in Berlin (CET) and 03:00 in New York (EST).
        let today = parse(&[("range", "today"), ("site", "berlin")], &zones).unwrap();
        assert_eq!((today.from, today.to), (NOW - 9 * HOUR_MS, NOW));
        let today = parse(&[("range", "today"), ("site", "elsewhere")], &zones).unwrap();
        assert_eq!(today.from, NOW - 3 * HOUR_MS, "the default zone");
        let yesterday = parse(&[("range", "yesterday"), ("site", "berlin")], &zones).unwrap();
        assert_eq!((yesterday.from, yesterday.to), (NOW - 33 * HOUR_MS, NOW - 9 * HOUR_MS));
        let month = parse(&[("range", "this_month"), ("site", "berlin")], &zones).unwrap();
        assert_eq!(month.from, NOW - 9 * HOUR_MS - 21 * DAY_MS, "from November 1st, 00:00 in Berlin");
        // Whole local days, `to` included; a day bucket starts at local midnight.
        let days = parse(&[("from", "2024-11-20"), ("to", "2024-11-21"), ("site", "berlin")], &zones).unwrap();
        assert_eq!((days.range.name(), days.from, days.to), ("custom", NOW - 57 * HOUR_MS, NOW - 9 * HOUR_MS));
        assert_eq!(days.range.bucket_start(NOW - 10 * HOUR_MS, DAY_MS), NOW - 33 * HOUR_MS);
        // A day across the end of summer time is 25 hours long.
        let utc = Zones::new(Some("Europe/Berlin"), &HashMap::new()).unwrap();
        let long = Params::parse(&query(&[("from", "2024-10-27"), ("to", "2024-10-27")]), &[], NOW, &utc).unwrap();
        assert_eq!(long.range.length_ms(), 25 * HOUR_MS);
        let times = parse(&[("from", "2024-11-22T06:00:00Z"), ("to", "2024-11-22T07:30:00+00:00")], &zones).unwrap();
        assert_eq!((times.from, times.to), (NOW - 2 * HOUR_MS, NOW - 30 * MINUTE_MS));
        // A range reaching past now ends now.
        let future = parse(&[("from", "2024-11-22"), ("to", "2024-12-31"), ("site", "berlin")], &zones).unwrap();
        assert_eq!(future.to, NOW);
    }

    #[test]
    fn bad_parameters_are_named() {
        let utc = Zones::default();
        let err = |pairs: &[(&str, &str)], allowed: &[&str]| {
            Params::parse(&query(pairs), allowed, NOW, &utc).unwrap_err().to_string()
        };
        assert!(err(&[("range", "2h")], &[])
            .contains("range must be one of 1h, 24h, 7d, 30d, today, yesterday, this_month (got '2h')"));
        assert!(err(&[("rnage", "1h")], &["top"])
            .contains("unknown parameter 'rnage'; this endpoint takes range, site, from, to, top"));
        assert!(err(&[("range", "1h"), ("from", "2024-11-01")], &[]).contains("either range or from and to"));
        assert!(err(&[("from", "2024-11-01")], &[]).contains("from and to go together"));
        assert!(err(&[("from", "yesterday"), ("to", "2024-11-02")], &[]).contains("from must be a date"));
        assert!(err(&[("from", "2024-11-03"), ("to", "2024-11-02")], &[]).contains("must come before"));
        assert!(err(&[("from", "2020-01-01"), ("to", "2024-11-02")], &[]).contains("at most 400 days"));
        assert!(Zones::new(Some("Europe/Berln"), &HashMap::new())
            .unwrap_err()
            .contains("unknown time zone 'Europe/Berln'"));
        let p = Params::parse(&query(&[("top", "0"), ("by", "planet")]), &["top", "by"], NOW, &utc).unwrap();
        assert!(p
            .count("top", 5, 20)
            .unwrap_err()
            .to_string()
            .contains("top must be a whole number from 1 to 20 (got '0')"));
        assert!(p
            .choice("by", &["source", "country"])
            .unwrap_err()
            .to_string()
            .contains("by must be one of source, country (got 'planet')"));
        let p = Params::parse(&query(&[("top", "7")]), &["top"], NOW, &utc).unwrap();
        assert_eq!(p.count("top", 5, 20).unwrap(), 7);
        assert_eq!(p.count("limit", 10, 50).unwrap(), 10);
    }

    #[test]
    fn times_are_iso_utc() {
        assert_eq!(iso(NOW), "2024-11-22T08:00:00Z");
        assert_eq!(iso(NOW + 61_999), "2024-11-22T08:01:01Z");
    }
}
