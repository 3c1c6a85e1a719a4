//! The key → latest offset map of one cleaning round (Kafka's `OffsetMap`).
//!
//! Keys are stored as 128-bit digests, not as bytes, so the map's memory is bounded by its entry count. The
//! digest is two SipHash-1-3 values under independent random keys drawn per map: a collision would make the
//! cleaner drop a record that is the latest for its own key, so the keys must not be predictable by a client
//! choosing record keys (Kafka uses MD5 for the same purpose).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A record key's digest.
pub(crate) type KeyDigest = [u8; 16];

pub(crate) struct OffsetMap {
    latest: HashMap<KeyDigest, i64>,
    first_hasher: RandomState,
    second_hasher: RandomState,
}

impl OffsetMap {
    pub fn new() -> Self {
        OffsetMap { latest: HashMap::new(), first_hasher: RandomState::new(), second_hasher: RandomState::new() }
    }

    pub fn digest(&self, key: &[u8]) -> KeyDigest {
        let hash_with = |state: &RandomState| {
            let mut hasher = state.build_hasher();
            hasher.write(key);
            hasher.finish()
        };
        let mut digest = [0u8; 16];
        digest[..8].copy_from_slice(&hash_with(&self.first_hasher).to_le_bytes());
        digest[8..].copy_from_slice(&hash_with(&self.second_hasher).to_le_bytes());
        digest
    }

    /// Records that `offset` holds `digest`'s key; offsets arrive in increasing order, so the last one wins.
    pub fn insert(&mut self, digest: KeyDigest, offset: i64) {
        self.latest.insert(digest, offset);
    }

    pub fn get(&self, digest: &KeyDigest) -> Option<i64> {
        self.latest.get(digest).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn contains(&self, digest: &KeyDigest) -> bool {
        self.latest.contains_key(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_digests_differ() {
        let mut map = OffsetMap::new();
        let a = map.digest(b"a");
        let b = map.digest(b"b");
        assert_ne!(a, b);
        assert_eq!(a, map.digest(b"a"), "a digest is stable within a map");
        map.insert(a, 1);
        map.insert(b, 2);
        map.insert(a, 7);
        assert_eq!((map.get(&a), map.get(&b), map.len()), (Some(7), Some(2), 2));
        assert!(!map.contains(&map.digest(b"c")));
    }
}
