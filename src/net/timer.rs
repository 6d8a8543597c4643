//! Deadlines of one shard.
//!
//! Every deadline of a kind is "now + the same timeout", so deadlines are set in
//! the order they expire and a FIFO queue is a complete timer: O(1) to set, O(1)
//! per expiry, no per-connection timer objects. Entries are not cancelled; a
//! stale one is recognised by the connection id it carries.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A FIFO of deadlines for one fixed timeout.
#[derive(Debug)]
pub(crate) struct DeadlineQueue {
    timeout: Duration,
    queue: VecDeque<(Instant, usize, u64)>,
}

impl DeadlineQueue {
    pub fn new(timeout: Duration) -> Self {
        DeadlineQueue {
            timeout,
            queue: VecDeque::new(),
        }
    }

    /// Sets a deadline `timeout` from `now` for connection `id` at slab `token`.
    pub fn push(&mut self, now: Instant, token: usize, id: u64) {
        self.queue.push_back((now + self.timeout, token, id));
    }

    /// Removes and returns the next expired entry, if any.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.queue.front() {
            Some(&(at, token, id)) if at <= now => {
                self.queue.pop_front();
                Some((token, id))
            }
            _ => None,
        }
    }

    /// When the next entry expires.
    pub fn next(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_order() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new(Duration::from_secs(1));
        q.push(t0, 1, 10);
        q.push(t0 + Duration::from_millis(500), 2, 20);
        assert_eq!(q.pop_expired(t0), None);
        assert_eq!(
            q.pop_expired(t0 + Duration::from_millis(1200)),
            Some((1, 10))
        );
        assert_eq!(q.pop_expired(t0 + Duration::from_millis(1200)), None);
        assert_eq!(q.next(), Some(t0 + Duration::from_millis(1500)));
    }
}
