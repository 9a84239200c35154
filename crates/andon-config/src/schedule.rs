//! Calendar rules: deploy windows, freezes, and release train schedules.
//!
//! Time zones are limited to UTC and fixed offsets on purpose: a named zone
//! (`Europe/Paris`) needs a tz database and changes offset twice a year,
//! which is exactly when a deploy window should not silently move.

use crate::check::{Ctx, list, list_keys, string, table};
use crate::keys;
use crate::model::{DeployWindow, Freeze, Weekday};
use crate::tree::{Node, shorten};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Returns `None` on error, `Some(Some(window))` otherwise (the shape the
/// environment converter combines).
pub(crate) fn window(ctx: &mut Ctx<'_>, node: &Node) -> Option<Option<DeployWindow>> {
    let t = table(ctx, node, "`window`", &keys::WINDOW)?;
    let days = match t.get("days") {
        None => Some(Weekday::ALL.to_vec()),
        Some(n) => days(ctx, n),
    };
    let from = t
        .required(ctx, "from", "`window`", "from: \"09:00\"")
        .and_then(|n| clock(ctx, n, "`from`"));
    let to = t
        .required(ctx, "to", "`window`", "to: \"17:00\"")
        .and_then(|n| clock(ctx, n, "`to`"));
    let timezone = match t.get("timezone") {
        None => Some("UTC".to_string()),
        Some(n) => timezone(ctx, n),
    };
    if let (Some(f), Some(t_), Some(n)) = (from, to, t.get("to"))
        && f == t_
    {
        ctx.error(
            n.pos,
            "the deploy window is empty: `from` and `to` are the same time",
            "a window from 22:00 to 06:00 wraps midnight; to allow deploys all day, remove `window`".to_string(),
        );
        return None;
    }
    Some(Some(DeployWindow {
        days: days?,
        from: from?,
        to: to?,
        timezone: timezone?,
    }))
}

fn days(ctx: &mut Ctx<'_>, node: &Node) -> Option<Vec<Weekday>> {
    let items = list(ctx, node, "`days`", "days")?;
    if items.is_empty() {
        ctx.error(
            node.pos,
            "`days` is empty",
            "list the days deploys may happen, e.g. `days: [mon, tue, wed, thu, fri]`".to_string(),
        );
        return None;
    }
    let mut result = Vec::new();
    let mut ok = true;
    for item in items {
        let Some(text) = string(ctx, item, "a day") else {
            ok = false;
            continue;
        };
        match Weekday::parse(&text) {
            Some(day) if !result.contains(&day) => result.push(day),
            Some(_) => {}
            None => {
                ctx.error(
                    item.pos,
                    format!("unknown day `{}`", shorten(&text)),
                    format!("days are {}", list_keys(&DAYS)),
                );
                ok = false;
            }
        }
    }
    ok.then_some(result)
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

fn clock(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<(u8, u8)> {
    let text = string(ctx, node, label)?;
    let parsed = parse_clock(&text);
    if parsed.is_none() {
        ctx.error(
            node.pos,
            format!("bad time `{}` for {label}", shorten(&text)),
            "write a 24-hour time `HH:MM` between 00:00 and 23:59, e.g. \"09:00\"".to_string(),
        );
    }
    parsed
}

/// `UTC` or `+HH:MM` / `-HH:MM`.
fn timezone(ctx: &mut Ctx<'_>, node: &Node) -> Option<String> {
    let text = string(ctx, node, "`timezone`")?;
    let valid = text == "UTC" || is_offset(&text);
    if !valid {
        ctx.error(
            node.pos,
            format!("unsupported timezone `{}`", shorten(&text)),
            "use `UTC` or a fixed offset such as `+02:00`; named zones are not supported because their offset changes with daylight saving".to_string(),
        );
        return None;
    }
    Some(text)
}

fn is_offset(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('+').or_else(|| text.strip_prefix('-')) else {
        return false;
    };
    rest.len() == 5 && parse_clock(rest).is_some_and(|(h, _)| h <= 14)
}

pub(crate) fn freezes(ctx: &mut Ctx<'_>, node: &Node) -> Vec<Freeze> {
    let Some(items) = list(ctx, node, "`freezes`", "freezes") else {
        return Vec::new();
    };
    let mut result = Vec::new();
    for item in items {
        let Some(t) = table(ctx, item, "a freeze", &keys::FREEZE) else {
            continue;
        };
        let from = t
            .required(ctx, "from", "a freeze", "from: 2024-12-20T00:00:00Z")
            .and_then(|n| instant(ctx, n, "`from`"));
        let to = t
            .required(ctx, "to", "a freeze", "to: 2025-01-02T00:00:00Z")
            .and_then(|n| instant(ctx, n, "`to`"));
        let reason = t.get("reason").and_then(|n| string(ctx, n, "`reason`"));
        if let (Some((from, start)), Some((to, end))) = (from, to) {
            if end <= start {
                if let Some(n) = t.get("to") {
                    ctx.error(
                        n.pos,
                        format!("the freeze ends (`{to}`) before it starts (`{from}`)"),
                        "`to` must be later than `from`".to_string(),
                    );
                }
                continue;
            }
            result.push(Freeze { from, to, reason });
        }
    }
    result
}

fn instant(ctx: &mut Ctx<'_>, node: &Node, label: &str) -> Option<(String, i64)> {
    let text = string(ctx, node, label)?;
    match rfc3339_seconds(&text) {
        Some(seconds) => Some((text, seconds)),
        None => {
            ctx.error(
                node.pos,
                format!("bad timestamp `{}` for {label}", shorten(&text)),
                "write an RFC 3339 timestamp with a zone, e.g. `2024-12-20T18:00:00Z` or `2024-12-20T18:00:00+01:00`".to_string(),
            );
            None
        }
    }
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`), or `None` when malformed.
pub(crate) fn rfc3339_seconds(text: &str) -> Option<i64> {
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
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if is_offset(rest) => {
            let (h, m) = parse_clock(&rest[1..])?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (i64::from(h) * 3600 + i64::from(m) * 60)
        }
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
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `"<day> HH:MM UTC"`, e.g. `"wed 10:00 UTC"`.
pub(crate) fn valid_schedule(text: &str) -> bool {
    let parts: Vec<&str> = text.split_whitespace().collect();
    matches!(parts.as_slice(), [day, time, "UTC"] if Weekday::parse(day).is_some() && parse_clock(time).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_seconds("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(
            rfc3339_seconds("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000)
        );
        assert_eq!(rfc3339_seconds("2023-02-29T12:00:00Z"), None);
        assert_eq!(rfc3339_seconds("2024-12-24"), None);
        assert_eq!(rfc3339_seconds("2024-12-24T00:00:00"), None);
        assert_eq!(rfc3339_seconds("2024-12-24T25:00:00Z"), None);
        assert_eq!(rfc3339_seconds("2024-13-24T00:00:00Z"), None);
        assert_eq!(rfc3339_seconds("2024-00-24T00:00:00Z"), None);
        assert_eq!(rfc3339_seconds("2024-12-24T00:00:00é"), None);
    }

    #[test]
    fn clocks_and_schedules() {
        assert_eq!(parse_clock("09:00"), Some((9, 0)));
        assert_eq!(parse_clock("9:05"), Some((9, 5)));
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(parse_clock("12:60"), None);
        assert_eq!(parse_clock("1200"), None);
        assert!(valid_schedule("wed 10:00 UTC"));
        assert!(valid_schedule("Wednesday 10:00 UTC"));
        assert!(!valid_schedule("wed 10:00"));
        assert!(!valid_schedule("someday 10:00 UTC"));
        assert!(!valid_schedule("wed 10:00 CET"));
    }
}
