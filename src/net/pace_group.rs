//! Rate caps shared by a topic's subscribers (`max_rate`): on a shard, the
//! subscribers of a topic that have the same interval form one group, with
//! one slot and one held-back update merged from every update that arrived
//! meanwhile (trailing edge, as per connection in [`super::pacing`]).
//!
//! Why: with per-connection pacing every update of a rate-capped topic
//! cost one lookup and one merge per subscriber (about 100 ns each, the
//! ingest wall with 1,000 dashboards at `max_rate` 10). A group decides and
//! merges once per update, and its slot's release is encoded once per
//! format and depth class for all its members.
//!
//! A connection is in the groups of its interval when every subscription
//! it holds gives the same interval ([`PaceMode::Every`]); one whose
//! subscriptions ask different rates keeps its own pacing
//! ([`PaceMode::MIXED`]). Sans-IO: plain values in, decisions out.

use super::merged::Merged;
use crate::engine::link::Encoded;
use crate::model::update::Prices;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a connection's updates are paced: not at all ([`PaceMode::FREE`]);
/// by the groups of one interval, in microseconds, for every topic it
/// receives (`every`); or, its subscriptions asking different rates, per
/// connection ([`PaceMode::MIXED`]). Four bytes: it sits in every
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PaceMode(u32);

impl PaceMode {
    pub const FREE: PaceMode = PaceMode(0);
    pub const MIXED: PaceMode = PaceMode(u32::MAX);

    /// Paced by the groups of interval `micros`.
    pub fn every(micros: u32) -> PaceMode {
        PaceMode(micros.clamp(1, u32::MAX - 1))
    }

    /// The group interval, when paced by groups.
    #[inline]
    pub fn group(self) -> Option<u32> {
        (self != Self::FREE && self != Self::MIXED).then_some(self.0)
    }

    /// The mode of a connection whose subscriptions all ask `asked`
    /// (`Some(None)`: none asks a rate; `None`: they ask different ones),
    /// under the cap of the server and its token.
    pub fn of(asked: Option<Option<f64>>, cap: Option<f64>) -> PaceMode {
        let Some(asked) = asked else {
            return PaceMode::MIXED;
        };
        let rate = match (asked, cap) {
            (Some(r), Some(c)) => r.min(c),
            (r, c) => match r.or(c) {
                Some(r) => r,
                None => return PaceMode::FREE,
            },
        };
        PaceMode::every((1e6 / rate).round().clamp(1.0, u32::MAX as f64) as u32)
    }
}

/// The interval of a group, from its key.
pub(crate) fn interval(every: u32) -> Duration {
    Duration::from_micros(every as u64)
}

/// The update a group holds back, and what tells each member how much of
/// it it has not seen.
#[derive(Debug)]
pub(crate) struct Released {
    pub merged: Merged,
    /// The seq of the first update merged into it.
    pub first_seq: u64,
    /// The clear count of its numbering.
    pub generation: u16,
}

impl Released {
    /// How many updates this stands for to a member whose snapshot (or
    /// last hand-over) covered through `skip_through`; None: nothing new
    /// to it. A member that joined while the group held updates its
    /// snapshot already covered gets the rest counted from there, so its
    /// `seq` steps stay exact (a topic's updates are numbered one apart).
    pub fn count_for(&self, skip_through: u64) -> Option<u32> {
        let seq = self.merged.seq();
        if seq <= skip_through {
            return None;
        }
        if skip_through >= self.first_seq {
            return Some((seq - skip_through).min(u32::MAX as u64) as u32);
        }
        Some(self.merged.count())
    }
}

/// One group: the subscribers of a topic on a shard with one interval.
#[derive(Debug)]
pub(crate) struct PaceGroup {
    /// The interval, in microseconds (the group's key).
    pub every: u32,
    last_sent: Option<Instant>,
    held: Option<Box<Held>>,
    /// The delivery the decision below was made for, and the decision:
    /// made once per event, read by every member.
    stamp: u64,
    open: bool,
}

#[derive(Debug)]
struct Held {
    released: Released,
    due: Instant,
}

/// What one group holding an update back costs, by estimate: the boxed
/// update and its slot's timer entry (a book's windows are shared with the
/// router's, so not counted).
pub(crate) const HELD_BYTES: usize =
    std::mem::size_of::<Held>() + std::mem::size_of::<(Instant, u32, Arc<str>)>() + 16;

/// What a group does with one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Its slot is free: every member is offered the update now.
    Send,
    /// Held back; `due` is set when a new wait starts (arm one timer).
    Held { due: Option<Instant> },
}

