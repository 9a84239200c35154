//! The name of an artifact: the sha256 of its bytes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// `sha256:<64 lowercase hex>`: the only way an artifact is referred to once
/// stored, from the run that built it to every environment it is deployed to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;

    /// Accepts exactly `sha256:` and 64 hex digits (either case, printed back
    /// lowercase). Anything else is refused rather than guessed at, because a
    /// digest that "almost" parses could name the wrong artifact.
    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidDigest(s.chars().take(100).collect());
        let hex_part = s.strip_prefix("sha256:").ok_or_else(invalid)?;
        if hex_part.len() != 64 {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| invalid())?;
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let d = Digest::of(b"hello");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(
            s.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Digest>()
                .unwrap(),
            d
        );
        for bad in [
            "",
            "sha256:",
            "md5:abcd",
            &s[..70],
            &format!("{s}0"),
            &s.replace('2', "g"),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }
}
