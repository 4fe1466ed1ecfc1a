//! The crate's two hashes, each written once. [`StableHasher`] (64-bit
//! FNV-1a) is for every hash that is stored, sent or compared across
//! processes and versions: alert fingerprints, idempotency keys, asset
//! ETags, the watched-config fingerprint, per-target scrape phases.
//! [`fx::FxHasher`] is for the hot in-memory maps of the store, PromQL and
//! scrape staleness, where speed matters and no hash leaves the process.

pub mod fx;

use std::hash::Hasher;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a: the same input gives the same hash in every process and
/// every version, unlike std's `DefaultHasher`.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(FNV_OFFSET)
    }
}

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv1a_from(self.0, bytes);
    }
}

/// The [`StableHasher`] hash of `bytes`, usable in constants.
pub const fn stable_hash(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

const fn fnv1a_from(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_64_bit_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_hasher_and_the_const_function_agree_across_writes() {
        let mut hasher = StableHasher::default();
        hasher.write(b"foo");
        hasher.write(b"bar");
        assert_eq!(hasher.finish(), stable_hash(b"foobar"));
    }
}
