//! Stable bucketing: MurmurHash3 x86_32 of `"{salt}:{id}"`, exactly as
//! Unleash computes it, so a user lands in the same bucket on every server
//! and SDK. Hashing streams the three parts, so no string is built.

/// Unleash's seed for variant selection (rollouts use seed 0).
pub(crate) const VARIANT_SEED: u32 = 86_028_157;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

struct Murmur3 {
    h: u32,
    tail: u32,
    tail_len: u32,
    len: u32,
}

impl Murmur3 {
    fn new(seed: u32) -> Self {
        Murmur3 {
            h: seed,
            tail: 0,
            tail_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn block(&mut self, k: u32) {
        let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        self.h ^= k;
        self.h = self
            .h
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u32);
        // Finish a partial block left by the previous part.
        while self.tail_len != 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return;
            };
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
            bytes = rest;
            if self.tail_len == 4 {
                let k = self.tail;
                self.tail = 0;
                self.tail_len = 0;
                self.block(k);
            }
        }
        let mut chunks = bytes.chunks_exact(4);
        for c in &mut chunks {
            self.block(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        for &b in chunks.remainder() {
            self.tail |= u32::from(b) << (8 * self.tail_len);
            self.tail_len += 1;
        }
    }

    fn finish(mut self) -> u32 {
        if self.tail_len != 0 {
            let k = self.tail.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
            self.h ^= k;
        }
        let mut h = self.h ^ self.len;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
}

/// MurmurHash3 x86_32 of `bytes`.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.write(bytes);
    m.finish()
}

/// MurmurHash3 x86_32 of `"{salt}:{id}"`.
pub(crate) fn hash_pair(salt: &str, id: &str, seed: u32) -> u32 {
    let mut m = Murmur3::new(seed);
    m.write(salt.as_bytes());
    m.write(b":");
    m.write(id.as_bytes());
    m.finish()
}

/// Unleash's normalised rollout bucket of `id` under `salt`, in 1..=100.
/// A rollout of `p` percent includes exactly the ids whose bucket is at
/// most `p`, so raising `p` only ever adds ids.
pub fn bucket(salt: &str, id: &str) -> u32 {
    hash_pair(salt, id, 0) % 100 + 1
}

/// Unleash's variant position of `id` under `salt`, in 1..=total (0 when
/// total is 0).
pub(crate) fn variant_position(salt: &str, id: &str, total: u64) -> u64 {
    if total == 0 {
        return 0;
    }
    u64::from(hash_pair(salt, id, VARIANT_SEED)) % total + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"test", 0), 0xba6b_d213);
        assert_eq!(murmur3_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        for (a, b) in [
            ("", "x"),
            ("abc", "defgh"),
            ("abcd", ""),
            ("a", "bcdefghij"),
        ] {
            let joined = format!("{a}:{b}");
            assert_eq!(hash_pair(a, b, 7), murmur3_32(joined.as_bytes(), 7));
        }
    }
}
