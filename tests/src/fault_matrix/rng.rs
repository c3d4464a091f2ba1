//! A small seeded random source (SplitMix64) for picking kill points, so that a run printed
//! with its seed can be repeated with the same choices.

/// SplitMix64: a 64-bit state advanced by a constant and mixed; good enough to spread kill
/// points, not for anything else.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits make an exactly representable fraction.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An independent source for sub-task `n` (the same seed and `n` give the same source).
    pub fn fork(&self, n: u64) -> SplitMix {
        let mut s = SplitMix(self.0 ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        s.next_u64();
        s
    }
}

/// A seed from the clock, for runs that were given none.
pub fn seed_from_clock() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SplitMix::new(now.as_nanos() as u64 ^ u64::from(std::process::id())).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_points_and_forks_differ() {
        let mut a = SplitMix::new(7);
        let mut b = SplitMix::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(
            SplitMix::new(7).fork(1).next_u64(),
            SplitMix::new(7).fork(2).next_u64()
        );
        let mut r = SplitMix::new(1);
        for _ in 0..1000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
