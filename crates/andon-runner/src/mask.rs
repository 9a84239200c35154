//! Secret masking: no secret value reaches a log, in any common disguise.
//!
//! A job can leak a secret as is, base64-encoded (`echo $TOKEN | base64`,
//! HTTP basic auth), or URL-encoded (in a query string). Each of these forms
//! is replaced by `***`. A multi-line secret (a PEM key) is masked line by
//! line, since logs are streamed one line at a time.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shorter forms are not masked: masking `a` or `on` would turn every log
/// into stars and hide real information, while protecting nothing.
const MIN_LEN: usize = 3;

const MASK: &str = "***";

/// Masks a fixed set of secret values in lines of text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a long form is replaced before a shorter one could
    /// break it apart and leave half of it visible.
    patterns: Vec<String>,
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut patterns = Vec::new();
        for value in values {
            forms(value, &mut patterns);
        }
        patterns.retain(|p| p.chars().count() >= MIN_LEN);
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        Self { patterns }
    }

    /// `line` with every form of every secret replaced by `***`.
    pub fn mask<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for p in &self.patterns {
            if out.contains(p.as_str()) {
                out = Cow::Owned(out.replace(p.as_str(), MASK));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn forms(value: &str, out: &mut Vec<String>) {
    let value = value.trim_end_matches(['\n', '\r']);
    if value.chars().count() < MIN_LEN {
        return;
    }
    for v in [value.to_owned(), format!("{value}\n")] {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            out.push(engine.encode(&v));
        }
    }
    for form in [false, true] {
        for upper in [false, true] {
            out.push(percent_encode(value, form, upper));
        }
    }
    if value.contains(['\n', '\r']) {
        out.extend(
            value
                .lines()
                .map(|l| l.trim_end_matches('\r').to_owned())
                .filter(|l| !l.trim().is_empty()),
        );
    } else {
        out.push(value.to_owned());
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters, with
/// upper or lower case hex; `form` writes spaces as `+` (HTML forms).
fn percent_encode(value: &str, form: bool, upper: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if form => out.push('+'),
            _ if upper => out.push_str(&format!("%{b:02X}")),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_form() {
        let m = Masker::new([
            "s3cr3t/p@ss word?",
            "-----BEGIN KEY-----\nAAAA1111\nBBBB2222\n-----END KEY-----\n",
        ]);
        let s = "s3cr3t/p@ss word?";
        let cases = [
            s.to_owned(),
            STANDARD.encode(s),
            URL_SAFE_NO_PAD.encode(s),
            STANDARD.encode(format!("{s}\n")),
            "s3cr3t%2Fp%40ss%20word%3F".to_owned(),
            "s3cr3t%2fp%40ss%20word%3f".to_owned(),
            "s3cr3t%2Fp%40ss+word%3F".to_owned(),
            "AAAA1111".to_owned(),
            "BBBB2222".to_owned(),
        ];
        for c in cases {
            let line = format!("before {c} after");
            assert_eq!(m.mask(&line), "before *** after", "{c}");
        }
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn tiny_and_empty_values_are_not_patterns() {
        assert!(Masker::new(["", "ab", "\n"]).is_empty());
    }
}
