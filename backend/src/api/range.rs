//! The parameters every dashboard endpoint takes: a time range, an
//! optional site, and each endpoint's own few; anything else is refused by
//! name, so a typo is a clear 400 rather than a silently ignored filter.

use std::collections::HashMap;

use clickstream_schema::time::{HOUR_MS, MINUTE_MS};

use super::DashboardError;

/// The time ranges the dashboard offers, ending now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub fn length_ms(self) -> i64 {
        match self {
            Range::Hour => HOUR_MS,
            Range::Day => 24 * HOUR_MS,
            Range::Week => 7 * 24 * HOUR_MS,
        }
    }

    /// Traffic points: a minute over an hour, five over a day, an hour over
    /// a week (60, 288 and 168 points).
    pub fn traffic_bucket_ms(self) -> i64 {
        match self {
            Range::Hour => MINUTE_MS,
            Range::Day => 5 * MINUTE_MS,
            Range::Week => HOUR_MS,
        }
    }

    /// Revenue points: `revenue_5m`'s own windows, hours over a week.
    pub fn revenue_bucket_ms(self) -> i64 {
        match self {
            Range::Hour | Range::Day => 5 * MINUTE_MS,
            Range::Week => HOUR_MS,
        }
    }
}

/// What a request asked for, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub range: Range,
    /// Only this site's rows; all sites when absent.
    pub site: Option<String>,
    /// The range, `[from, to)` in ms: `to` is now.
    pub from: i64,
    pub to: i64,
    extra: HashMap<String, String>,
}

impl Params {
    /// Checks the query string of an endpoint that also takes `allowed`.
    pub fn parse(query: &HashMap<String, String>, allowed: &[&str], now: i64) -> Result<Params, DashboardError> {
        for key in query.keys() {
            if key != "range" && key != "site" && !allowed.contains(&key.as_str()) {
                let mut takes = vec!["range", "site"];
                takes.extend_from_slice(allowed);
                return Err(DashboardError::BadParameter(format!(
                    "unknown parameter '{key}'; this endpoint takes {}",
                    takes.join(", ")
                )));
            }
        }
        let range = match query.get("range").map(String::as_str) {
            None | Some("") => Range::Hour,
            Some(name) => Range::ALL.into_iter().find(|r| r.name() == name).ok_or_else(|| {
                DashboardError::BadParameter(format!("range must be one of 1h, 24h, 7d (got '{name}')"))
            })?,
        };
        let site = query.get("site").filter(|s| !s.is_empty()).cloned();
        Ok(Params { range, site, from: now - range.length_ms(), to: now, extra: query.clone() })
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

    /// One of `choices`; required.
    pub fn choice<'c>(&self, name: &str, choices: &[&'c str]) -> Result<&'c str, DashboardError> {
        let got = self.extra.get(name).map_or("", String::as_str);
        choices.iter().find(|c| **c == got).copied().ok_or_else(|| {
            DashboardError::BadParameter(format!("{name} must be one of {} (got '{got}')", choices.join(", ")))
        })
    }
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

    #[test]
    fn ranges_default_to_the_last_hour_and_end_now() {
        let p = Params::parse(&query(&[]), &[], NOW).unwrap();
        assert_eq!((p.range, p.from, p.to, p.site), (Range::Hour, NOW - HOUR_MS, NOW, None));
        let p = Params::parse(&query(&[("range", "7d"), ("site", "shop-1")]), &[], NOW).unwrap();
        assert_eq!((p.range, p.from, p.site.as_deref()), (Range::Week, NOW - 7 * 24 * HOUR_MS, Some("shop-1")));
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = |pairs: &[(&str, &str)], allowed: &[&str]| {
            Params::parse(&query(pairs), allowed, NOW).unwrap_err().to_string()
        };
        assert!(err(&[("range", "2h")], &[]).contains("range must be one of 1h, 24h, 7d (got '2h')"));
        assert!(err(&[("rnage", "1h")], &["top"])
            .contains("unknown parameter 'rnage'; this endpoint takes range, site, top"));
        let p = Params::parse(&query(&[("top", "0"), ("by", "planet")]), &["top", "by"], NOW).unwrap();
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
        let p = Params::parse(&query(&[("top", "7")]), &["top"], NOW).unwrap();
        assert_eq!(p.count("top", 5, 20).unwrap(), 7);
        assert_eq!(p.count("limit", 10, 50).unwrap(), 10);
    }

    #[test]
    fn times_are_iso_utc() {
        assert_eq!(iso(NOW), "2024-11-22T08:00:00Z");
        assert_eq!(iso(NOW + 61_999), "2024-11-22T08:01:01Z");
    }
}
