//! Durations and percentages as users write them (`1h30m`, `2%`).
//!
//! Hand-written rather than `humantime` so that the accepted forms are exactly
//! the documented ones and every rejection can say how to write it instead.

use std::time::Duration;

/// Parses `500ms`, `30s`, `10m`, `2h`, `1d`, and concatenations such as `1h30m`.
///
/// A bare number is rejected on purpose: `timeout: 30` is ambiguous (seconds?
/// minutes?), and guessing wrong would silently change behaviour.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    parse_strict(text).map_err(|why| match suggest(text) {
        Some(fixed) => format!("`{}` is not a duration; write `{fixed}`", text.trim()),
        None => why,
    })
}

/// Repairs the usual near-misses (`10 minutes`, `2 hrs`) into the
/// accepted form, if that is all that is wrong.
fn suggest(text: &str) -> Option<String> {
    let mut fixed = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, fixed: &mut String| -> Option<()> {
        if !word.is_empty() {
            let unit = match word.to_ascii_lowercase().as_str() {
                "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => "ms",
                "s" | "sec" | "secs" | "second" | "seconds" => "s",
                "m" | "min" | "mins" | "minute" | "minutes" => "m",
                "h" | "hr" | "hrs" | "hour" | "hours" => "h",
                "d" | "day" | "days" => "d",
                _ => return None,
            };
            fixed.push_str(unit);
            word.clear();
        }
        Some(())
    };
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            flush(&mut word, &mut fixed)?;
            fixed.push(c);
        } else if c.is_ascii_alphabetic() {
            word.push(c);
        } else if !c.is_whitespace() {
            return None;
        }
    }
    flush(&mut word, &mut fixed)?;
    (fixed != text.trim() && parse_strict(&fixed).is_ok()).then_some(fixed)
}

fn parse_strict(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. `30s`, `10m` or `1h30m`".to_string());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration; write a number followed by a unit: `500ms`, `30s`, `10m`, `2h` or `1h30m`"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let millis_per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if after.starts_with('.') => {
                return Err(format!(
                    "`{text}` has a fraction; durations take whole numbers, e.g. `1m30s` instead of `1.5m`"
                ));
            }
            "" => {
                return Err(format!(
                    "`{text}` has no unit; write e.g. `{number}s` or `{number}m` (units: ms, s, m, h, d)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`; use ms, s, m, h or d (e.g. `30s`, `1h30m`)"
                ));
            }
        };
        let value: u128 = number
            .parse()
            .map_err(|_| format!("`{text}` is too large for a duration"))?;
        total = value
            .checked_mul(millis_per_unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too large for a duration"))?;
        rest = after;
    }
    let millis =
        u64::try_from(total).map_err(|_| format!("`{text}` is too large for a duration"))?;
    Ok(Duration::from_millis(millis))
}

/// Parses a percentage into a fraction: `2%` and `0.02` both give `0.02`.
///
/// A bare number above 1 (`2`) is rejected rather than read as 2%, because the
/// two readings differ by a factor of 100 in a rollback threshold.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale, with_sign) = match text.strip_suffix('%') {
        Some(number) => (number.trim(), 100.0, true),
        None => (text, 1.0, false),
    };
    let valid_chars = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    if !valid_chars {
        if number.starts_with('-') {
            return Err(format!(
                "`{text}` is negative; a percentage is between 0% and 100%"
            ));
        }
        return Err(format!(
            "`{text}` is not a percentage; write e.g. `2%` or the fraction `0.02`"
        ));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage; write e.g. `2%` or `0.02`"))?;
    let fraction = value / scale;
    if !fraction.is_finite() || fraction > 1.0 {
        return Err(if with_sign {
            format!("`{text}` is above 100%")
        } else {
            format!(
                "`{text}` is above 1; write a fraction between 0 and 1 (`0.02`) or a percentage (`{text}%`)"
            )
        });
    }
    Ok(fraction)
}

/// The inverse of [`parse_duration`]: `5400s` → `1h30m`, `0.3s` → `300ms`.
/// Sub-millisecond parts are dropped (no accepted form can express them).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

/// Durations serialize as they are written in `andon.yaml`.
pub(crate) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn ser_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_documented_form() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn durations_rejected_with_a_way_out() {
        assert!(parse_duration("30").unwrap_err().contains("`30s`"));
        assert!(
            parse_duration("1.5m")
                .unwrap_err()
                .contains("whole numbers")
        );
        assert_eq!(
            parse_duration("10 minutes").unwrap_err(),
            "`10 minutes` is not a duration; write `10m`"
        );
        assert_eq!(
            parse_duration("1 hr 30 min").unwrap_err(),
            "`1 hr 30 min` is not a duration; write `1h30m`"
        );
        assert!(!parse_duration("30").unwrap_err().contains("write `30`"));
        assert!(
            parse_duration("5y")
                .unwrap_err()
                .contains("unknown unit `y`")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for text in [
            "500ms",
            "30s",
            "10m",
            "2h",
            "1h30m",
            "1d",
            "1m30s500ms",
            "0s",
        ] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn percentages_as_fractions() {
        assert_eq!(parse_percent("2%"), Ok(0.02));
        assert_eq!(parse_percent("0.02"), Ok(0.02));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert_eq!(parse_percent("1"), Ok(1.0));
        assert_eq!(parse_percent("0"), Ok(0.0));
    }

    #[test]
    fn percentages_out_of_range_or_malformed() {
        assert!(parse_percent("150%").unwrap_err().contains("above 100%"));
        assert!(parse_percent("2").unwrap_err().contains("`2%`"));
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("abc").is_err());
        assert!(parse_percent("%").is_err());
        assert!(parse_percent("1.2.3").is_err());
    }
}
