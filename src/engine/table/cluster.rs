//! Cluster mode: a topic's numbering comes from the cluster's store
//! (Redis), not from this router. An update arrives with its `seq` and
//! epoch already given; the slot says whether it is the next one, a
//! duplicate, the first of a new numbering, or past a gap (then the value
//! is loaded from the store, with its history, and subscribers get it as a
//! fresh snapshot).

use super::{prefix_range, Heard, Snapshot, TopicSlot, TopicTable};
use crate::engine::epoch::Epoch;
use crate::engine::history::Past;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

/// Where an update numbered elsewhere fits a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// The next one in the numbering the topic follows: apply it.
    Next,
    /// Already applied (or older): drop it.
    Duplicate,
    /// `seq` 1 of a topic with no value here: take its epoch, apply it.
    First,
    /// `seq` 1 of a new numbering while another one's value is here: the
    /// topic is cleared first, then this applies.
    Restart,
    /// Updates are missing in between, or the topic is not followed yet:
    /// the value must be loaded from the store.
    Gap,
}

impl TopicSlot {
    /// Router only: where update `seq` of numbering `epoch` fits.
    pub(crate) fn fit(&self, epoch: Epoch, seq: u64) -> Fit {
        let st = self.state.lock();
        let has_value = st.value.seq > 0;
        if st.synced && has_value && st.value.epoch == epoch {
            return match seq {
                s if s <= st.value.seq => Fit::Duplicate,
                s if s == st.value.seq + 1 => Fit::Next,
                _ => Fit::Gap,
            };
        }
        match (seq, has_value) {
            (1, false) => Fit::First,
            (1, true) => Fit::Restart,
            _ => Fit::Gap,
        }
    }

    /// Router only: the topic follows numbering `epoch` from now on (its
    /// value is empty: just created or cleared).
    pub(crate) fn adopt_epoch(&self, epoch: Epoch) {
        let mut st = self.state.lock();
        st.value.epoch = epoch;
        st.synced = true;
    }

    /// Router only: the topic is no longer followed; the next update that
    /// reaches it is a gap, and so loads it again.
    pub(crate) fn unfollow(&self) {
        self.state.lock().synced = false;
    }

    /// Router only: takes the store's value and history (consecutive,
    /// ending at the value's `seq`). Returns None when the topic already
    /// holds that value (or a newer one of the same numbering); otherwise
    /// the topic starts a new generation, like a clear, so updates in
    /// flight from before are not delivered on top of it, and the caller
    /// sends every subscriber the new value as a snapshot. Also returns the
    /// history entries freed and added.
    pub(crate) fn load(
        &self,
        value: Snapshot,
        history: &[Past],
        cap: usize,
    ) -> Option<(Heard, usize, usize)> {
        let mut st = self.state.lock();
        let current = st.value.seq > 0 && st.value.epoch == value.epoch;
        if current && st.value.seq >= value.seq {
            st.synced = true;
            return None;
        }
        st.generation = st.generation.wrapping_add(1);
        let freed = st.history.clear();
        // Stale as the store says: its publisher may have left on
        // another node before this one loaded it.
        st.value = value;
        st.synced = true;
        st.changed_at = Instant::now();
        let tail = history.len().saturating_sub(cap);
        for p in &history[tail..] {
            st.history.push(p.seq, p.ts, &p.prices, cap);
        }
        let added = history.len() - tail;
        self.history_first.store(st.history.first(), Relaxed);
        self.generation.store(st.generation, Relaxed);
        Some((Heard::of(&st), freed, added))
    }
}

impl TopicTable {
    /// Does any shard want `topic`, by name or by a pattern?
    pub(crate) fn wanted(&self, topic: &str) -> bool {
        let inner = self.inner.read();
        let any = |m: &[u64]| m.iter().any(|b| *b != 0);
        inner
            .topics
            .get(topic)
            .is_some_and(|s| any(&s.state.lock().interest))
            || inner.pending_exact.get(topic).is_some_and(|m| any(m))
            || inner.prefixes.keys().any(|p| topic.starts_with(&**p))
    }

    /// Does any shard want every topic under `prefix` (a pattern that
    /// covers it)?
    pub(crate) fn prefix_wanted(&self, prefix: &str) -> bool {
        let inner = self.inner.read();
        inner.prefixes.keys().any(|p| prefix.starts_with(&**p))
    }

    /// Every topic here under `prefix`, with a value or not.
    pub(crate) fn names_under(&self, prefix: &str) -> Vec<std::sync::Arc<str>> {
        let inner = self.inner.read();
        prefix_range(&inner.topics, prefix)
            .map(|s| s.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::update::Prices;

    fn slot() -> TopicSlot {
        TopicSlot::new("T".into(), Default::default(), 0)
    }

    fn bid(v: f64) -> Prices {
        Prices {
            bid: Some(v),
            ..Prices::default()
        }
    }

    #[test]
    fn numbered_updates_fit_in_order_and_gaps_are_seen() {
        let s = slot();
        let e = Epoch::new();
        assert_eq!(s.fit(e, 5), Fit::Gap, "not followed: load first");
        assert_eq!(s.fit(e, 1), Fit::First);
        s.adopt_epoch(e);
        s.apply(1, &bid(1.0), 8, Instant::now());
        assert_eq!(s.fit(e, 1), Fit::Duplicate);
        assert_eq!(s.fit(e, 2), Fit::Next);
        assert_eq!(s.fit(e, 3), Fit::Gap);
        let other = Epoch::parse("00000001").unwrap();
        assert_eq!(s.fit(other, 1), Fit::Restart);
        assert_eq!(s.fit(other, 2), Fit::Gap);
        s.unfollow();
        assert_eq!(s.fit(e, 2), Fit::Gap, "unfollowed: load again");
    }

    #[test]
    fn a_load_replaces_an_older_value_with_its_history_and_keeps_a_current_one() {
        let s = slot();
        let e = Epoch::new();
        let history: Vec<Past> = (8..=10)
            .map(|seq| Past {
                seq,
                ts: seq,
                prices: bid(seq as f64),
            })
            .collect();
        let value = Snapshot {
            seq: 10,
            ts: 10,
            prices: bid(10.0),
            epoch: e,
            stale: false,
        };
        let (heard, freed, added) = s.load(value, &history, 2).unwrap();
        assert_eq!((heard.seq, freed, added), (10, 0, 2));
        assert_eq!(s.snapshot(), value);
        assert_eq!(s.fit(e, 11), Fit::Next);
        assert!(s.load(value, &history, 2).is_none(), "already current");
        let joined = s.join(0, crate::model::format::Format::Json, None);
        assert_eq!(joined.generation, heard.generation);
    }
}
