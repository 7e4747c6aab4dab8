//! Time arithmetic the contract needs: clock-skew correction and UTC
//! calendar dates, the latter from chrono (without its clock or formatting
//! features, so the wasm builds stay small).

use chrono::{Datelike, NaiveDate};

pub const SECOND_MS: i64 = 1000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The client's event time corrected for the client's clock skew.
///
/// The tracker stamps each event (`ts`) and the batch (`sent_at`) with the
/// same, possibly wrong, clock; the edge knows the true time of arrival.
/// `received_at - sent_at` is the clock error plus the network delay, so
/// adding it moves `ts` onto the server's clock.
pub fn corrected_event_ts(ts: i64, sent_at: Option<i64>, received_at: i64) -> i64 {
    match sent_at {
        Some(sent_at) => ts.saturating_add(received_at.saturating_sub(sent_at)),
        None => ts,
    }
}

/// The UTC calendar date (year, month, day) of a millisecond timestamp.
pub fn utc_date(ms: i64) -> (i64, u32, u32) {
    civil_from_days(ms.div_euclid(DAY_MS))
}

/// `YYYY-MM-DD` of a millisecond timestamp, in UTC.
pub fn utc_date_string(ms: i64) -> String {
    let (y, m, d) = utc_date(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC hour (0..=23) of a millisecond timestamp.
pub fn utc_hour(ms: i64) -> u32 {
    (ms.rem_euclid(DAY_MS) / HOUR_MS) as u32
}

/// The Gregorian calendar repeats every 400 years, which are this many days.
/// chrono's dates span about ±262,000 years while an `i64` of milliseconds
/// spans ±292 million, so whole cycles are counted apart and chrono sees
/// only dates near the epoch: every input has an answer, as before.
const DAYS_PER_400_YEARS: i64 = 146_097;

/// 1970-01-01 in chrono's days from the Common Era (0001-01-01 is day 1).
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// A proleptic Gregorian date to days since 1970-01-01: the inverse of
/// [`civil_from_days`]. Reads `dt=` partition names back into days.
/// Months and days past the end roll over (February 30 is March 1 or 2, day
/// 0 the last of the month before, month 13 January of the next year).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let months = i64::from(month) - 1;
    let year = year.saturating_add(months.div_euclid(12));
    let month = months.rem_euclid(12) as u32 + 1;
    let year_in_cycle = year.rem_euclid(400) as i32;
    let first =
        NaiveDate::from_ymd_opt(year_in_cycle, month, 1).expect("day 1 of a month 1..=12 of a year 0..400 is a date");
    year.div_euclid(400)
        .saturating_mul(DAYS_PER_400_YEARS)
        .saturating_add(i64::from(first.num_days_from_ce()) - EPOCH_DAYS_FROM_CE + i64::from(day) - 1)
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let cycles = days.div_euclid(DAYS_PER_400_YEARS);
    let in_cycle = days.rem_euclid(DAYS_PER_400_YEARS) + EPOCH_DAYS_FROM_CE;
    let date = NaiveDate::from_num_days_from_ce_opt(in_cycle as i32).expect("less than 400 years after 1970 is a date");
    (i64::from(date.year()) + cycles * 400, date.month(), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 11, 22), 1_795_305_600_000 / DAY_MS);
        assert_eq!(days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28), 2);
        for days in [-1, 0, 59, 60, 11_016, 20_414, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn skew_correction_moves_client_time_onto_server_clock() {
        // Client clock 10 s behind: sent_at 990, received 1000 → +10 s... in ms.
        assert_eq!(corrected_event_ts(500, Some(990), 1000), 510);
        // Client clock ahead by one hour.
        assert_eq!(corrected_event_ts(3_600_500, Some(3_601_000), 1000), 500);
        assert_eq!(corrected_event_ts(500, None, 1000), 500);
    }

    #[test]
    fn dates_and_hours_in_utc() {
        assert_eq!(utc_date_string(0), "1970-01-01");
        // 2024-11-22T07:20:00.123Z
        assert_eq!(utc_date_string(1_732_260_000_123), "2024-11-22");
        assert_eq!(utc_hour(1_732_260_000_123), 7);
        // Leap day and the last millisecond of a day.
        assert_eq!(utc_date_string(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date_string(951_868_799_999), "2000-02-29");
        assert_eq!(utc_hour(951_868_799_999), 23);
        assert_eq!(utc_date_string(-1), "1969-12-31");
    }
}
