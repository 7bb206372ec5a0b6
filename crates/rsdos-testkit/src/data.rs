//! Reproducible random test data (xorshift; no dependency).

/// A small deterministic PRNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Puts `items` in a random order (Fisher-Yates), the same for the same seed.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// `len` random bytes.
pub fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// `len` bytes of compressible text (numbers and words on lines).
pub fn text_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "energy",
        "forces",
        "cell",
        "kpoints",
        "atoms",
        "step",
        "converged",
    ];
    let mut v = Vec::with_capacity(len + 64);
    while v.len() < len {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        v.extend_from_slice(
            format!("{w} = {:.6}\n", rng.below(1_000_000) as f64 / 997.0).as_bytes(),
        );
    }
    v.truncate(len);
    v
}

/// `n` objects of 0-1000 bytes as the benchmark harness makes them: the first half random,
/// the second half text (compressible).
pub fn small_objects(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = rng.below(1001) as usize;
            if i < n / 2 {
                random_bytes(&mut rng, len)
            } else {
                text_bytes(&mut rng, len)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn shuffle_is_a_permutation_fixed_by_the_seed() {
        let original: Vec<u32> = (0..1000).collect();
        let mut a = original.clone();
        Rng::new(7).shuffle(&mut a);
        let mut b = original.clone();
        Rng::new(7).shuffle(&mut b);
        assert_eq!(a, b, "same seed, same order");
        assert_ne!(a, original, "the order changed");
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, original, "a permutation");
    }
}
