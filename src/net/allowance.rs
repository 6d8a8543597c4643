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

    /// Takes one command's token at `rate` per second (0: no limit).
    pub fn take(&mut self, rate: f64, now: Instant) -> bool {
        if rate <= 0.0 {
            return true;
        }
        let cap = rate.max(1.0) as f32;
        let elapsed = self.at.map_or(cap as f64 / rate, |at| {
            now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + (elapsed * rate) as f32).min(cap);
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}
