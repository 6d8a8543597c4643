//! Offering one sequenced update to one member's connection: the frame it
//! receives (format, depth class, shared compression), its rate cap (the
//! topic's group, or its own pacing), and its backlog.

use crate::engine::link::{Encoded, Event};
use crate::net::admit::rate_cap;
use crate::net::backlog::{Offer, Rules};
use crate::net::index::UNRESOLVED;
use crate::net::pace_group::{Decision, Groups, PaceMode};
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What one event's delivery did, for the metrics.
#[derive(Default)]
pub(super) struct Counted {
    pub frames: u64,
    pub conflated: u64,
    /// Frames this shard compressed (permessage-deflate).
    pub compressions: u64,
    /// Deliveries that took the compressed frame.
    pub deflated: u64,
}

impl Counted {
    /// Adds one event's deliveries to the shard's counters.
    pub(super) fn record(&self, metrics: &crate::metrics::ShardMetrics) {
        metrics.frames.fetch_add(self.frames, Ordering::Relaxed);
        if self.conflated > 0 {
            metrics
                .conflated
                .fetch_add(self.conflated, Ordering::Relaxed);
        }
        if self.compressions > 0 || self.deflated > 0 {
            let m = metrics;
            m.deflate_compressions
                .fetch_add(self.compressions, Ordering::Relaxed);
            m.deflated_frames
                .fetch_add(self.deflated, Ordering::Relaxed);
        }
    }
}

/// The depth class member `m` receives book topic `topic` at: looked up
/// in its connection's subscriptions once, then kept in the member.
#[inline]
pub(super) fn book_class(
    conn: &crate::net::conn::Conn,
    m: &mut crate::net::index::Member,
    topic: &str,
) -> usize {
    if m.class == UNRESOLVED {
        m.class = conn.subs.depth_class_for(topic) as u8;
    }
    m.class as usize
}

/// The cap the server and a connection's token set (its pacing's default
/// and bound; for a connection paced on its own, its topics' intervals
/// are looked up once each).
#[inline]
pub(super) fn token_cap(conn: &crate::net::conn::Conn, server_rate: Option<f64>) -> Option<f64> {
    let own = conn.access.as_ref().and_then(|a| a.grant.max_rate);
    rate_cap(server_rate, own)
}

/// Whether the rate-cap group of interval `every` holds `enc` back
/// (`net::pace_group`): decided once per event for all the group's
/// members, with one merge; a new wait arms the group's timer.
#[inline]
pub(super) fn group_holds(
    every: Option<u32>,
    groups: &mut Groups,
    (stamp, enc, now): (u64, &Arc<Encoded>, Instant),
    timers: &mut GroupTimers,
) -> bool {
    let Some(every) = every else {
        return false;
    };
    let Event::Update { ts, prices, .. } = &enc.event else {
        return false;
    };
    if enc.unmerged {
        return false;
    }
    match groups.of(every).decide(stamp, enc, (*ts, prices), now) {
        Decision::Send => false,
        Decision::Held { due } => {
            if let Some(at) = due {
                timers.held_until(at, every, enc.topic.clone());
            }
            true
        }
    }
}

/// What a pass over a topic's members finds of their pacing: whether
/// every live one is paced by the group of one interval
/// (`Groups::set_all_in`).
#[derive(Default)]
pub(super) struct OneGroup {
    every: Option<u32>,
    other: bool,
}

impl OneGroup {
    #[inline]
    pub fn see(&mut self, pace: PaceMode) {
        match (pace.group(), self.every) {
            (Some(e), None) => self.every = Some(e),
            (Some(e), Some(f)) if e == f => {}
            _ => self.other = true,
        }
    }

    pub fn found(&self) -> Option<u32> {
        self.every.filter(|_| !self.other)
    }
}

