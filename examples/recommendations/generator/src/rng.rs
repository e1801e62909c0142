//! A tiny deterministic PRNG (SplitMix64), so the generated data never changes with a dependency
//! upgrade. Only integer arithmetic is used to turn its output into values: no floating point
//! functions whose last bits could differ between platforms' math libraries.

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a constant, then mixed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed` and a path of stream ids (e.g. `[customer, month]`): independent streams
    /// let each part file be written on its own thread with the same result as a single writer.
    pub fn derive(seed: u64, path: &[u64]) -> Self {
        let mut state = mix(seed ^ GOLDEN);
        for &p in path {
            state = mix(state
                .wrapping_add(GOLDEN)
                .wrapping_add(mix(p.wrapping_add(1))));
        }
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for our small `n`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// `value` scaled by a random factor in `lo_pct..=hi_pct` percent.
    pub fn vary(&mut self, value: u64, lo_pct: u64, hi_pct: u64) -> u64 {
        value * self.range(lo_pct, hi_pct) / 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sequence_never_changes() {
        // Pinned: a change here changes every generated file.
        // The values were computed independently (a Python transcription of the algorithm).
        let mut r = Rng::derive(42, &[]);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                0x57e1_faba_6510_7204,
                0xf4ab_d143_feb2_4055,
                0x7c81_6738_c129_03b2
            ]
        );
        assert_ne!(
            Rng::derive(42, &[1]).next_u64(),
            Rng::derive(42, &[2]).next_u64()
        );
        assert_ne!(
            Rng::derive(42, &[1, 2]).next_u64(),
            Rng::derive(42, &[2, 1]).next_u64()
        );
    }

    #[test]
    fn below_and_range_stay_in_bounds() {
        let mut r = Rng::derive(7, &[3]);
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(4, 4), 4);
    }
}
