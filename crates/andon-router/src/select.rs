//! Picking the version for one request: override header, then the user's bucket.
//!
//! A bucket is a number in `0..100`. With stickiness it comes from a stable hash of a header
//! (a user id) or from a cookie holding a bucket the router drew once, so the same user lands
//! on the same version for as long as the weights leave that bucket where it is.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header::COOKIE};

use crate::compiled::{Service, StickyBy, Version};

/// The outcome of selection for one request.
pub(crate) struct Choice {
    pub(crate) version: Option<Arc<Version>>,
    /// A new bucket cookie to send back when the user had none.
    pub(crate) set_cookie: Option<HeaderValue>,
}

pub(crate) fn choose(svc: &Service, headers: &HeaderMap) -> Choice {
    if let Some(forced) = svc
        .override_header
        .as_ref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|key| svc.by_key(key.trim()))
        .filter(|v| !v.endpoints.is_empty())
    {
        return Choice {
            version: Some(forced.clone()),
            set_cookie: None,
        };
    }
    let mut set_cookie = None;
    let bucket = match &svc.sticky {
        Some(StickyBy::Header(h)) => match headers.get(h) {
            Some(v) => hash_bucket(v.as_bytes()),
            None => random_bucket(),
        },
        Some(StickyBy::Cookie { name }) => match cookie_bucket(headers, name) {
            Some(b) => b,
            None => {
                let b = random_bucket();
                set_cookie =
                    HeaderValue::from_str(&format!("{name}={b}; Path=/; HttpOnly; SameSite=Lax"))
                        .ok();
                b
            }
        },
        None => random_bucket(),
    };
    Choice {
        version: svc.by_bucket(bucket).cloned(),
        set_cookie,
    }
}

fn random_bucket() -> u32 {
    rand::random_range(0..100)
}

/// FNV-1a 64 of the value, modulo 100: stable across processes and releases, so a user id
/// keeps its bucket when the router restarts.
pub(crate) fn hash_bucket(value: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(h % 100).unwrap_or(0)
}

/// The bucket stored in cookie `name`, if present and in range.
fn cookie_bucket(headers: &HeaderMap, name: &str) -> Option<u32> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim().parse::<u32>().ok())
        .filter(|b| *b < 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_bucket_is_found_among_others_and_range_checked() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; andon_bucket=42; b=2"),
        );
        assert_eq!(cookie_bucket(&h, "andon_bucket"), Some(42));
        h.insert(COOKIE, HeaderValue::from_static("andon_bucket=100"));
        assert_eq!(cookie_bucket(&h, "andon_bucket"), None);
        h.insert(COOKIE, HeaderValue::from_static("andon_bucket=x"));
        assert_eq!(cookie_bucket(&h, "andon_bucket"), None);
    }

    #[test]
    fn hash_bucket_is_stable_and_spread() {
        assert_eq!(hash_bucket(b"user-1"), hash_bucket(b"user-1"));
        let mut seen = [0u32; 100];
        for i in 0..10_000 {
            seen[hash_bucket(format!("user-{i}").as_bytes()) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (50..=150).contains(n)), "{seen:?}");
    }
}
