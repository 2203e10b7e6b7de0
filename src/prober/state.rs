//! The pure per-check state machine: inversion and the two thresholds.
//!
//! Counts are of *effective* results (after `inverted`), so they always agree
//! with `healthy`: a healthy check turns unhealthy after `failureThreshold`
//! consecutive effective failures and back after `healthyThreshold` consecutive
//! effective successes (by default the same number).
//! Counts keep growing past the threshold (the status shows how long a streak
//! has lasted) and saturate instead of overflowing.

use crate::health::LeafHealth;

/// What the threshold logic needs to know about one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    pub consecutive_successes: u32,
    pub consecutive_failures: u32,
}

impl Verdict {
    pub fn new(healthy: bool) -> Self {
        Self { healthy, consecutive_successes: 0, consecutive_failures: 0 }
    }

    pub fn of(health: &LeafHealth) -> Self {
        Self {
            healthy: health.healthy,
            consecutive_successes: health.consecutive_successes,
            consecutive_failures: health.consecutive_failures,
        }
    }

    pub fn write_to(self, health: &mut LeafHealth) {
        health.healthy = self.healthy;
        health.consecutive_successes = self.consecutive_successes;
        health.consecutive_failures = self.consecutive_failures;
    }

    /// Records one probe result (`passed` as the probe saw it, before inversion):
    /// `failures` consecutive effective failures turn a healthy check unhealthy,
    /// `successes` consecutive effective successes turn it healthy again.
    /// Returns true when `healthy` flipped.
    pub fn record(&mut self, passed: bool, inverted: bool, failures: u32, successes: u32) -> bool {
        if passed != inverted {
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
            if !self.healthy && self.consecutive_successes >= successes.max(1) {
                self.healthy = true;
                return true;
            }
        } else {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
            if self.healthy && self.consecutive_failures >= failures.max(1) {
                self.healthy = false;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `results` and returns the index of each flip.
    fn flips(
        start: bool,
        inverted: bool,
        threshold: u32,
        results: &[bool],
    ) -> (Verdict, Vec<usize>) {
        let mut v = Verdict::new(start);
        let flips = results
            .iter()
            .enumerate()
            .filter(|(_, p)| v.record(**p, inverted, threshold, threshold))
            .map(|(i, _)| i)
            .collect();
        (v, flips)
    }

    #[test]
    fn threshold_one_follows_every_result() {
        let (v, f) = flips(true, false, 1, &[true, false, false, true]);
        assert_eq!(f, vec![1, 3]);
        assert!(v.healthy);
    }

    #[test]
    fn needs_threshold_consecutive_failures_to_go_down() {
        let (v, f) = flips(true, false, 3, &[false, false, true, false, false, false, false]);
        assert_eq!(f, vec![5], "the success at index 2 restarts the count");
        assert!(!v.healthy);
        assert_eq!(v.consecutive_failures, 4);
        assert_eq!(v.consecutive_successes, 0);
    }

    #[test]
    fn needs_threshold_consecutive_successes_to_come_back() {
        let (v, f) = flips(false, false, 2, &[true, false, true, true, true]);
        assert_eq!(f, vec![3]);
        assert!(v.healthy);
        assert_eq!(v.consecutive_successes, 3);
    }

    #[test]
    fn inverted_counts_effective_results() {
        // An inverted check starts unhealthy; a failing probe is an effective success.
        let (v, f) = flips(false, true, 2, &[false, false, true]);
        assert_eq!(f, vec![1]);
        assert!(v.healthy);
        assert_eq!(v.consecutive_failures, 1);
        assert_eq!(v.consecutive_successes, 0);
    }

    #[test]
    fn streak_in_the_current_direction_never_flips() {
        let (v, f) = flips(true, false, 1, &[true; 5]);
        assert!(f.is_empty());
        assert_eq!(v.consecutive_successes, 5);
    }

    #[test]
    fn counts_saturate() {
        let mut v =
            Verdict { healthy: true, consecutive_successes: u32::MAX, consecutive_failures: 0 };
        assert!(!v.record(true, false, 3, 3));
        assert_eq!(v.consecutive_successes, u32::MAX);
    }

    #[test]
    fn zero_threshold_acts_as_one() {
        let mut v = Verdict::new(true);
        assert!(v.record(false, false, 0, 0));
        assert!(v.record(true, false, 0, 0));
    }

    #[test]
    fn fall_and_rise_thresholds_are_separate() {
        // healthyThreshold 5, failureThreshold 1: down at the first failure, up only
        // after five passes in a row (a failure in between starts the count again).
        let mut v = Verdict::new(true);
        assert!(v.record(false, false, 1, 5));
        assert!(!v.healthy);
        let results = [true, true, true, false, true, true, true, true];
        let flips: Vec<bool> = results.iter().map(|p| v.record(*p, false, 1, 5)).collect();
        assert_eq!(flips, [false; 8], "the failure at index 3 starts the count again");
        assert!(!v.healthy);
        assert_eq!(v.consecutive_successes, 4);
        assert!(v.record(true, false, 1, 5), "the fifth pass in a row brings it back");
        assert!(v.healthy);
        assert_eq!(v.consecutive_successes, 5);
    }
}
