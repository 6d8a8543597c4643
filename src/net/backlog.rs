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

use super::outbound::{Flushed, Outbound};
use crate::config::Config;
use crate::engine::link::{Encoded, Event};
use crate::engine::update::Prices;
use crate::wire::event::{encode_price, Price};
use crate::wire::frame::FrameBuf;
use crate::wire::Format;
use std::collections::HashMap;
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

/// One connection's backlog state. Small on purpose (no map until the
/// connection first conflates): idle connections are most of a server's memory.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// While conflating (past the conflation mark, until the queue drains):
    /// the parked updates, the newest per topic; `None` otherwise. Boxed on
    /// purpose: `None` then costs 8 bytes per connection, not 48, and no
    /// separate flag is needed.
    #[allow(clippy::box_collection)]
    parked: Option<Box<HashMap<Arc<str>, Merged>>>,
    /// Since when the queue has been over the hard limit.
    over_limit_since: Option<Instant>,
    /// Ingest time of the oldest update waiting in the queue, for the latency histogram.
    oldest: Option<Instant>,
}

/// The updates of one topic held back for a connection, merged.
#[derive(Debug)]
pub(crate) struct Merged {
    seq: u64,
    ts: u64,
    /// Every field the held-back updates carried, each at its latest value.
    prices: Prices,
    /// How many published updates this stands for.
    count: u32,
    /// While it stands for one update: that update, whose shared frame is
    /// exactly what to send (no encoding needed).
    only: Option<Arc<Encoded>>,
    ingested_at: std::time::Instant,
}

impl Merged {
    fn new(enc: &Arc<Encoded>, ts: u64, prices: &Prices) -> Merged {
        Merged {
            seq: enc.seq,
            ts,
            prices: *prices,
            count: 1,
            only: Some(enc.clone()),
            ingested_at: enc.ingested_at,
        }
    }

    fn absorb(&mut self, enc: &Encoded, ts: u64, prices: &Prices) {
        self.seq = enc.seq;
        self.ts = ts;
        self.prices.merge(prices);
        self.count += 1;
        self.only = None;
    }

    /// Queues this as one event: the shared frame when it stands for one
    /// update, else an `update` encoded for this connection.
    fn send(self, out: &mut Outbound, fb: &mut FrameBuf, fmt: Format, topic: &str) {
        if let Some(frame) = self
            .only
            .as_ref()
            .and_then(|e| e.frames[fmt.index()].as_deref())
        {
            out.push(frame);
            return;
        }
        let update = Price {
            conflated: self.count,
            ..Price::update(topic, self.seq, self.ts, &self.prices)
        };
        out.push(encode_price(fb, fmt, &update));
    }
}

