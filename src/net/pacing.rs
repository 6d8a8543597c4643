//! Rate caps per subscription (`max_rate`): per connection and topic, when
//! the last event went out, and the update that waits for the next slot,
//! merged from every one that arrived meanwhile (trailing edge: the latest
//! value always goes out at most `1/max_rate` after it changed).

use super::merged::Merged;
use crate::engine::link::Encoded;
use crate::model::update::Prices;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One topic's rate state for one connection.
#[derive(Debug, Default)]
struct Pace {
    /// The interval the connection's subscriptions give this topic, once
    /// looked up (`Some(None)`: not capped).
    interval: Option<Option<Duration>>,
    last_sent: Option<Instant>,
    /// Boxed: most topics wait for nothing most of the time.
    held: Option<Box<Merged>>,
    /// When what is held may go.
    due: Option<Instant>,
}

/// A connection's rate state, by topic.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    topics: crate::net::topic_map::TopicMap<Pace>,
    /// Topics with an update held back (kept so `held_bytes` is O(1)).
    held: usize,
}

impl Pacer {
    /// Decides for one update: `None`, send it now (its slot is taken, or
    /// the topic is not capped); `Some(due)`, it is held back, and `due` is
    /// set when a new wait starts (the caller arms one timer for it).
    /// `interval_of` gives the topic's interval the first time the
    /// connection meets it; it is kept here after. One lookup per call.
    pub fn offer(
        &mut self,
        enc: &Arc<Encoded>,
        ts: u64,
        prices: &Prices,
        class: usize,
        interval_of: impl FnOnce() -> Option<Duration>,
        now: Instant,
    ) -> Option<Option<Instant>> {
        // Looked up by name first: the topic's `Arc` is shared by every
        // shard and the router, and cloning it for `entry` would bounce its
        // reference count between cores once per subscriber per update.
        let pace = match self.topics.get_mut(&*enc.topic) {
            Some(pace) => pace,
            None => self.topics.entry(enc.topic.clone()).or_default(),
        };
        let interval = *pace.interval.get_or_insert_with(interval_of);
        let interval = interval?;
        if let Some(held) = pace.held.as_mut() {
            held.absorb(enc, ts, prices);
            return Some(None);
        }
        if let Some(last) = pace.last_sent {
            let due = last + interval;
            if now < due {
                pace.held = Some(Box::new(Merged::new(enc, ts, prices, class)));
                self.held += 1;
                pace.due = Some(due);
                return Some(Some(due));
            }
        }
        pace.last_sent = Some(now);
        None
    }

    /// The held-back update of `topic`, if its slot has come. (A timer set
    /// for an update that was since sent out of turn may fire before the
    /// slot of one held later: that one waits for its own timer.)
    pub fn take_due(&mut self, topic: &str, now: Instant) -> Option<Merged> {
        let pace = self.topics.get_mut(topic)?;
        if pace.due.is_none_or(|due| now < due) {
            return None;
        }
        let held = pace.held.take()?;
        self.held -= 1;
        pace.due = None;
        pace.last_sent = Some(now);
        Some(*held)
    }

    /// The held-back update of `topic`, taken out of turn (an event that must
    /// follow it, or a clear).
    pub fn take_held(&mut self, topic: &str) -> Option<Merged> {
        let pace = self.topics.get_mut(topic)?;
        pace.due = None;
        let held = pace.held.take()?;
        self.held -= 1;
        Some(*held)
    }

    /// Every held-back update, taken out of turn.
    pub fn take_all_held(&mut self) -> Vec<(Arc<str>, Merged)> {
        let mut all = Vec::new();
        for (topic, pace) in self.topics.iter_mut() {
            if let Some(held) = pace.held.take() {
                pace.due = None;
                all.push((topic.clone(), *held));
            }
        }
        self.held = 0;
        all
    }

    /// After the connection's subscriptions changed: topics no longer
    /// covered are forgotten (with what they held back), and every interval
    /// is looked up again.
    pub fn retain(&mut self, covered: impl Fn(&str) -> bool) {
        self.topics.retain(|t, _| covered(t));
        for pace in self.topics.values_mut() {
            pace.interval = None;
        }
        self.held = self.topics.values().filter(|p| p.held.is_some()).count();
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Memory held, by estimate: each topic's entry, and what it holds
    /// back. O(1): called after every flush of a rate-capped connection.
    pub fn held_bytes(&self) -> usize {
        const ENTRY: usize = std::mem::size_of::<(Arc<str>, Pace)>() + 8;
        self.topics.capacity() * ENTRY + self.held * std::mem::size_of::<Merged>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::link::Event;

    fn enc(seq: u64, bid: f64) -> Arc<Encoded> {
        let prices = Prices {
            bid: Some(bid),
            ..Prices::default()
        };
        Encoded::test_update("A", seq, prices, None)
    }

    fn offer(p: &mut Pacer, seq: u64, now: Instant) -> Option<Option<Instant>> {
        let e = enc(seq, seq as f64);
        let Event::Update { ts, prices, .. } = e.event else {
            unreachable!()
        };
        p.offer(&e, ts, &prices, 0, || Some(Duration::from_millis(200)), now)
    }

    #[test]
    fn one_event_per_interval_and_the_latest_value_at_the_slot() {
        let mut p = Pacer::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(offer(&mut p, 1, t0), None, "the first goes at once");
        assert_eq!(offer(&mut p, 2, t0 + ms(10)), Some(Some(t0 + ms(200))));
        assert_eq!(
            offer(&mut p, 3, t0 + ms(20)),
            Some(None),
            "merged, no new timer"
        );
        assert!(p.take_due("A", t0 + ms(150)).is_none(), "before its slot");
        let released = p.take_due("A", t0 + ms(210)).unwrap();
        assert!(format!("{released:?}").contains("seq: 3"), "{released:?}");
        // The slot just taken at 210 ms: the next update waits until 410 ms.
        assert_eq!(offer(&mut p, 4, t0 + ms(300)), Some(Some(t0 + ms(410))));
        assert!(p.take_held("A").is_some());
        assert!(p.take_held("A").is_none());
        // Long quiet: the next goes at once.
        assert_eq!(offer(&mut p, 5, t0 + ms(1000)), None);
        p.retain(|_| false);
        assert!(p.is_empty());
    }
}
