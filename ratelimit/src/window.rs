//! Fixed windows aligned to UTC: a minute window starts at :00, a day at
//! midnight UTC, a month on the 1st. Every replica of the service (and
//! every Envoy) therefore agrees on the window from the time alone; the
//! window start is part of the Redis key, so a new window is a new
//! counter.

use crate::proto::Unit;

/// One window, in Unix seconds: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First second of the window.
    pub start: i64,
    /// First second after it.
    pub end: i64,
}

impl Window {
    /// Milliseconds from `now_ms` until the window ends (0 when past).
    pub fn millis_until_end(&self, now_ms: i64) -> i64 {
        self.end.saturating_mul(1000).saturating_sub(now_ms).max(0)
    }
}

/// The window of `unit` that holds `now_ms` (Unix milliseconds); `None`
/// for [`Unit::Unknown`].
pub fn window(unit: Unit, now_ms: i64) -> Option<Window> {
    let now = now_ms.div_euclid(1000);
    let fixed = |len: i64| {
        let start = now - now.rem_euclid(len);
        Window {
            start,
            end: start + len,
        }
    };
    match unit {
        Unit::Unknown => None,
        Unit::Second => Some(fixed(1)),
        Unit::Minute => Some(fixed(60)),
        Unit::Hour => Some(fixed(3_600)),
        Unit::Day => Some(fixed(86_400)),
        Unit::Month => {
            let (year, month, _) = civil_from_days(now.div_euclid(86_400));
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            Some(Window {
                start: days_from_civil(year, month, 1) * 86_400,
                end: days_from_civil(next_year, next_month, 1) * 86_400,
            })
        }
        Unit::Year => {
            let (year, _, _) = civil_from_days(now.div_euclid(86_400));
            Some(Window {
                start: days_from_civil(year, 1, 1) * 86_400,
                end: days_from_civil(year + 1, 1, 1) * 86_400,
            })
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic:
/// 400-year cycles of 146097 days, years starting in March so the leap
/// day is last).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let m = i64::from(month);
    let month_from_march = if m > 2 { m - 3 } else { m + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_align_to_utc() {
        // 2026-12-01T03:14:15.926Z
        let now = 1_796_094_855_926;
        let s = now / 1000;
        assert_eq!(
            window(Unit::Second, now),
            Some(Window {
                start: s,
                end: s + 1
            })
        );
        let minute = window(Unit::Minute, now).unwrap();
        assert_eq!(minute.start % 60, 0);
        assert_eq!(minute.end - minute.start, 60);
        assert!(minute.start <= s && s < minute.end);
        let day = window(Unit::Day, now).unwrap();
        assert_eq!(day.start, days_from_civil(2026, 12, 1) * 86_400);
        assert_eq!(minute.millis_until_end(now), minute.end * 1000 - now);
        assert_eq!(window(Unit::Unknown, now), None);
    }

    #[test]
    fn calendar_windows() {
        let at = |y, m, d| days_from_civil(y, m, d) * 86_400 * 1000;
        let feb_leap = window(Unit::Month, at(2028, 2, 29) + 5).unwrap();
        assert_eq!(feb_leap.start * 1000, at(2028, 2, 1));
        assert_eq!(feb_leap.end * 1000, at(2028, 3, 1));
        let december = window(Unit::Month, at(2026, 12, 31)).unwrap();
        assert_eq!(december.end * 1000, at(2027, 1, 1));
        let year = window(Unit::Year, at(2026, 7, 4)).unwrap();
        assert_eq!(year.start * 1000, at(2026, 1, 1));
        assert_eq!(year.end * 1000, at(2027, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for days in [-800_000, -1, 0, 1, 59, 10_957, 20_788, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{days}");
        }
    }
}
