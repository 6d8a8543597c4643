//! Addresses recently closed for flooding commands, so that reconnecting
//! does not buy a fresh bucket.
//!
//! The command bucket (`net::allowance`) is per connection and starts full:
//! a client closed for sending over its rate that reconnects at once got a
//! second's worth of commands run for free, each time (measured: a flood of
//! 1,024-topic commands got 5.7 times as many run by reconnecting every
//! ~0.2 s as by staying). For `PENALTY` after such a close, a new connection
//! from the same address starts with only a few commands in its bucket
//! (`CommandBucket::penalized`): it gets the rate, not a second's worth on
//! top of it, while neighbours behind the same NAT still get their first
//! few commands at once.
//!
//! Shared by the shards behind one lock, taken only when the memory holds
//! something (an atomic count says so) and on a flood close: a server that
//! nobody floods pays one atomic load per new connection.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long an address closed for flooding starts its connections almost
/// empty.
pub(crate) const PENALTY: Duration = Duration::from_secs(10);

/// Most addresses remembered: a flood from many addresses is the
/// connection limit's business; past this, the newest are not remembered.
const MOST: usize = 4096;

/// Addresses and until when their new connections start almost empty.
#[derive(Default)]
pub(crate) struct FloodMemory {
    inner: Mutex<Inner>,
    len: AtomicUsize,
}

#[derive(Default)]
struct Inner {
    until: HashMap<IpAddr, Instant>,
    /// When expired entries were last dropped: at most once a second, so a
    /// connection's look-up does not walk thousands of entries.
    swept: Option<Instant>,
}

impl Inner {
    /// Drops expired entries, if not done in the last second or `force`.
    fn sweep(&mut self, now: Instant, force: bool) {
        let due = self
            .swept
            .is_none_or(|at| now >= at + Duration::from_secs(1));
        if force || due {
            self.until.retain(|_, t| *t > now);
            self.swept = Some(now);
        }
    }
}

impl FloodMemory {
    /// `ip` was closed for flooding at `now`.
    pub fn remember(&self, ip: IpAddr, now: Instant) {
        let mut inner = self.inner.lock();
        let full = inner.until.len() >= MOST;
        inner.sweep(now, full);
        if inner.until.len() < MOST || inner.until.contains_key(&ip) {
            inner.until.insert(ip, now + PENALTY);
        }
        self.len.store(inner.until.len(), Ordering::Relaxed);
    }

    /// Should a connection from `ip` arriving at `now` start almost empty? Looks
    /// up nothing while the memory is empty.
    pub fn penalized(&self, ip: IpAddr, now: Instant) -> bool {
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut inner = self.inner.lock();
        inner.sweep(now, false);
        self.len.store(inner.until.len(), Ordering::Relaxed);
        inner.until.get(&ip).is_some_and(|t| *t > now)
    }

    /// Does the memory hold anything? (Then a new connection's address is
    /// worth asking the kernel for.)
    pub fn any(&self) -> bool {
        self.len.load(Ordering::Relaxed) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_penalized_for_the_period_and_only_it() {
        let m = FloodMemory::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        let t0 = Instant::now();
        assert!(!m.any() && !m.penalized(a, t0));
        m.remember(a, t0);
        assert!(m.any());
        assert!(m.penalized(a, t0 + PENALTY / 2));
        assert!(!m.penalized(b, t0 + PENALTY / 2));
        assert!(!m.penalized(a, t0 + PENALTY + Duration::from_millis(1)));
        assert!(
            !m.any(),
            "expired entries are dropped (the last sweep was 5 s before)"
        );
    }

    #[test]
    fn the_memory_is_bounded() {
        let m = FloodMemory::default();
        let t0 = Instant::now();
        for i in 0..(MOST as u32 + 100) {
            m.remember(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(m.inner.lock().until.len(), MOST);
        // Once the first ones expire, room is made for new ones.
        let later = t0 + PENALTY + Duration::from_millis(1);
        m.remember("10.9.9.9".parse().unwrap(), later);
        assert!(m.penalized("10.9.9.9".parse().unwrap(), later));
        assert_eq!(m.inner.lock().until.len(), 1);
    }
}
