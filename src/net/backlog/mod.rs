//! A connection's backlog rules, next to its [`Outbound`] queue: when updates
//! stop being queued and are conflated instead, when the conflated ones are
//! released, and when a consumer has been over its hard limit for too long.
//!
//! Conflation holds back the updates of each topic while the queue is past
//! the mark, merging their fields (Lightstreamer's MERGE): what is released
//! when the queue drains below half the mark is one `update` per topic that
//! carries every field changed since the client's last event for it, each at
//! its latest value, with the latest `seq` and `"conflated": n`. A client that
//! applies events over its snapshot ends with exactly the server's value. A queue
//! over the hard limit for `slow_consumer_timeout` (or over twice the limit at
//! any time) ends the connection: memory never grows without bound because of
//! one slow client.

use super::byte_budget::ByteBudget;
use super::merged::{EventWriter, Merged};
use super::outbound::{Flushed, Outbound};
use super::pacing::Pacer;
use crate::config::Config;
use crate::engine::link::{Encoded, Event};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The limits every connection of a server shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BacklogLimits {
    /// Queued bytes past which updates are conflated.
    pub conflate_at: usize,
    /// Queued bytes a connection may stay over for `patience`.
    pub hard: usize,
    pub patience: Duration,
}

impl BacklogLimits {
    pub fn new(cfg: &Config) -> Self {
        BacklogLimits {
            conflate_at: cfg.conflate_bytes,
            hard: cfg.max_outbound_bytes,
            patience: cfg.slow_consumer_timeout,
        }
    }
}

/// One connection's backlog state. Small on purpose (nothing allocated until
/// the connection first conflates or uses a rate cap): idle connections are
/// most of a server's memory.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// What is held back, boxed: `None` costs 8 bytes per connection.
    held: Option<Box<Held>>,
    /// Since when the queue has been over the hard limit.
    over_limit_since: Option<Instant>,
    /// Ingest time of the oldest update waiting in the queue, for the latency histogram.
    oldest: Option<Instant>,
}

/// Updates held back for one connection.
#[derive(Debug, Default)]
struct Held {
    /// While conflating (past the conflation mark, until the queue drains):
    /// the held-back updates merged per topic.
    parked: Option<crate::net::topic_map::TopicMap<Merged>>,
    /// Rate caps (`max_rate`): per topic, when the last event went out and
    /// what waits for the next slot.
    paced: Pacer,
    /// The byte budget (`max_bytes_per_sec`), if one applies.
    budget: Option<Box<Budgeted>>,
}

impl Held {
    /// Parks the first held-back update of `topic`; under a byte budget the
    /// topic also takes its place in the order of release.
    fn park_new(&mut self, topic: &Arc<str>, m: Merged) {
        let parked = self.parked.get_or_insert_with(Default::default);
        parked.insert(topic.clone(), m);
        if let Some(b) = &mut self.budget {
            b.order.push_back(topic.clone());
        }
    }
}

/// A byte budget and the order its held-back topics go out in: first held,
/// first sent, so under a feed that always exceeds the budget every topic
/// still gets its turn.
#[derive(Debug)]
struct Budgeted {
    bucket: ByteBudget,
    order: std::collections::VecDeque<Arc<str>>,
    /// The shard has a timer set for it.
    armed: bool,
}

/// How to treat one update for one connection (see `Backlog::offer`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// The depth class the connection receives a book topic at.
    pub class: usize,
    /// Its queue's conflation mark.
    pub conflate_at: usize,
    /// A rate cap may apply to the connection (the server's, its token's
    /// or one of its subscriptions'): the topic's interval is then looked
    /// up (`interval_of`, once per connection and topic) and kept with the
    /// topic's pacing state.
    pub paced: bool,
    pub now: Instant,
}

/// Where an offered update went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Appended to the queue.
    Queued,
    /// Held back for conflation; `merged`: it was merged into an earlier
    /// held-back update of the topic (one conflated update, for the metrics).
    Parked { merged: bool },
    /// Held back by the subscription's rate cap; `due`: when the shard must
    /// send it (set when a new wait starts, so the shard arms one timer).
    Paced { due: Option<Instant> },
}

/// What the hard limit says after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pressure {
    /// Within the limit (or everything written).
    Fine,
    /// Over the hard limit, for less than the patience so far.
    Waiting,
    /// Over the hard limit for longer than the patience: close with 1008.
    SlowConsumer,
    /// Over twice the hard limit: far past any reasonable backlog, drop now.
    CutOff,
}