/// Where an offered update went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Appended to the queue.
    Queued,
    /// Held back for conflation; `merged`: it was merged into an earlier
    /// held-back update of the topic (one conflated update, for the metrics).
    Parked { merged: bool },
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
    /// Queues one shared frame, or parks its update when the connection is
    /// conflating or the queue is past the mark.
    ///
    /// Hot path: no serialization, no lock, no syscall; allocation only the
    /// first time a connection conflates (its map) and when a new topic is
    /// parked, never per update in steady state.
    #[inline]
    pub fn offer(
        &mut self,
        out: &mut Outbound,
        enc: &Arc<Encoded>,
        frame: &[u8],
        conflate_at: usize,
    ) -> Offer {
        if self.parked.is_some() || out.pending() >= conflate_at {
            let Event::Update { ts, prices } = &enc.event else {
                // Only updates are offered; anything else goes straight out.
                out.push(frame);
                return Offer::Queued;
            };
            let parked = self.parked.get_or_insert_with(Default::default);
            return match parked.get_mut(&enc.topic) {
                Some(m) => {
                    m.absorb(enc, *ts, prices);
                    Offer::Parked { merged: true }
                }
                None => {
                    parked.insert(enc.topic.clone(), Merged::new(enc, *ts, prices));
                    Offer::Parked { merged: false }
                }
            };
        }
        self.note_queued(out, enc);
        out.push(frame);
        Offer::Queued
    }

    fn note_queued(&mut self, out: &Outbound, enc: &Encoded) {
        self.note_queued_at(out, enc.ingested_at);
    }

    fn note_queued_at(&mut self, out: &Outbound, at: std::time::Instant) {
        if out.is_empty() {
            self.oldest = Some(at);
        }
    }

    /// After a successful flush: a conflating connection whose queue has
    /// drained below half the mark gets its held-back updates (one merged
    /// update per topic) and leaves conflation. True when it left (flush again).
    ///
    /// Encodes per connection, but only for topics that merged two or more
    /// updates; a topic held back once goes out as its shared frame.
    pub fn release(
        &mut self,
        out: &mut Outbound,
        fb: &mut FrameBuf,
        fmt: Format,
        conflate_at: usize,
    ) -> bool {
        if self.parked.is_none() || out.pending() >= conflate_at / 2 {
            return false;
        }
        for (topic, merged) in *self.parked.take().unwrap_or_default() {
            self.note_queued_at(out, merged.ingested_at);
            merged.send(out, fb, fmt, &topic);
        }
        true
    }

    /// Sends the held-back update of `topic` now, if there is one, so an event
    /// that must follow it (a status) keeps the topic's order.
    pub fn send_held(&mut self, out: &mut Outbound, fb: &mut FrameBuf, fmt: Format, topic: &str) {
        if let Some(merged) = self.parked.as_mut().and_then(|p| p.remove(topic)) {
            self.note_queued_at(out, merged.ingested_at);
            merged.send(out, fb, fmt, topic);
        }
    }

    /// Drops the held-back update of a cleared topic (its numbering is over).
    pub fn forget(&mut self, topic: &str) {
        if let Some(p) = self.parked.as_mut() {
            p.remove(topic);
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

    /// Updates held back for conflation.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.as_ref().map_or(0, |p| p.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An update of `topic` carrying one field, with a recognizable frame.
    fn enc(topic: &str, seq: u64, frame: &[u8]) -> Arc<Encoded> {
        enc_with(topic, seq, frame, Prices::default())
    }

    fn enc_with(topic: &str, seq: u64, frame: &[u8], prices: Prices) -> Arc<Encoded> {
        Arc::new(Encoded {
            topic: topic.into(),
            seq,
            generation: 0,
            event: Event::Update { ts: seq, prices },
            frames: [Some(frame.into()), None],
            ingested_at: Instant::now(),
        })
    }

    fn offer(b: &mut Backlog, out: &mut Outbound, e: &Arc<Encoded>, mark: usize) -> Offer {
        let frame = e.frames[0].clone().unwrap();
        b.offer(out, e, &frame, mark)
    }

    fn release(b: &mut Backlog, out: &mut Outbound, mark: usize) -> bool {
        b.release(out, &mut FrameBuf::default(), Format::Json, mark)
    }

    #[test]
    fn past_the_mark_updates_of_a_topic_are_held_back_and_merged() {
        let (mut b, mut out) = (Backlog::default(), Outbound::default());
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 10),
            Offer::Queued
        );
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 2, &[2; 8]), 10),
            Offer::Queued
        );
        assert_eq!(out.pending(), 16);
        // Past the mark: held back, and a later update of A merges into it.
        let held = Offer::Parked { merged: false };
        assert_eq!(offer(&mut b, &mut out, &enc("A", 3, &[3; 8]), 10), held);
        assert_eq!(offer(&mut b, &mut out, &enc("B", 1, &[4; 8]), 10), held);
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 4, &[5; 8]), 10),
            Offer::Parked { merged: true }
        );
        assert_eq!(out.pending(), 16, "nothing more queued while conflating");
        assert_eq!(b.parked(), 2);
    }

    #[test]
    fn a_released_update_carries_every_field_the_held_back_ones_changed() {
        let (mut b, mut out) = (Backlog::default(), Outbound::default());
        offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 8);
        let bid = Prices {
            bid: Some(1.5),
            ..Prices::default()
        };
        let ask = Prices {
            ask: Some(2.5),
            ..Prices::default()
        };
        let newer_bid = Prices {
            bid: Some(1.6),
            ..Prices::default()
        };
        offer(&mut b, &mut out, &enc_with("A", 2, &[2; 8], bid), 8);
        offer(&mut b, &mut out, &enc_with("A", 3, &[3; 8], ask), 8);
        offer(&mut b, &mut out, &enc_with("A", 4, &[4; 8], newer_bid), 8);
        assert!(!release(&mut b, &mut out, 8), "queue still full");
        out.advance(8);
        assert!(release(&mut b, &mut out, 8));
        let frame = out.front();
        // A text frame: two header bytes, then the JSON.
        let text = std::str::from_utf8(&frame[2..]).unwrap();
        assert_eq!(
            text,
            r#"{"event":"update","topic":"A","seq":4,"ts":4,"bid":1.6,"ask":2.5,"conflated":3}"#
        );
        // Out of conflation: the next update is queued again.
        out.advance(frame.len());
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 5, &[5; 8]), 8),
            Offer::Queued
        );
    }

    #[test]
    fn one_held_back_update_goes_out_as_its_shared_frame() {
        let (mut b, mut out) = (Backlog::default(), Outbound::default());
        offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 8);
        offer(&mut b, &mut out, &enc("B", 1, &[7; 8]), 8);
        out.advance(8);
        assert!(release(&mut b, &mut out, 8));
        assert_eq!(out.front(), &[7; 8]);
    }

    #[test]
    fn the_hard_limit_gives_patience_then_a_slow_consumer_verdict() {
        let mut b = Backlog::default();
        let limits = BacklogLimits {
            conflate_at: 10,
            hard: 100,
            patience: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        assert_eq!(
            b.after_flush(Flushed::Blocked, 100, t0, &limits),
            Pressure::Fine
        );
        assert_eq!(
            b.after_flush(Flushed::Blocked, 150, t0, &limits),
            Pressure::Waiting
        );
        assert!(b.is_over_limit());
        let later = t0 + Duration::from_secs(9);
        assert_eq!(
            b.after_flush(Flushed::Blocked, 150, later, &limits),
            Pressure::Waiting
        );
        let late = t0 + Duration::from_secs(10);
        assert_eq!(
            b.after_flush(Flushed::Blocked, 150, late, &limits),
            Pressure::SlowConsumer
        );
        // Draining under the limit resets the clock.
        assert_eq!(
            b.after_flush(Flushed::Blocked, 90, late, &limits),
            Pressure::Fine
        );
        assert!(!b.is_over_limit());
        assert_eq!(
            b.after_flush(Flushed::Blocked, 150, late, &limits),
            Pressure::Waiting
        );
        assert_eq!(
            b.after_flush(Flushed::All, 0, late, &limits),
            Pressure::Fine
        );
        // Far past the limit: cut off at once.
        assert_eq!(
            b.after_flush(Flushed::Blocked, 201, late, &limits),
            Pressure::CutOff
        );
    }
}
