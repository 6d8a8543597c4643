//! A connection's backlog rules, next to its [`Outbound`] queue: when updates
//! stop being queued and are conflated instead, when the conflated ones are
//! released, and when a consumer has been over its hard limit for too long.
//!
//! Conflation keeps the newest update of each topic while the queue is past
//! the mark; the queue draining below half the mark releases them. A queue
//! over the hard limit for `slow_consumer_timeout` (or over twice the limit at
//! any time) ends the connection: memory never grows without bound because of
//! one slow client.

use super::outbound::{Flushed, Outbound};
use crate::config::Config;
use crate::engine::link::Encoded;
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
    parked: Option<Box<HashMap<Arc<str>, Arc<Encoded>>>>,
    /// Since when the queue has been over the hard limit.
    over_limit_since: Option<Instant>,
    /// Ingest time of the oldest update waiting in the queue, for the latency histogram.
    oldest: Option<Instant>,
}

/// Where an offered update went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Appended to the queue.
    Queued,
    /// Parked for conflation; `replaced`: an older parked update of the topic
    /// was dropped for it (one conflated update, for the metrics).
    Parked { replaced: bool },
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
            let parked = self.parked.get_or_insert_with(Default::default);
            let replaced = parked.insert(enc.topic.clone(), enc.clone()).is_some();
            return Offer::Parked { replaced };
        }
        self.note_queued(out, enc);
        out.push(frame);
        Offer::Queued
    }

    fn note_queued(&mut self, out: &Outbound, enc: &Encoded) {
        if out.is_empty() {
            self.oldest = Some(enc.ingested_at);
        }
    }

    /// After a successful flush: a conflating connection whose queue has
    /// drained below half the mark gets its parked updates (the newest of each
    /// topic) and leaves conflation. True when it left (flush again).
    pub fn release(&mut self, out: &mut Outbound, fmt: Format, conflate_at: usize) -> bool {
        if self.parked.is_none() || out.pending() >= conflate_at / 2 {
            return false;
        }
        for (_, enc) in *self.parked.take().unwrap_or_default() {
            if let Some(f) = enc.frames[fmt.index()].as_deref() {
                self.note_queued(out, &enc);
                out.push(f);
            }
        }
        true
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

    fn enc(topic: &str, seq: u64, frame: &[u8]) -> Arc<Encoded> {
        Arc::new(Encoded {
            topic: topic.into(),
            seq,
            frames: [Some(frame.into()), None],
            ingested_at: Instant::now(),
        })
    }

    fn offer(b: &mut Backlog, out: &mut Outbound, e: &Arc<Encoded>, mark: usize) -> Offer {
        let frame = e.frames[0].clone().unwrap();
        b.offer(out, e, &frame, mark)
    }

    #[test]
    fn past_the_mark_only_the_newest_update_per_topic_is_kept() {
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
        // Past the mark: parked, and a newer update of A replaces the older.
        let parked = Offer::Parked { replaced: false };
        assert_eq!(offer(&mut b, &mut out, &enc("A", 3, &[3; 8]), 10), parked);
        assert_eq!(offer(&mut b, &mut out, &enc("B", 1, &[4; 8]), 10), parked);
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 4, &[5; 8]), 10),
            Offer::Parked { replaced: true }
        );
        assert_eq!(out.pending(), 16, "nothing more queued while conflating");
        assert_eq!(b.parked(), 2);
    }

    #[test]
    fn parked_updates_are_released_once_the_queue_drains_below_half_the_mark() {
        let (mut b, mut out) = (Backlog::default(), Outbound::default());
        offer(&mut b, &mut out, &enc("A", 1, &[1; 8]), 8);
        offer(&mut b, &mut out, &enc("A", 2, &[2; 8]), 8);
        offer(&mut b, &mut out, &enc("A", 3, &[3; 8]), 8);
        assert!(!b.release(&mut out, Format::Json, 8), "queue still full");
        out.advance(8);
        assert!(b.release(&mut out, Format::Json, 8));
        assert_eq!(
            out.front(),
            &[3; 8],
            "only the newest of A, after the drain"
        );
        // Out of conflation: the next update is queued again.
        out.advance(8);
        assert_eq!(
            offer(&mut b, &mut out, &enc("A", 4, &[4; 8]), 8),
            Offer::Queued
        );
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
