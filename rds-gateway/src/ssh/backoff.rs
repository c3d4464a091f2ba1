//! Delays between reconnect attempts: exponential from an initial delay up to a cap, with
//! jitter so that several gateways (or sessions) do not hammer a recovering RDS in lock-step.
//! Attempts never stop; only the delay stops growing.

use std::time::Duration;

use rand::RngExt;

/// Reconnect delay settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

/// The delay sequence of one run of failures.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    /// A fresh sequence.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            failures: 0,
        }
    }

    /// Starts over (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The ceiling of the next delay before jitter: `initial * 2^failures`, capped.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.config
            .initial
            .checked_mul(factor)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }

    /// The delay to wait after one more failure: uniformly between half the ceiling and the
    /// ceiling ("equal jitter"), so it still grows while never being zero.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let fraction: f64 = rand::rng().random();
        let half = ceiling / 2;
        half + half.mul_f64(fraction.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let config = BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        };
        let mut b = Backoff::new(config);
        let mut ceilings = Vec::new();
        for _ in 0..20 {
            let ceiling = b.ceiling();
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} not within {ceiling:?}"
            );
            ceilings.push(ceiling);
        }
        assert_eq!(ceilings[0], Duration::from_millis(200));
        assert_eq!(ceilings[1], Duration::from_millis(400));
        assert_eq!(ceilings[2], Duration::from_millis(800));
        assert_eq!(ceilings[19], Duration::from_secs(30));
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(200));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut b = Backoff::new(BackoffConfig::default());
        for _ in 0..10_000 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(BackoffConfig {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(1),
            });
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "no jitter: {seen:?}");
    }
}
