//! Numbers as a person reads them in a verdict sentence.

/// `2310` → `"2,310"`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `0.048` → `"4.8%"`; small rates keep two significant digits (`"0.05%"`).
pub(crate) fn percent(rate: f64) -> String {
    let pct = rate * 100.0;
    if pct > 0.0 && pct < 0.1 {
        format!("{pct:.2}%")
    } else {
        let s = format!("{pct:.1}%");
        s.replace(".0%", "%")
    }
}

/// Seconds → `"480 ms"`, `"2.4 ms"`, `"1.5 s"`.
pub(crate) fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "∞".into();
    }
    let ms = s * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms").replace(".0 ms", " ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{s:.1} s").replace(".0 s", " s")
    }
}

/// A probability as given in configuration: `0.01` → `"0.01"`.
pub(crate) fn probability(p: f64) -> String {
    format!("{p}")
}

/// A p-value for a sentence: `"p = 1"`, `"p = 0.42"`, `"p = 0.004"`, `"p < 0.001"`.
pub(crate) fn p_value(p: f64) -> String {
    if p >= 0.995 {
        "p = 1".into()
    } else if p < 0.001 {
        "p < 0.001".into()
    } else if p < 0.01 {
        format!("p = {p:.3}")
    } else {
        format!("p = {p:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(2310), "2,310");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn percents_read_naturally() {
        assert_eq!(percent(0.048), "4.8%");
        assert_eq!(percent(0.02), "2%");
        assert_eq!(percent(0.0005), "0.05%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(seconds(0.48), "480 ms");
        assert_eq!(seconds(0.0024), "2.4 ms");
        assert_eq!(seconds(1.5), "1.5 s");
        assert_eq!(seconds(10.0), "10 s");
    }

    #[test]
    fn p_values_round_sensibly() {
        assert_eq!(p_value(1.0), "p = 1");
        assert_eq!(p_value(0.4213), "p = 0.42");
        assert_eq!(p_value(0.0042), "p = 0.004");
        assert_eq!(p_value(0.00001), "p < 0.001");
    }
}
