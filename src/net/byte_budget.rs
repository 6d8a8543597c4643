//! A connection's byte budget (`max_bytes_per_sec`), sans-IO: a leaky
//! bucket of the bytes written to it. While the bytes written recently plus
//! those queued pass the burst, the connection's updates are held back and
//! merged field by field, exactly as conflation does
//! ([`super::backlog`]); as the bucket drains they go out, one merged
//! update per topic, so the client's values stay exact and only their
//! frequency falls to what its link can carry.

use std::time::{Duration, Instant};

/// The smallest burst: one large event (a book change) must fit, or a
/// budget under it would never send one.
const MIN_BURST: f64 = 4096.0;

/// How much of a second's budget may go out at once.
const BURST_SECONDS: f64 = 0.25;

#[derive(Debug, Clone)]
pub(crate) struct ByteBudget {
    /// Bytes per second.
    rate: f64,
    /// Bytes that may go out back to back.
    burst: f64,
    /// Bytes written and not yet paid for by time, as of `at`.
    debt: f64,
    at: Instant,
}

impl ByteBudget {
    pub fn new(bytes_per_sec: u64, now: Instant) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        ByteBudget {
            rate,
            burst: (rate * BURST_SECONDS).max(MIN_BURST),
            debt: 0.0,
            at: now,
        }
    }

    /// The budget in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    fn debt_at(&self, now: Instant) -> f64 {
        let paid = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        (self.debt - paid).max(0.0)
    }

    /// Records `bytes` written to the socket.
    pub fn spend(&mut self, bytes: u64, now: Instant) {
        self.debt = self.debt_at(now) + bytes as f64;
        self.at = now;
    }

    /// Is the budget used up, counting `queued` bytes not written yet?
    pub fn over(&self, queued: usize, now: Instant) -> bool {
        self.debt_at(now) + queued as f64 >= self.burst
    }

    /// When the bucket will have drained to half the burst (counting
    /// `queued`), the time to send what is held back.
    pub fn next_room(&self, queued: usize, now: Instant) -> Instant {
        let excess = self.debt_at(now) + queued as f64 - self.burst / 2.0;
        now + Duration::from_secs_f64((excess / self.rate).max(0.0))
    }
}

/// The budget in force: the smallest of the server's limit, the token's
/// and what the client asked for (each `None` or 0 when not set).
pub(crate) fn effective(limits: [Option<u64>; 3]) -> Option<u64> {
    limits.into_iter().flatten().filter(|&b| b > 0).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_drains_at_the_rate() {
        let t0 = Instant::now();
        let mut b = ByteBudget::new(10_000, t0);
        assert!(!b.over(0, t0));
        assert!(
            !b.over(4095, t0) && b.over(4096, t0),
            "a quarter second, at least 4 KiB"
        );
        b.spend(4000, t0);
        assert!(!b.over(0, t0));
        assert!(b.over(96, t0), "queued bytes count");
        b.spend(6000, t0);
        assert!(b.over(0, t0));
        // 10,000 bytes of debt: half the burst (2,048) left after ~0.8 s.
        let at = b.next_room(0, t0);
        let wait = at - t0;
        assert!(
            wait > Duration::from_millis(790) && wait < Duration::from_millis(800),
            "{wait:?}"
        );
        assert!(!b.over(0, at));
        assert!(b.over(0, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn the_smallest_limit_wins_and_zero_means_none() {
        assert_eq!(effective([None, None, None]), None);
        assert_eq!(effective([Some(0), None, Some(5000)]), Some(5000));
        assert_eq!(
            effective([Some(100_000), Some(20_000), Some(50_000)]),
            Some(20_000)
        );
    }
}
