//! Recent updates per topic, so a client that reconnects can resume with
//! `since` instead of a blind re-snapshot; bounded per topic (`history_len`)
//! and server-wide (`history_bytes`, oldest first: see `budget`).

use super::update::Prices;
use std::collections::VecDeque;

/// One sequenced update as it was published (the fields it carried).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Past {
    /// Its sequence number.
    pub seq: u64,
    /// Its publisher timestamp.
    pub ts: u64,
    /// The fields it carried.
    pub prices: Prices,
}

/// A topic's recent updates, oldest first, consecutive in `seq`.
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<Past>,
}

impl History {
    /// Appends an update; drops the oldest past `cap`. Returns how many were dropped.
    pub fn push(&mut self, past: Past, cap: usize) -> usize {
        if cap == 0 {
            return 0;
        }
        self.entries.push_back(past);
        let mut dropped = 0;
        while self.entries.len() > cap {
            self.entries.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Drops entries up to and including `seq` (server-wide eviction).
    /// Returns how many.
    pub fn evict_through(&mut self, seq: u64) -> usize {
        let mut dropped = 0;
        while self.entries.front().is_some_and(|p| p.seq <= seq) {
            self.entries.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// Is the entry with this `seq` still kept?
    pub fn holds(&self, seq: u64) -> bool {
        self.entries.front().is_some_and(|p| p.seq <= seq)
            && self.entries.back().is_some_and(|p| p.seq >= seq)
    }

    /// Every update after `seq` up to `latest`, if all of them are still
    /// here (`Some(empty)` when the client is up to date); `None` when some
    /// are gone.
    pub fn since(&self, seq: u64, latest: u64) -> Option<Vec<Past>> {
        if seq >= latest {
            return (seq == latest).then(Vec::new);
        }
        let first = self.entries.front()?.seq;
        if first > seq + 1 {
            return None;
        }
        let skip = (seq + 1 - first) as usize;
        let out: Vec<Past> = self.entries.iter().skip(skip).copied().collect();
        (out.len() as u64 == latest - seq).then_some(out)
    }

    /// Frees every entry; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries = VecDeque::new();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(seq: u64) -> Past {
        Past {
            seq,
            ts: seq,
            prices: Prices::default(),
        }
    }

    #[test]
    fn since_gives_exactly_the_missing_updates_or_nothing() {
        let mut h = History::default();
        for s in 1..=10 {
            h.push(past(s), 4);
        }
        // Kept: 7, 8, 9, 10.
        assert_eq!(
            h.since(6, 10)
                .unwrap()
                .iter()
                .map(|p| p.seq)
                .collect::<Vec<_>>(),
            [7, 8, 9, 10]
        );
        assert_eq!(h.since(8, 10).unwrap().len(), 2);
        assert_eq!(h.since(10, 10).unwrap().len(), 0);
        assert!(h.since(5, 10).is_none(), "update 6 is gone");
        assert!(h.since(11, 10).is_none(), "ahead of the server");
        assert_eq!(h.evict_through(8), 2);
        assert!(h.since(7, 10).is_none());
        assert!(h.holds(9) && !h.holds(8));
        assert_eq!(h.clear(), 2);
    }
}