/// The frame one member receives of `enc` and its depth class, or None
/// when nothing reaches it: no frame in its format, a membership of a
/// connection that is closing or gone or of a subscription being withdrawn
/// (it awaits its turn to be detached, `ShardIndex::advance_leaves`), or a
/// topic its stale gate holds back.
#[inline]
pub(super) fn frame_for<'e>(
    conn: &crate::net::conn::Conn,
    m: &mut crate::net::index::Member,
    enc: &'e Encoded,
    gate: &crate::net::index::Gate<'_>,
    (deflate_min, count): (usize, &mut Counted),
) -> Option<(usize, &'e [u8])> {
    // A book update has a frame per depth class: the one this connection
    // receives the topic at (looked up once per member).
    let class = match &enc.book {
        Some(_) => book_class(conn, m, &enc.topic),
        None => 0,
    };
    let frame = enc.frame(m.fmt, class)?;
    if conn.key != m.key() || !conn.is_open() {
        return None;
    }
    if gate.any() && gate.stale(m.key(), &enc.topic, &conn.subs) {
        return None;
    }
    if conn.shared_deflate() && frame.len() >= deflate_min {
        // Compressed once for every client that negotiated it (the first
        // shard to need it does the work), never per subscriber.
        let make = || {
            count.compressions += 1;
            crate::wire::deflate::deflate_ours(frame).map(Vec::into_boxed_slice)
        };
        if let Some(small) = enc.deflated(m.fmt, class, make) {
            count.deflated += 1;
            return Some((class, small));
        }
    }
    Some((class, frame))
}

/// What offering an update to a connection's backlog did.
pub(super) enum Offered {
    /// Its frame is in the queue.
    Queued,
    /// Held back, a topic the connection did not hold before.
    Held,
    /// Merged into what it held, or paced to its rate's next slot.
    Merged,
}

/// What every member's offer of one delivery shares.
pub(super) struct Moment {
    /// The delivery's number (a rate-cap group decides once per stamp).
    pub stamp: u64,
    pub now: Instant,
    pub conflate_at: usize,
    /// The server's `max_rate`.
    pub server_rate: Option<f64>,
    /// The shard's pacing epoch (`Groups::all_in`).
    pub epoch: u64,
}

/// Offers an update to one connection: held back by its rate-cap group
/// (decided once per event for the group), or offered to its backlog
/// (`Backlog::offer`: queued, held, merged, or paced on its own, with the
/// pacing slot's timer set).
#[inline]
pub(super) fn offer_update(
    conn: &mut crate::net::conn::Conn,
    (token, groups): (usize, &mut Groups),
    (enc, frame, class): (&Arc<Encoded>, &[u8], usize),
    (pace, group_timers): (&mut PaceTimers, &mut GroupTimers),
    at: &Moment,
) -> Offered {
    if group_holds(
        conn.pace.group(),
        groups,
        (at.stamp, enc, at.now),
        group_timers,
    ) {
        return Offered::Merged;
    }
    let rules = Rules {
        class,
        conflate_at: at.conflate_at,
        paced: conn.pace == PaceMode::MIXED,
        now: at.now,
    };
    let cap = token_cap(conn, at.server_rate);
    let subs = &conn.subs;
    let interval_of = || subs.interval_for(&enc.topic, cap);
    match conn
        .backlog
        .offer(&mut conn.out, enc, frame, &rules, interval_of)
    {
        Offer::Queued => Offered::Queued,
        Offer::Parked { merged: false } => Offered::Held,
        Offer::Parked { merged: true } => Offered::Merged,
        Offer::Paced { due } => {
            if let Some(at) = due {
                pace.push(Reverse((at, token, conn.id, enc.topic.clone())));
            }
            Offered::Merged
        }
    }
}

pub(super) type PaceTimers = std::collections::BinaryHeap<super::state::PaceTimer>;
pub(super) use super::state::GroupTimers;

/// A status for a member: after what its connection holds back of the
/// topic (sent first), in order.
pub(super) fn in_order(
    conn: &mut crate::net::conn::Conn,
    (fb, names): (&mut crate::wire::frame::FrameBuf, &[Box<str>]),
    topic: &Arc<str>,
    frame: &[u8],
) {
    let fmt = conn.format;
    let enc = &mut crate::net::merged::EventWriter { fb, fmt, names };
    conn.backlog.send_held(&mut conn.out, enc, topic);
    conn.out.push(frame);
}

/// A clear or a load that starts the member's new numbering: what its
/// connection held of the topic is dropped, and the frame goes out.
pub(super) fn restart(
    conn: &mut crate::net::conn::Conn,
    m: &mut crate::net::index::Member,
    (generation, skip_through): (u16, u64),
    topic: &str,
    frame: &[u8],
) {
    m.generation = generation;
    m.skip_through = skip_through;
    conn.backlog.forget(topic);
    conn.out.push(frame);
}
