//! Card references in commit messages: `#12` and `ANDON-12`.

/// The prefix used when a board does not configure one.
pub const DEFAULT_CARD_PREFIX: &str = "ANDON";

/// Card numbers named in `message`, in order of first mention, with the
/// default prefix (`#12`, `ANDON-12`, `andon-12`).
pub fn card_refs(message: &str) -> Vec<u64> {
    card_refs_with_prefix(message, DEFAULT_CARD_PREFIX)
}

/// Card numbers named in `message` as `#N` or `<prefix>-N` (prefix matched
/// without regard to ASCII case). A reference must stand alone: `abc#12`,
/// `#12b`, `&#12;` and `XANDON-3` are not references, and neither is `#0`
/// or a number too large for a card id.
pub fn card_refs_with_prefix(message: &str, prefix: &str) -> Vec<u64> {
    let b = message.as_bytes();
    let p = prefix.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(word(i - 1) || b.get(i - 1) == Some(&b'&'));
        let digits_at = if !starts_word {
            None
        } else if b[i] == b'#' {
            Some(i + 1)
        } else if !p.is_empty()
            && b.get(i..i + p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
            && b.get(i + p.len()) == Some(&b'-')
        {
            Some(i + p.len() + 1)
        } else {
            None
        };
        if let Some(start) = digits_at {
            let end = start
                + b[start.min(b.len())..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
            if end > start && !word(end) {
                let number = message.get(start..end).and_then(|s| s.parse::<u64>().ok());
                if let Some(n) = number.filter(|n| *n > 0)
                    && !found.contains(&n)
                {
                    found.push(n);
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hash_and_prefixed_refs() {
        assert_eq!(card_refs("fix #12 and ANDON-7, again #12"), vec![12, 7]);
        assert_eq!(card_refs("andon-3: lower case (#4)"), vec![3, 4]);
        assert_eq!(card_refs("#1\n#2"), vec![1, 2]);
        assert_eq!(card_refs_with_prefix("SHOP-9 ANDON-8", "shop"), vec![9]);
        assert_eq!(card_refs_with_prefix("#5 X-1", ""), vec![5]);
    }

    #[test]
    fn ignores_lookalikes() {
        assert!(card_refs("C#12 #12b &#12; XANDON-3 ANDON- # #0").is_empty());
        assert!(card_refs("#99999999999999999999999").is_empty());
        assert!(card_refs("").is_empty());
        assert_eq!(card_refs("é#5 ünd ANDON-6é"), vec![5, 6]);
    }
}