impl Backlog {
    /// Queues one shared frame, or holds its update back: for the rate cap
    /// (`interval`, the subscription's `1/max_rate`), or because the
    /// connection is conflating or its queue is past the mark.
    ///
    /// Hot path: no serialization, no lock, no syscall; allocation only the
    /// first time a connection holds something back and when a new topic is
    /// held, never per update in steady state.
    #[inline]
    pub fn offer(
        &mut self,
        out: &mut Outbound,
        enc: &Arc<Encoded>,
        frame: &[u8],
        rules: &Rules,
        interval_of: impl FnOnce() -> Option<Duration>,
    ) -> Offer {
        let Rules {
            class,
            conflate_at,
            paced,
            now,
        } = *rules;
        let Event::Update { ts, prices, .. } = &enc.event else {
            // Only updates are offered; anything else goes straight out.
            out.push(frame);
            return Offer::Queued;
        };
        if enc.unmerged {
            // Every trade is delivered, never merged into the next or
            // paced: a subscriber that cannot keep up with them meets the
            // hard limit, not a silent loss.
            self.note_queued_at(out, enc.ingested_at);
            out.push(frame);
            return Offer::Queued;
        }
        if paced {
            let held = self.held.get_or_insert_with(Default::default);
            if let Some(due) = held.paced.offer(enc, *ts, prices, class, interval_of, now) {
                return Offer::Paced { due };
            }
        }
        if self.holding_back(out, conflate_at, now) {
            let held = self.held.get_or_insert_with(Default::default);
            let parked = held.parked.get_or_insert_with(Default::default);
            return match parked.get_mut(&enc.topic) {
                Some(m) => {
                    m.absorb(enc, *ts, prices);
                    Offer::Parked { merged: true }
                }
                None => {
                    held.park_new(&enc.topic, Merged::new(enc, *ts, prices, class));
                    Offer::Parked { merged: false }
                }
            };
        }
        self.note_queued_at(out, enc.ingested_at);
        out.push(frame);
        Offer::Queued
    }

    /// Updates are held back instead of queued: the connection is
    /// conflating, its byte budget is spent, or its queue is past the mark.
    #[inline]
    fn holding_back(&self, out: &Outbound, conflate_at: usize, now: Instant) -> bool {
        let (conflating, over_budget) = self.held.as_ref().map_or((false, false), |h| {
            let over = h
                .budget
                .as_ref()
                .is_some_and(|b| b.bucket.over(out.pending(), now));
            (h.parked.is_some(), over)
        });
        conflating || over_budget || out.pending() >= conflate_at
    }

    fn note_queued_at(&mut self, out: &Outbound, at: Instant) {
        if out.is_empty() {
            self.oldest = Some(at);
        }
    }

    /// Sends (or, conflating, parks) a held-back update.
    fn emit(&mut self, out: &mut Outbound, enc: &mut EventWriter<'_>, topic: &Arc<str>, m: Merged) {
        if let Some(held) = self.held.as_mut().filter(|h| h.parked.is_some()) {
            let parked = held.parked.as_mut().expect("checked");
            match parked.get_mut(topic) {
                Some(earlier) => earlier.absorb_merged(m),
                None => held.park_new(topic, m),
            }
            return;
        }
        self.note_queued_at(out, m.ingested_at);
        m.send(out, enc, topic);
    }

    /// Sets the byte budget (`None`: none), from the server's limit, the
    /// token's and the client's ask.
    pub fn set_budget(&mut self, bytes_per_sec: Option<u64>, now: Instant) {
        match bytes_per_sec {
            Some(rate) => {
                let held = self.held.get_or_insert_with(Default::default);
                held.budget = Some(Box::new(Budgeted {
                    bucket: ByteBudget::new(rate, now),
                    order: Default::default(),
                    armed: false,
                }));
            }
            None => {
                if let Some(h) = self.held.as_mut() {
                    h.budget = None;
                }
                self.shrink();
            }
        }
    }

    /// The byte budget in force, if any.
    pub fn budget(&self) -> Option<u64> {
        Some(self.held.as_ref()?.budget.as_ref()?.bucket.rate())
    }

    /// Charges `bytes` written to the socket to the byte budget, if any.
    #[inline]
    pub fn spend(&mut self, bytes: u64, now: Instant) {
        if let Some(b) = self.held.as_mut().and_then(|h| h.budget.as_mut()) {
            b.bucket.spend(bytes, now);
        }
    }

