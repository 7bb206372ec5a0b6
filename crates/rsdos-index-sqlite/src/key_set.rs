//! The set of requested hashkeys that a table scan probes once per row.

use foldhash::HashSet;

/// Bytes of the keys stored inline: a SHA-256 hashkey in hex, disk-objectstore's only kind.
const INLINE_LEN: usize = 64;

/// Requested hashkeys, probed with the `hashkey` text of every row of a table scan.
///
/// When every key has 64 bytes (SHA-256 in hex), the keys are stored inline in the hash table,
/// so a probe reads one slot and compares it in place. A set of `&str` compares each probe with
/// a string elsewhere on the heap: with 100,000 keys in random order that second cache miss
/// per probe was most of the cost of a scan. Keys of any other length keep the set as text;
/// both answer exactly as string equality does. The hasher is foldhash's seeded one: keys come
/// from callers and from stored objects.
pub(crate) enum KeySet<'a> {
    Inline(HashSet<[u8; INLINE_LEN]>),
    Text(HashSet<&'a str>),
}

impl<'a> KeySet<'a> {
    pub(crate) fn new(keys: &[&'a str]) -> Self {
        if keys.iter().all(|k| k.len() == INLINE_LEN) {
            let mut set = HashSet::with_capacity_and_hasher(keys.len(), Default::default());
            for k in keys {
                if let Ok(bytes) = <[u8; INLINE_LEN]>::try_from(k.as_bytes()) {
                    set.insert(bytes);
                }
            }
            KeySet::Inline(set)
        } else {
            let mut set = HashSet::with_capacity_and_hasher(keys.len(), Default::default());
            set.extend(keys.iter().copied());
            KeySet::Text(set)
        }
    }

    /// The number of distinct requested keys.
    pub(crate) fn len(&self) -> usize {
        match self {
            KeySet::Inline(set) => set.len(),
            KeySet::Text(set) => set.len(),
        }
    }

    /// Whether `key` (the raw text of a row's `hashkey`) is one of the requested keys.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeySet::Inline(set) => {
                <&[u8; INLINE_LEN]>::try_from(key).is_ok_and(|k| set.contains(k))
            }
            KeySet::Text(set) => std::str::from_utf8(key).is_ok_and(|k| set.contains(k)),
        }
    }

    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self, KeySet::Inline(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_keys_are_inline_and_found_exactly() {
        let a = "ab".repeat(32);
        let b = "cd".repeat(32);
        let set = KeySet::new(&[a.as_str(), b.as_str()]);
        assert!(set.is_inline());
        assert!(set.contains(a.as_bytes()));
        assert!(set.contains(b.as_bytes()));
        assert!(!set.contains("ef".repeat(32).as_bytes()));
        // String equality: upper case is another key, a prefix or extension is no key.
        assert!(!set.contains("AB".repeat(32).as_bytes()));
        assert!(!set.contains(&a.as_bytes()[..63]));
        assert!(!set.contains(format!("{a}0").as_bytes()));
    }

    #[test]
    fn other_lengths_fall_back_to_text() {
        let long = "ab".repeat(32);
        let short = "abc";
        let set = KeySet::new(&[long.as_str(), short]);
        assert!(!set.is_inline());
        assert!(set.contains(long.as_bytes()));
        assert!(set.contains(b"abc"));
        assert!(!set.contains(b"ab"));
        assert!(!set.contains(&[0xff, 0xfe]));
    }

    #[test]
    fn empty_set_contains_nothing() {
        let set = KeySet::new(&[]);
        assert!(!set.contains(b""));
        assert!(!set.contains("ab".repeat(32).as_bytes()));
    }
}