impl PaceGroup {
    pub fn new(every: u32) -> Self {
        PaceGroup {
            every,
            last_sent: None,
            held: None,
            stamp: 0,
            open: false,
        }
    }

    /// The group's decision for the event of delivery `stamp`, made by its
    /// first member and repeated for the others.
    #[inline]
    pub fn decide(
        &mut self,
        stamp: u64,
        enc: &Arc<Encoded>,
        (ts, prices): (u64, &Prices),
        now: Instant,
    ) -> Decision {
        if self.stamp == stamp {
            return match self.open {
                true => Decision::Send,
                false => Decision::Held { due: None },
            };
        }
        self.stamp = stamp;
        self.open = false;
        if let Some(held) = self.held.as_mut() {
            if held.released.generation == enc.generation {
                held.released.merged.absorb(enc, ts, prices);
            } else {
                // A new numbering (its clear or load was handled first):
                // what was held belongs to the old one and is replaced; it
                // goes at the slot already set (a hold starts or ends only
                // here and in the takes, so the shard can count holds).
                held.released = Released {
                    merged: Merged::new(enc, ts, prices, 0),
                    first_seq: enc.seq,
                    generation: enc.generation,
                };
            }
            return Decision::Held { due: None };
        }
        if let Some(last) = self.last_sent {
            let due = last + interval(self.every);
            if now < due {
                let released = Released {
                    merged: Merged::new(enc, ts, prices, 0),
                    first_seq: enc.seq,
                    generation: enc.generation,
                };
                self.held = Some(Box::new(Held { released, due }));
                return Decision::Held { due: Some(due) };
            }
        }
        self.open = true;
        self.last_sent = Some(now);
        Decision::Send
    }

    /// The held-back update, if its slot has come; the slot is taken.
    pub fn take_due(&mut self, now: Instant) -> Option<Released> {
        if self.held.as_ref().is_none_or(|h| now < h.due) {
            return None;
        }
        self.last_sent = Some(now);
        self.held.take().map(|h| h.released)
    }

    /// The held-back update, out of turn (an event must follow it, or the
    /// members' rates changed).
    pub fn take_held(&mut self) -> Option<Released> {
        self.held.take().map(|h| h.released)
    }

    /// What is held back, if anything.
    pub fn held(&self) -> Option<&Released> {
        self.held.as_ref().map(|h| &h.released)
    }

    /// The clear count of what is held back, if anything (a clear or a
    /// load drops what an older numbering held: `take_held`).
    pub fn held_generation(&self) -> Option<u16> {
        self.held.as_ref().map(|h| h.released.generation)
    }
}

/// A topic's groups on a shard, one per interval in use: boxed, since most
/// topics have none and a topic entry is kept per topic per shard.
#[derive(Debug, Default)]
pub(crate) struct Groups(Option<Box<GroupSet>>);

#[derive(Debug, Default)]
pub(crate) struct GroupSet {
    list: Vec<PaceGroup>,
    /// Every live member of the topic was paced by the group of this
    /// interval at the last pass over them, while the shard's pacing epoch
    /// was the second value: while both hold, an update that group holds
    /// back reaches nobody, and the pass over the members is skipped.
    all_in: Option<(u32, u64)>,
}

