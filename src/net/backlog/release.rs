//! Releasing what a connection's backlog holds back: a rate cap's slot
//! (its own, or its topic's group's), a drained queue after conflation
//! (within the byte budget, if any), and a change of pacing.

use super::{Backlog, EventWriter, Merged, Outbound};
use std::sync::Arc;
use std::time::Instant;

impl Backlog {
    /// A rate-cap group's slot came (`net::pace_group`): its update goes
    /// to this connection as `frame` (encoded once for the group), or,
    /// while the connection holds updates back, is parked with what it
    /// holds of the topic (`merged`, its own copy). True when queued.
    ///
    /// No serialization: the frame is the group's.
    pub fn offer_released(
        &mut self,
        out: &mut Outbound,
        (topic, frame): (&Arc<str>, &[u8]),
        merged: impl FnOnce() -> Merged,
        conflate_at: usize,
        now: Instant,
    ) -> bool {
        if self.holding_back(out, conflate_at, now) {
            let m = merged();
            let held = self.held.get_or_insert_with(Default::default);
            let parked = held.parked.get_or_insert_with(Default::default);
            match parked.get_mut(topic) {
                Some(earlier) => earlier.absorb_merged(m),
                None => held.park_new(topic, m),
            }
            return false;
        }
        let m = merged();
        self.note_queued_at(out, m.ingested_at);
        out.push(frame);
        true
    }

    /// Sends (or parks, conflating) every update its own rate caps hold
    /// back, out of turn: the connection's pacing moves to its topics'
    /// groups. Returns each topic with the `seq` it now has.
    pub fn flush_paced(
        &mut self,
        out: &mut Outbound,
        enc: &mut EventWriter<'_>,
    ) -> Vec<(Arc<str>, u64)> {
        let Some(held) = self.held.as_mut() else {
            return Vec::new();
        };
        let all = held.paced.take_all_held();
        let mut sent = Vec::with_capacity(all.len());
        for (topic, m) in all {
            sent.push((topic.clone(), m.seq()));
            self.emit(out, enc, &topic, m);
        }
        self.shrink();
        sent
    }

    /// The rate cap's slot for `topic` has come: its held-back update goes
    /// out now (or joins the conflated ones). True when something was queued.
    pub fn release_paced(
        &mut self,
        out: &mut Outbound,
        enc: &mut EventWriter<'_>,
        topic: &Arc<str>,
        now: Instant,
    ) -> bool {
        let Some(m) = self
            .held
            .as_mut()
            .and_then(|h| h.paced.take_due(topic, now))
        else {
            return false;
        };
        self.emit(out, enc, topic, m);
        true
    }

    /// After a successful flush: a conflating connection whose queue has
    /// drained below half the mark gets its held-back updates (one merged
    /// update per topic) and leaves conflation. True when it left (flush again).
    /// Under a byte budget only as many topics go out as the budget has room
    /// for, first held first, and the rest wait for [`Backlog::budget_wait`].
    ///
    /// Encodes per connection, but only for topics that merged two or more
    /// updates; a topic held back once goes out as its shared frame.
    pub fn release(
        &mut self,
        out: &mut Outbound,
        enc: &mut EventWriter<'_>,
        conflate_at: usize,
        now: Instant,
    ) -> bool {
        let conflating = self.held.as_ref().is_some_and(|h| h.parked.is_some());
        if !conflating || out.pending() >= conflate_at / 2 {
            return false;
        }
        if self.held.as_ref().is_some_and(|h| h.budget.is_some()) {
            return self.release_within_budget(out, enc, now);
        }
        let parked = self.held.as_mut().and_then(|h| h.parked.take());
        for (topic, merged) in parked.unwrap_or_default() {
            self.note_queued_at(out, merged.ingested_at);
            merged.send(out, enc, &topic);
        }
        self.shrink();
        true
    }

    /// Sends held-back topics, first held first, while the byte budget has
    /// room; leaves conflation once none is left. True when it sent any.
    fn release_within_budget(
        &mut self,
        out: &mut Outbound,
        enc: &mut EventWriter<'_>,
        now: Instant,
    ) -> bool {
        let Some(held) = self.held.as_mut() else {
            return false;
        };
        let (Some(parked), Some(b)) = (held.parked.as_mut(), held.budget.as_mut()) else {
            return false;
        };
        let mut sent = false;
        while !b.bucket.over(out.pending(), now) {
            let Some(topic) = b.order.pop_front() else {
                break;
            };
            // A topic sent or forgot since it was held has left `parked`.
            if let Some(m) = parked.remove(&topic) {
                if out.is_empty() {
                    self.oldest = Some(m.ingested_at);
                }
                m.send(out, enc, &topic);
                sent = true;
            }
        }
        if parked.is_empty() {
            held.parked = None;
            b.order.clear();
        }
        sent
    }
}
