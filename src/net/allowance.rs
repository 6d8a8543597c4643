//! What a connection is allowed beyond the server's limits: its JWT's
//! grant and where its expiry stands, and its command rate.

use crate::access::Grant;
use std::time::Instant;

/// A connection's JWT grant and where its expiry stands.
pub(crate) struct Access {
    pub grant: Grant,
    /// When the token expires (this process's clock).
    pub expires_at: Option<Instant>,
    /// `expired` was sent; the connection is closed at this instant unless
    /// it presents a fresh token first.
    pub close_at: Option<Instant>,
}

impl Access {
    pub fn new(grant: Grant) -> Access {
        Access {
            expires_at: grant.expires_at(),
            grant,
            close_at: None,
        }
    }
}

/// Commands a penalized connection starts with (`CommandBucket::penalized`).
const PENALIZED_START: f32 = 8.0;

/// A token bucket of commands: it holds up to one second's worth and
/// refills at the configured rate.
pub(crate) struct CommandBucket {
    tokens: f32,
    at: Option<Instant>,
    /// Commands refused in a row.
    pub refused: u32,
}

impl CommandBucket {
    pub fn new() -> Self {
        CommandBucket {
            tokens: 0.0,
            at: None,
            refused: 0,
        }
    }

    /// A bucket holding only `PENALIZED_START` commands, filling from
    /// `now`: for a connection from an address just closed for flooding
    /// (`net::flood_memory`). Not empty, because an address can be shared
    /// (a NAT): a neighbour's dashboard still gets its first few commands
    /// at once, while the flooder gets a few per reconnect, not a second's
    /// worth.
    pub fn penalized(now: Instant) -> Self {
        CommandBucket {
            tokens: PENALIZED_START,
            at: Some(now),
            refused: 0,
        }
    }

    /// Refills the bucket to `now` and says whether a command would be
    /// taken: the shard asks before parsing, so a refused command costs
    /// only a skim for its `id` (a 1,024-topic command sent without pause
    /// is parsed once per token, not once per attempt).
    pub fn has_token(&mut self, rate: f64, now: Instant) -> bool {
        if rate <= 0.0 {
            return true;
        }
        self.refill(rate, now);
        self.tokens >= 1.0
    }

    /// Takes one command's token at `rate` per second (0: no limit).
    ///
    /// `refused` counts refusals until the client is calm again, i.e. a
    /// command finds at least half the bucket refilled: a client that
    /// keeps sending faster than the rate gets one command through per
    /// refill, and resetting the count on each of those let it go on
    /// forever; now it reaches the closing threshold.
    pub fn take(&mut self, rate: f64, now: Instant) -> bool {
        if rate <= 0.0 {
            return true;
        }
        let cap = self.refill(rate, now);
        if self.tokens >= 1.0 {
            if self.tokens >= cap / 2.0 {
                self.refused = 0;
            }
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// Adds the tokens earned since the last look; returns the capacity.
    fn refill(&mut self, rate: f64, now: Instant) -> f32 {
        let cap = rate.max(1.0) as f32;
        let elapsed = self.at.map_or(cap as f64 / rate, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + (elapsed * rate) as f32).min(cap);
        self.at = Some(now);
        cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const RATE: f64 = 20.0;

    #[test]
    fn a_fresh_bucket_holds_a_seconds_worth_and_asking_takes_nothing() {
        let t0 = Instant::now();
        let mut b = CommandBucket::new();
        assert!(b.has_token(RATE, t0));
        assert!(b.has_token(RATE, t0), "asking twice takes nothing");
        assert_eq!((0..25).filter(|_| b.take(RATE, t0)).count(), 20);
        assert!(!b.has_token(RATE, t0));
        assert!(b.has_token(0.0, t0), "rate 0: no limit");
    }

    #[test]
    fn a_steady_sender_over_the_rate_keeps_its_refusals() {
        // Five times the rate for three seconds: one command in five gets
        // through, and the refusals are never forgiven on the way.
        let t0 = Instant::now();
        let mut b = CommandBucket::new();
        let mut through = 0;
        for i in 0..300u32 {
            through += usize::from(b.take(RATE, t0 + Duration::from_millis(10) * i));
        }
        assert!((70..=82).contains(&through), "{through} let through");
        assert!(b.refused > 200, "{} refused in a row", b.refused);
    }

    #[test]
    fn a_pause_that_refills_half_the_bucket_forgives_refusals() {
        let t0 = Instant::now();
        let mut b = CommandBucket::new();
        for _ in 0..30 {
            b.take(RATE, t0);
        }
        assert_eq!(b.refused, 10);
        // A quarter of a second refills a quarter: still counted.
        assert!(b.take(RATE, t0 + Duration::from_millis(250)));
        assert_eq!(b.refused, 10);
        // Half a second more: half the bucket, forgiven.
        assert!(b.take(RATE, t0 + Duration::from_millis(750)));
        assert_eq!(b.refused, 0);
    }

    #[test]
    fn a_penalized_bucket_starts_with_a_few_and_fills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = CommandBucket::penalized(t0);
        assert_eq!((0..20).filter(|_| b.take(RATE, t0)).count(), 8);
        let later = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| b.take(RATE, later)).count(), 10);
        // Never more than the bucket holds, whatever the start.
        let mut slow = CommandBucket::penalized(t0);
        assert_eq!((0..20).filter(|_| slow.take(2.0, t0)).count(), 2);
    }
}