impl Groups {
    pub fn iter(&self) -> impl Iterator<Item = &PaceGroup> {
        self.0.iter().flat_map(|g| g.list.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PaceGroup> {
        self.0.iter_mut().flat_map(|g| g.list.iter_mut())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The group of interval `every`, made if missing.
    #[inline]
    pub fn of(&mut self, every: u32) -> &mut PaceGroup {
        let list = &mut self.0.get_or_insert_with(Default::default).list;
        match list.iter().position(|g| g.every == every) {
            Some(i) => &mut list[i],
            None => {
                list.push(PaceGroup::new(every));
                list.last_mut().expect("pushed")
            }
        }
    }

    /// The interval every live member is paced at, if the last pass found
    /// one and nothing changed since (`epoch`: the shard's pacing epoch,
    /// moved whenever a connection's pacing changes).
    #[inline]
    pub fn all_in(&self, epoch: u64) -> Option<u32> {
        let (every, at) = self.0.as_ref()?.all_in?;
        (at == epoch).then_some(every)
    }

    /// What a pass over every member found (`None`: not all in one group).
    pub fn set_all_in(&mut self, every: Option<u32>, epoch: u64) {
        if let Some(g) = self.0.as_mut() {
            g.all_in = every.map(|e| (e, epoch));
        }
    }

    /// A member joined: the next pass looks again.
    pub fn members_changed(&mut self) {
        if let Some(g) = self.0.as_mut() {
            g.all_in = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::link::Event;

    fn enc(seq: u64) -> Arc<Encoded> {
        let prices = Prices {
            bid: Some(seq as f64),
            ..Prices::default()
        };
        Encoded::test_update("A", seq, prices, None)
    }

    fn decide(g: &mut PaceGroup, stamp: u64, seq: u64, now: Instant) -> Decision {
        let e = enc(seq);
        let Event::Update { ts, prices, .. } = e.event else {
            unreachable!()
        };
        g.decide(stamp, &e, (ts, &prices), now)
    }

    #[test]
    fn the_mode_follows_the_rates_asked_and_the_cap() {
        assert_eq!(PaceMode::of(Some(None), None), PaceMode::FREE);
        assert_eq!(
            PaceMode::of(Some(Some(10.0)), None),
            PaceMode::every(100_000)
        );
        assert_eq!(
            PaceMode::of(Some(None), Some(4.0)),
            PaceMode::every(250_000)
        );
        assert_eq!(
            PaceMode::of(Some(Some(10.0)), Some(4.0)),
            PaceMode::every(250_000)
        );
        assert_eq!(
            PaceMode::of(Some(Some(2.0)), Some(4.0)),
            PaceMode::every(500_000)
        );
        assert_eq!(PaceMode::of(None, Some(4.0)), PaceMode::MIXED);
    }

    #[test]
    fn one_event_per_interval_decided_once_per_delivery() {
        let mut g = PaceGroup::new(200_000);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(decide(&mut g, 1, 1, t0), Decision::Send);
        assert_eq!(decide(&mut g, 1, 1, t0), Decision::Send, "the same event");
        let due = t0 + ms(200);
        assert_eq!(
            decide(&mut g, 2, 2, t0 + ms(10)),
            Decision::Held { due: Some(due) }
        );
        assert_eq!(
            decide(&mut g, 2, 2, t0 + ms(10)),
            Decision::Held { due: None }
        );
        assert_eq!(
            decide(&mut g, 3, 3, t0 + ms(20)),
            Decision::Held { due: None }
        );
        assert!(g.take_due(t0 + ms(150)).is_none(), "before its slot");
        let r = g.take_due(t0 + ms(210)).expect("due");
        assert_eq!((r.first_seq, r.merged.seq(), r.merged.count()), (2, 3, 2));
        assert_eq!(r.count_for(0), Some(2), "a member that had seq 1");
        assert_eq!(r.count_for(2), Some(1), "a member whose snapshot had seq 2");
        assert_eq!(r.count_for(3), None, "a member whose snapshot had it all");
        // The slot was taken at 210 ms: the next update waits until 410.
        let due = t0 + ms(410);
        assert_eq!(
            decide(&mut g, 4, 4, t0 + ms(300)),
            Decision::Held { due: Some(due) }
        );
        assert!(g.take_held().is_some());
        assert_eq!(
            decide(&mut g, 5, 5, t0 + ms(1000)),
            Decision::Send,
            "after a quiet spell"
        );
    }

    #[test]
    fn a_new_numbering_replaces_what_the_old_one_held() {
        let mut g = PaceGroup::new(1_000_000);
        let t0 = Instant::now();
        decide(&mut g, 1, 1, t0);
        decide(&mut g, 2, 2, t0);
        assert_eq!(g.held_generation(), Some(0));
        let mut e = Arc::try_unwrap(enc(1)).expect("unique");
        e.generation = 1;
        let e = Arc::new(e);
        let Event::Update { ts, prices, .. } = e.event else {
            unreachable!()
        };
        let kept_slot = Decision::Held { due: None };
        assert_eq!(
            g.decide(3, &e, (ts, &prices), t0),
            kept_slot,
            "its slot stays"
        );
        let held = g.held().expect("held");
        assert_eq!(
            (held.generation, held.first_seq, held.merged.count()),
            (1, 1, 1)
        );
    }

    #[test]
    fn groups_are_found_by_interval() {
        let mut groups = Groups::default();
        assert_eq!(groups.iter().count(), 0);
        groups.of(100).last_sent = Some(Instant::now());
        groups.of(200);
        assert!(groups.of(100).last_sent.is_some());
        assert_eq!(groups.iter().count(), 2);
        groups.set_all_in(Some(100), 7);
        assert_eq!(groups.all_in(7), Some(100));
        assert_eq!(groups.all_in(8), None, "a pacing changed since");
        groups.members_changed();
        assert_eq!(groups.all_in(7), None, "a member joined since");
    }
}
