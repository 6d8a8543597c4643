//! Heartbeats: which connections to ping and which to close as idle, decided
//! from how long each has been silent (sans-IO; the shard's sweep acts).

use std::time::Duration;

/// What a sweep does to one open connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Beat {
    /// It spoke recently, or a ping is already out and the idle timeout has
    /// not passed: nothing to do.
    Quiet,
    /// Silent for the ping interval: send a ping.
    Ping,
    /// Silent for the idle timeout, ping or no ping: close it.
    Idle,
}

/// The heartbeat settings in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub ping: Duration,
    pub idle: Duration,
}

impl Heartbeat {
    /// The decision for a connection silent for `silent` (`ping_out`: a
    /// ping was sent and nothing came back since).
    pub fn beat(&self, silent: Duration, ping_out: bool) -> Beat {
        if silent >= self.idle {
            Beat::Idle
        } else if silent >= self.ping && !ping_out {
            Beat::Ping
        } else {
            Beat::Quiet
        }
    }

    /// How long until the next sweep: half the ping interval, at most a
    /// second, so a deadline is late by at most that.
    pub fn sweep_period(&self) -> Duration {
        (self.ping / 2).min(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Heartbeat = Heartbeat {
        ping: Duration::from_secs(10),
        idle: Duration::from_secs(30),
    };

    #[test]
    fn a_connection_that_spoke_recently_is_left_alone() {
        assert_eq!(HB.beat(Duration::from_secs(9), false), Beat::Quiet);
    }

    #[test]
    fn a_silent_connection_is_pinged_once() {
        assert_eq!(HB.beat(Duration::from_secs(10), false), Beat::Ping);
        assert_eq!(HB.beat(Duration::from_secs(20), true), Beat::Quiet);
    }

    #[test]
    fn a_connection_silent_past_the_idle_timeout_is_closed_even_with_a_ping_out() {
        assert_eq!(HB.beat(Duration::from_secs(30), true), Beat::Idle);
        assert_eq!(HB.beat(Duration::from_secs(31), false), Beat::Idle);
    }

    #[test]
    fn the_sweep_runs_at_least_every_second_and_twice_per_ping_interval() {
        assert_eq!(HB.sweep_period(), Duration::from_secs(1));
        let fast = Heartbeat {
            ping: Duration::from_millis(400),
            idle: Duration::from_secs(1),
        };
        assert_eq!(fast.sweep_period(), Duration::from_millis(200));
    }
}
