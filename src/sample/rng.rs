//! The sample generator's own pseudo-random numbers: SplitMix64, seeded per asset.
//!
//! The sample must be byte-identical for a given seed on every machine and with every
//! version of every dependency, so it never borrows another crate's generator. Each asset
//! draws from its own stream, derived from the seed and the asset's relative path, so adding
//! an asset never changes the bytes of another one.

/// Increment of SplitMix64's state (the golden ratio in 64 bits, as in Steele et al. 2014).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for the stream named `key` under `seed`.
    pub(crate) fn for_key(seed: u64, key: &str) -> Rng {
        // Mix the seed first so that seeds 1 and 2 do not give streams that differ in one bit.
        let mut rng = Rng { state: seed };
        let mixed_seed = rng.next_u64();
        Rng { state: mixed_seed ^ fnv1a(key.as_bytes()) }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0). Multiply-shift: the bias is below 2^-32 for the
    /// small ranges used here, and the result depends on nothing but the stream.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub(crate) fn between(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// True with the given chance, in percent.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// Fills `buf` with random bytes, eight at a time.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let len = rest.len();
        rest.copy_from_slice(&self.next_u64().to_le_bytes()[..len]);
    }
}

/// FNV-1a, 64 bits: a stable hash of a stream's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation by Vigna).
        let mut rng = Rng { state: 0 };
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn streams_depend_on_seed_and_key() {
        let a = Rng::for_key(1, "a.jpg").next_u64();
        assert_eq!(a, Rng::for_key(1, "a.jpg").next_u64());
        assert_ne!(a, Rng::for_key(2, "a.jpg").next_u64());
        assert_ne!(a, Rng::for_key(1, "b.jpg").next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut rng = Rng::for_key(7, "ranges");
        for _ in 0..1000 {
            assert!(rng.below(10) < 10);
            let v = rng.between(32, 200);
            assert!((32..=200).contains(&v));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.between(5, 5), 5);
        let mut buf = [0u8; 13];
        rng.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
