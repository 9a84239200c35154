//! Calendar arithmetic on Unix milliseconds, without a time library.
//!
//! Everything Andon's release rules need is UTC or a fixed offset (named
//! zones are refused by the config on purpose), so proleptic Gregorian
//! arithmetic on day numbers is enough and cannot disagree with the config
//! crate, which uses the same algorithm.

use andon_config::Weekday;

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const HOUR_MS: i64 = 60 * MINUTE_MS;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The weekday of a day number (1970-01-01 was a Thursday).
pub(crate) fn weekday(days: i64) -> Weekday {
    // 0 = Monday.
    let index = (days + 3).rem_euclid(7);
    Weekday::ALL
        .get(usize::try_from(index).unwrap_or(0))
        .copied()
        .unwrap_or(Weekday::Mon)
}

/// `Mon`, `Tue`, ... for messages.
pub(crate) fn weekday_title(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Mon",
        Weekday::Tue => "Tue",
        Weekday::Wed => "Wed",
        Weekday::Thu => "Thu",
        Weekday::Fri => "Fri",
        Weekday::Sat => "Sat",
        Weekday::Sun => "Sun",
    }
}

/// `UTC` → 0, `+02:00` → 7200 s, `-05:30` → -19800 s; `None` otherwise.
pub(crate) fn parse_offset_s(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (h, m) = parse_clock(rest)?;
    (rest.len() == 5 && h <= 14).then_some(sign * (i64::from(h) * 3600 + i64::from(m) * 60))
}

/// `"HH:MM"` → (hour, minute).
pub(crate) fn parse_clock(text: &str) -> Option<(u8, u8)> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty()
        || h.len() > 2
        || m.len() != 2
        || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let hour: u8 = h.parse().ok()?;
    let minute: u8 = m.parse().ok()?;
    (hour < 24 && minute < 60).then_some((hour, minute))
}

/// How a zone is written in messages: `UTC` or the offset as configured.
pub(crate) fn zone_label(offset_s: i64) -> String {
    if offset_s == 0 {
        return "UTC".to_string();
    }
    let sign = if offset_s < 0 { '-' } else { '+' };
    let abs = offset_s.abs();
    format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
}

/// `Mon 2026-11-30 09:00 UTC`: what a person reads in a refusal.
pub(crate) fn format_minute(ms: i64, offset_s: i64) -> String {
    let local = ms.saturating_add(offset_s.saturating_mul(1000));
    let days = local.div_euclid(DAY_MS);
    let in_day = local.rem_euclid(DAY_MS);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{} {y:04}-{mo:02}-{d:02} {:02}:{:02} {}",
        weekday_title(weekday(days)),
        in_day / HOUR_MS,
        (in_day % HOUR_MS) / MINUTE_MS,
        zone_label(offset_s)
    )
}

/// `2026-11-30`, the UTC date of an instant.
pub(crate) fn format_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`), or `None` when malformed.
/// The config crate validates freezes with the same grammar.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let mut rest = text.get(19..)?;
    let mut frac_ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let ms_digits: String = frac[..n].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms_digits.parse::<i64>().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.starts_with('+') || rest.starts_with('-') => parse_offset_s(rest)?,
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(month - 1).ok()?)?;
    if !(1..=max_day).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips() {
        for days in [-800_000, -1, 0, 1, 19_000, 20_787, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday(0), Weekday::Thu);
    }

    #[test]
    fn formats_a_minute_in_a_zone() {
        // 2026-11-30 is a Monday.
        let ms = parse_rfc3339_ms("2026-11-30T09:00:00Z").unwrap();
        assert_eq!(format_minute(ms, 0), "Mon 2026-11-30 09:00 UTC");
        assert_eq!(format_minute(ms, 7200), "Mon 2026-11-30 11:00 +02:00");
        assert_eq!(format_minute(ms, -19_800), "Mon 2026-11-30 03:30 -05:30");
        assert_eq!(format_date(ms), "2026-11-30");
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.25Z"), Some(1250));
        assert_eq!(parse_rfc3339_ms("2023-02-29T12:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2024-12-24T00:00:00"), None);
        assert_eq!(parse_rfc3339_ms("2024-12-24T00:00:00é"), None);
        assert_eq!(parse_rfc3339_ms(""), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset_s("UTC"), Some(0));
        assert_eq!(parse_offset_s("+02:00"), Some(7200));
        assert_eq!(parse_offset_s("-05:30"), Some(-19_800));
        assert_eq!(parse_offset_s("+2:00"), None);
        assert_eq!(parse_offset_s("Europe/Paris"), None);
        assert_eq!(parse_offset_s(""), None);
    }
}
