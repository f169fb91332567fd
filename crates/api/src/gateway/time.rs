//! The gateway's `yyyy-MM-dd HH:mm:ss` times and `yyyy-MM-dd` days (proleptic Gregorian,
//! Howard Hinnant's civil-date algorithms: a dozen lines, not worth a crate).

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A `yyyy-MM-dd` day as days since 1970-01-01.
pub fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    Some(days_from_civil(i64::from(year), month, day))
}

/// A `yyyy-MM` month as (its first day, the first day of the next), days since 1970-01-01.
pub fn parse_month(text: &str) -> Option<(i64, i64)> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let (year, month) = (i64::from(number(year)?), number(month)?);
    if !(1..=12).contains(&month) {
        return None;
    }
    let first = days_from_civil(year, month, 1);
    Some((first, first + i64::from(days_in_month(year, month))))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// A `yyyy-MM-dd HH:mm:ss` time as seconds since the epoch, reading it as UTC.
pub fn parse(text: &str) -> Option<i64> {
    let (day, clock) = text.split_once(' ')?;
    let day = parse_day(day)?;
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (number(h)?, number(m)?, number(s)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some(day * 86_400 + i64::from(h * 3600 + m * 60 + s))
}

/// `at` (nanoseconds since the epoch) as `yyyy-MM-dd HH:mm:ss` in the zone `offset_seconds`
/// east of UTC.
pub fn format(at: u64, offset_seconds: i64) -> String {
    let seconds = i64::try_from(at / 1_000_000_000).unwrap_or(i64::MAX) + offset_seconds;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    format!(
        "{} {:02}:{:02}:{:02}",
        format_day(days),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A day since 1970-01-01 as `yyyy-MM-dd`.
pub fn format_day(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_format_back() {
        assert_eq!(parse("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse("2026-12-02 07:30:05"), Some(1_796_196_605));
        assert_eq!(
            format(1_796_196_605 * 1_000_000_000, 0),
            "2026-12-02 07:30:05"
        );
        assert_eq!(
            format(1_796_196_605 * 1_000_000_000, 8 * 3600),
            "2026-12-02 15:30:05"
        );
        assert_eq!(parse_day("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        for bad in [
            "2026-13-01 00:00:00",
            "2026-02-30 00:00:00",
            "2026-1-01 00:00:00",
            "2026-01-01T00:00:00",
            "2026-01-01 24:00:00",
            "2026-01-01 +0:00:00",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            parse_month("2026-12"),
            Some((days_from_civil(2026, 12, 1), days_from_civil(2027, 1, 1)))
        );
        for days in [-800_000, -1, 0, 59, 19_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
