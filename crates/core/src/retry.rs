//! Retry schedules: backon's exponential backoff with *full* jitter.
//!
//! backon's own jitter adds a random share on top of the delay (the result
//! lies in `[d, 2d)`); AWS's guidance for contended retries is full jitter,
//! a uniform draw from `[0, d)`, which spreads clients out further.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Exponential delays with full jitter; a [`BackoffBuilder`] so it plugs into
/// backon's `.retry(...)`.
#[derive(Debug, Clone, Copy)]
pub struct FullJitter {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// `None` retries until the caller's deadline stops it.
    pub max_times: Option<usize>,
}

impl FullJitter {
    pub const fn new(min_delay: Duration, max_delay: Duration) -> Self {
        Self {
            min_delay,
            max_delay,
            max_times: None,
        }
    }

    #[must_use]
    pub const fn with_max_times(mut self, times: usize) -> Self {
        self.max_times = Some(times);
        self
    }
}

impl BackoffBuilder for FullJitter {
    type Backoff = FullJitterBackoff;

    fn build(self) -> Self::Backoff {
        let exponential = ExponentialBuilder::default()
            .with_factor(2.0)
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay);
        let exponential = match self.max_times {
            Some(times) => exponential.with_max_times(times),
            None => exponential.without_max_times(),
        };
        FullJitterBackoff {
            ceilings: exponential.build(),
            rng: fastrand::Rng::new(),
        }
    }
}

#[derive(Debug)]
pub struct FullJitterBackoff {
    ceilings: ExponentialBackoff,
    rng: fastrand::Rng,
}

impl Iterator for FullJitterBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.ceilings
            .next()
            .map(|ceiling| ceiling.mul_f64(self.rng.f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_growing_exponential_ceiling() {
        let policy = FullJitter::new(Duration::from_millis(10), Duration::from_millis(200))
            .with_max_times(8);
        let delays: Vec<_> = policy.build().collect();
        assert_eq!(delays.len(), 8);
        let ceilings = [10, 20, 40, 80, 160, 200, 200, 200];
        for (delay, ceiling) in delays.iter().zip(ceilings) {
            assert!(
                *delay < Duration::from_millis(ceiling),
                "{delay:?} >= {ceiling}ms"
            );
        }
    }

    #[test]
    fn without_a_limit_the_schedule_does_not_end() {
        let policy = FullJitter::new(Duration::from_millis(1), Duration::from_millis(2));
        assert_eq!(policy.build().take(1000).count(), 1000);
    }
}
