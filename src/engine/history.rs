//! Recent updates per topic, so a client that reconnects can resume with
//! `since` instead of a blind re-snapshot; bounded per topic (`history_len`)
//! and server-wide (`history_bytes`, oldest first: see `budget`).

use crate::model::update::{Extra, Prices};
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

/// One kept update, compact: its `seq` is implied by its place, and the
/// fields take 8 bytes each plus one bit, not 16 (half the memory of `Past`,
/// and half the bytes moved on the router's hot path).
#[derive(Debug, Clone, Copy)]
struct Stored {
    ts: u64,
    values: [f64; 7],
    present: u8,
    /// The update carried extra fields: they are at the same place in
    /// `History::extras` (kept only by topics that ever had any, so the
    /// others pay nothing for them).
    extra: bool,
}

impl Stored {
    fn new(ts: u64, p: &Prices) -> Stored {
        let all = p.fields();
        let mut values = [0.0; 7];
        let mut present = 0u8;
        for (i, v) in all.iter().enumerate() {
            if let Some(v) = v {
                values[i] = *v;
                present |= 1 << i;
            }
        }
        Stored {
            ts,
            values,
            present,
            extra: !p.extra.is_empty(),
        }
    }

    fn past(&self, seq: u64, extra: Option<&Extra>) -> Past {
        let get = |i: usize| (self.present & (1 << i) != 0).then_some(self.values[i]);
        let mut prices = Prices::from_array(std::array::from_fn(get));
        if let Some(e) = extra.filter(|_| self.extra) {
            prices.extra = *e;
        }
        Past {
            seq,
            ts: self.ts,
            prices,
        }
    }
}

/// What one kept update costs in a topic's history.
pub(crate) const STORED_BYTES: usize = std::mem::size_of::<Stored>();

/// A topic's recent updates, oldest first, consecutive in `seq`.
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<Stored>,
    /// The extra fields of each entry, in step with `entries`; empty until
    /// an update of the topic carries one.
    extras: VecDeque<Extra>,
    /// The `seq` of the oldest entry.
    first: u64,
}

impl History {
    /// Appends update `seq` (the one after the last kept, or the first);
    /// drops the oldest past `cap`. Returns how many were dropped.
    pub fn push(&mut self, seq: u64, ts: u64, prices: &Prices, cap: usize) -> usize {
        if cap == 0 {
            return 0;
        }
        if self.entries.is_empty() {
            self.first = seq;
            self.extras.clear();
        }
        if !prices.extra.is_empty() && self.extras.len() < self.entries.len() {
            self.extras.resize(self.entries.len(), Extra::default());
        }
        self.entries.push_back(Stored::new(ts, prices));
        if !self.extras.is_empty() || !prices.extra.is_empty() {
            self.extras.push_back(prices.extra);
        }
        let mut dropped = 0;
        while self.entries.len() > cap {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn pop_front(&mut self) {
        self.entries.pop_front();
        self.extras.pop_front();
        self.first += 1;
    }

    fn past(&self, i: usize) -> Past {
        self.entries[i].past(self.first + i as u64, self.extras.get(i))
    }

    /// Drops entries up to and including `seq` (server-wide eviction).
    /// Returns how many.
    pub fn evict_through(&mut self, seq: u64) -> usize {
        let mut dropped = 0;
        while !self.entries.is_empty() && self.first <= seq {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// The `seq` of the oldest entry kept; `u64::MAX` when none is.
    pub fn first(&self) -> u64 {
        if self.entries.is_empty() {
            u64::MAX
        } else {
            self.first
        }
    }

    /// Every update after `seq` up to `latest`, if all of them are still
    /// here (`Some(empty)` when the client is up to date); `None` when some
    /// are gone.
    pub fn since(&self, seq: u64, latest: u64) -> Option<Vec<Past>> {
        if seq >= latest {
            return (seq == latest).then(Vec::new);
        }
        if self.entries.is_empty() || self.first > seq + 1 {
            return None;
        }
        let skip = (seq + 1 - self.first) as usize;
        let out: Vec<Past> = (skip..self.entries.len()).map(|i| self.past(i)).collect();
        (out.len() as u64 == latest - seq).then_some(out)
    }

    /// The last `n` entries kept, oldest first.
    pub fn last(&self, n: usize) -> Vec<Past> {
        let skip = self.entries.len().saturating_sub(n);
        (skip..self.entries.len()).map(|i| self.past(i)).collect()
    }

    /// Frees every entry; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries = VecDeque::new();
        self.extras = VecDeque::new();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_gives_exactly_the_missing_updates_or_nothing() {
        let mut h = History::default();
        let p = Prices {
            bid: Some(1.5),
            volume: Some(0.0),
            ..Prices::default()
        };
        for s in 1..=10 {
            h.push(s, s * 10, &p, 4);
        }
        let replay = h.since(9, 10).unwrap();
        assert_eq!(
            replay,
            [Past {
                seq: 10,
                ts: 100,
                prices: p
            }],
            "fields survive storage"
        );
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
        assert_eq!(h.first(), 9);
        assert_eq!(h.clear(), 2);
    }

    #[test]
    fn extra_fields_are_kept_in_step_with_their_entries() {
        let mut h = History::default();
        let plain = Prices {
            bid: Some(1.0),
            ..Prices::default()
        };
        let mut with = plain;
        with.extra.set(2, 0.25);
        h.push(1, 1, &plain, 3);
        h.push(2, 2, &with, 3);
        h.push(3, 3, &plain, 3);
        h.push(4, 4, &with, 3);
        let kept = h.since(1, 4).unwrap();
        let extras: Vec<Option<f64>> = kept.iter().map(|p| p.prices.extra.get(2)).collect();
        assert_eq!(extras, [Some(0.25), None, Some(0.25)]);
        assert_eq!(kept[0].prices, with);
        assert_eq!(h.evict_through(3), 2);
        assert_eq!(h.last(5)[0].prices, with);
    }
}
