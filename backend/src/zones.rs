//! The time zones day boundaries are drawn in, per site: the dashboard's
//! calendar ranges and the retention tables' days and weeks are the
//! site's, since a shop in Berlin does not think in UTC days.

use std::collections::HashMap;

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

/// The time zones day boundaries are drawn in: each site's, else the
/// default one (UTC unless configured).
#[derive(Clone, Debug, PartialEq)]
pub struct Zones {
    pub default: Tz,
    pub sites: HashMap<String, Tz>,
}

impl Default for Zones {
    fn default() -> Self {
        Zones { default: Tz::UTC, sites: HashMap::new() }
    }
}

impl Zones {
    /// From the config's names (IANA, e.g. `Europe/Berlin`); an unknown
    /// name is an error naming it.
    pub fn new(default: Option<&str>, sites: &HashMap<String, String>) -> Result<Zones, String> {
        let parse = |what: &str, name: &str| {
            name.parse::<Tz>()
                .map_err(|_| format!("{what}: unknown time zone '{name}' (an IANA name such as Europe/Berlin)"))
        };
        let default = match default {
            Some(name) => parse("time_zone", name)?,
            None => Tz::UTC,
        };
        let sites = sites
            .iter()
            .map(|(site, name)| Ok((site.clone(), parse(&format!("site_time_zones.{site}"), name)?)))
            .collect::<Result<_, String>>()?;
        Ok(Zones { default, sites })
    }

    /// The zone of a site (or of all sites: the default).
    pub fn of(&self, site: Option<&str>) -> Tz {
        site.and_then(|s| self.sites.get(s)).copied().unwrap_or(self.default)
    }

    /// Whether every site's days are UTC days (nothing to convert).
    pub fn all_utc(&self) -> bool {
        self.default == Tz::UTC && self.sites.values().all(|z| *z == Tz::UTC)
    }

    /// How far ahead of UTC a site's wall clock is at `ms` (UTC), in ms.
    pub fn offset_ms(&self, site: &str, ms: i64) -> i64 {
        offset_ms(self.of(Some(site)), ms)
    }
}

/// How far ahead of UTC `zone`'s wall clock is at `ms` (UTC), in ms.
pub fn offset_ms(zone: Tz, ms: i64) -> i64 {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => i64::from(zone.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()) * 1000,
        None => 0,
    }
}

/// The day (since the epoch) `ms` (UTC) falls on in `zone`.
pub fn local_day(zone: Tz, ms: i64) -> i64 {
    (ms + offset_ms(zone, ms)).div_euclid(clickstream_schema::time::DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_daylight_saving_time() {
        let sites = HashMap::from([("ny".to_string(), "America/New_York".to_string())]);
        let zones = Zones::new(Some("Asia/Kolkata"), &sites).unwrap();
        // 2026-07-01T12:00Z and 2026-12-01T12:00Z.
        let (summer, winter) = (1_782_907_200_000, 1_796_126_400_000);
        assert_eq!(zones.offset_ms("ny", summer), -4 * 3_600_000);
        assert_eq!(zones.offset_ms("ny", winter), -5 * 3_600_000);
        assert_eq!(zones.offset_ms("other", winter), 19_800_000, "half an hour ahead of a whole hour");
        assert!(!zones.all_utc());
        assert!(Zones::default().all_utc());
    }
}