    /// When updates held back by the byte budget may go out, if no timer
    /// is set for it yet: the shard sets one (nothing else would wake the
    /// connection) and calls [`Backlog::budget_fired`] when it fires.
    pub fn budget_wait(&mut self, queued: usize, now: Instant) -> Option<Instant> {
        let held = self.held.as_mut()?;
        held.parked.as_ref()?;
        let b = held.budget.as_mut().filter(|b| !b.armed)?;
        b.armed = true;
        Some(b.bucket.next_room(queued, now))
    }

    /// The byte budget's timer fired.
    pub fn budget_fired(&mut self) {
        if let Some(b) = self.held.as_mut().and_then(|h| h.budget.as_mut()) {
            b.armed = false;
        }
    }

    /// Sends what is held back of `topic` now (rate cap or conflation), so an
    /// event that must follow it (a status) keeps the topic's order.
    pub fn send_held(&mut self, out: &mut Outbound, enc: &mut EventWriter<'_>, topic: &Arc<str>) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let paced = held.paced.take_held(topic);
        let parked = held.parked.as_mut().and_then(|p| p.remove(topic));
        let merged = match (parked, paced) {
            (Some(mut p), Some(q)) => {
                p.absorb_merged(q);
                Some(p)
            }
            (p, q) => p.or(q),
        };
        if let Some(m) = merged {
            self.note_queued_at(out, m.ingested_at);
            m.send(out, enc, topic);
        }
    }

    /// Drops what is held back of a cleared topic (its numbering is over).
    pub fn forget(&mut self, topic: &str) {
        if let Some(held) = self.held.as_mut() {
            held.paced.take_held(topic);
            if let Some(p) = held.parked.as_mut() {
                p.remove(topic);
            }
        }
    }

    /// The rate state of topics no subscription of the connection covers
    /// any more is dropped, and every topic's interval is looked up anew.
    pub fn subscriptions_changed(&mut self, still_covered: impl Fn(&str) -> bool) {
        if let Some(held) = self.held.as_mut() {
            held.paced.retain(still_covered);
        }
        self.shrink();
    }

    /// Frees the box when nothing is held back any more.
    fn shrink(&mut self) {
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.parked.is_none() && h.paced.is_empty() && h.budget.is_none())
        {
            self.held = None;
        }
    }

    /// Applies the hard limit to what a flush left queued.
    pub fn after_flush(
        &mut self,
        flushed: Flushed,
        pending: usize,
        now: Instant,
        limits: &BacklogLimits,
    ) -> Pressure {
        if flushed == Flushed::All || pending <= limits.hard {
            self.over_limit_since = None;
            return Pressure::Fine;
        }
        if pending > 2 * limits.hard {
            return Pressure::CutOff;
        }
        let since = *self.over_limit_since.get_or_insert(now);
        if now.duration_since(since) >= limits.patience {
            Pressure::SlowConsumer
        } else {
            Pressure::Waiting
        }
    }

    /// The ingest time of the oldest update just written, once everything was.
    pub fn take_oldest(&mut self) -> Option<Instant> {
        self.oldest.take()
    }

    /// Over the hard limit: a stalled reader gets no writable events and,
    /// conflating, no new frames, so the heartbeat sweep looks at it again.
    pub fn is_over_limit(&self) -> bool {
        self.over_limit_since.is_some()
    }

    /// Memory this connection holds beyond its queue, by estimate: the
    /// held-back updates (conflated and rate-capped). Counted with the queue
    /// against the hard limit and the server-wide budget, so a connection
    /// cannot hold memory the limits do not see.
    ///
    /// O(1); called after a flush and a command, not per update.
    pub fn held_bytes(&self) -> usize {
        const PARKED: usize = std::mem::size_of::<(Arc<str>, Merged)>() + 8;
        let Some(held) = &self.held else {
            return 0;
        };
        held.parked.as_ref().map_or(0, |p| p.capacity() * PARKED) + held.paced.held_bytes()
    }

    /// Forgets everything held back (the connection is closing).
    pub fn drop_held(&mut self) {
        self.held = None;
    }

    /// Updates held back for conflation.
    #[cfg(test)]
    fn parked(&self) -> usize {
        let parked = self.held.as_ref().and_then(|h| h.parked.as_ref());
        parked.map_or(0, |p| p.len())
    }
}

mod release;
#[cfg(test)]
mod tests;
