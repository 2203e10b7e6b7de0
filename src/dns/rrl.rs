//! Response rate limiting for UDP: each client network (/24 for IPv4, /56 for
//! IPv6) gets `rate` responses a second (and a burst of as many); past that,
//! every `slip`-th response goes out truncated — a real client retries over TCP,
//! which cannot be spoofed — and the others are dropped, so the server is useless
//! as a reflector towards a spoofed victim.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rustc_hash::FxBuildHasher;

use crate::conn::LogThrottle;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Send,
    /// Send a truncated response (header and question, TC set) instead.
    Slip,
    Drop,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Responses over the rate since the bucket was last full: picks which ones slip.
    excess: u32,
}

const SHARDS: usize = 16;
/// Networks tracked per shard; past that, networks whose bucket has refilled are
/// forgotten (and, when that frees less than half, the shard starts over).
const MAX_PER_SHARD: usize = 16_384;

pub struct RateLimiter {
    rate: f64,
    slip: u32,
    shards: Box<[Mutex<HashMap<u128, Bucket, FxBuildHasher>>]>,
    log: LogThrottle,
}

impl RateLimiter {
    /// None when `per_second` is 0 (rate limiting off).
    pub fn new(per_second: u32, slip: u32) -> Option<Self> {
        (per_second > 0).then(|| Self {
            rate: f64::from(per_second),
            slip,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
            log: LogThrottle::default(),
        })
    }

    /// Logs (throttled) that `client`'s network is over the rate.
    pub fn log_limited(&self, client: IpAddr, action: Action) {
        if let Some(suppressed) = self.log.ready() {
            tracing::warn!(
                client = %client,
                rate = self.rate,
                action = ?action,
                suppressed,
                "UDP responses over the rate limit of the client's network"
            );
        }
    }

    /// Charges one response to `client`'s network.
    pub fn check(&self, client: IpAddr, now: Instant) -> Action {
        let key = network(client);
        let shard =
            &self.shards[(key as usize ^ (key >> 64) as usize).wrapping_mul(0x9E37_79B9) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_PER_SHARD && !map.contains_key(&key) {
            let rate = self.rate;
            map.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < rate);
            // Keeps the scan amortised: at most one per MAX_PER_SHARD / 2 new networks.
            if map.len() >= MAX_PER_SHARD / 2 {
                map.clear();
            }
        }
        let bucket = map.entry(key).or_insert(Bucket { tokens: self.rate, last: now, excess: 0 });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.last = now;
        if bucket.tokens >= self.rate {
            bucket.excess = 0;
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Action::Send;
        }
        bucket.excess = bucket.excess.wrapping_add(1);
        if self.slip > 0 && bucket.excess.is_multiple_of(self.slip) {
            Action::Slip
        } else {
            Action::Drop
        }
    }
}

/// The client's network: /24 for IPv4 (IPv4-mapped IPv6 included), /56 for IPv6.
fn network(ip: IpAddr) -> u128 {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) >> 8) | 1 << 127,
        IpAddr::V6(v6) => u128::from(v6) >> 72,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_at_zero() {
        assert!(RateLimiter::new(0, 2).is_none());
    }

    #[test]
    fn a_network_gets_its_rate_then_every_second_response_slips() {
        let rrl = RateLimiter::new(5, 2).unwrap();
        let now = Instant::now();
        let actions: Vec<Action> =
            (0..9).map(|i| rrl.check(ip(&format!("192.0.2.{i}")), now)).collect();
        use Action::*;
        assert_eq!(actions, [Send, Send, Send, Send, Send, Drop, Slip, Drop, Slip]);
        // Another /24 has its own budget.
        assert_eq!(rrl.check(ip("192.0.3.1"), now), Send);
        // A second later the budget is back.
        assert_eq!(rrl.check(ip("192.0.2.200"), now + Duration::from_secs(1)), Send);
    }

    #[test]
    fn ipv6_networks_are_slash_56_and_mapped_ipv4_is_ipv4() {
        assert_eq!(network(ip("2001:db8:0:ff::1")), network(ip("2001:db8:0:ab::2")));
        assert_ne!(network(ip("2001:db8:0:100::1")), network(ip("2001:db8::1")));
        assert_eq!(network(ip("::ffff:192.0.2.7")), network(ip("192.0.2.99")));
        assert_ne!(network(ip("192.0.2.1")), network(ip("::c000:201")));
    }

    #[test]
    fn slip_zero_drops_and_slip_one_truncates_everything_over_the_rate() {
        let now = Instant::now();
        let drop_all = RateLimiter::new(1, 0).unwrap();
        drop_all.check(ip("192.0.2.1"), now);
        assert!((0..4).all(|_| drop_all.check(ip("192.0.2.1"), now) == Action::Drop));
        let slip_all = RateLimiter::new(1, 1).unwrap();
        slip_all.check(ip("192.0.2.1"), now);
        assert!((0..4).all(|_| slip_all.check(ip("192.0.2.1"), now) == Action::Slip));
    }

    #[test]
    fn the_table_stays_bounded() {
        let rrl = RateLimiter::new(1, 2).unwrap();
        let now = Instant::now();
        for i in 0..(SHARDS * MAX_PER_SHARD * 2) as u32 {
            rrl.check(IpAddr::V4((i << 8).into()), now);
        }
        let tracked: usize = rrl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= SHARDS * MAX_PER_SHARD);
    }
}
