//! Rate-cap groups on the shard (`net::pace_group`): their slots' releases,
//! encoded once per format and depth class for all members; and the
//! hand-over when a connection's pacing changes (its subscriptions, its
//! token or the server's cap), so nothing a group or its own pacing held
//! for it is lost or sent twice.

use super::offer::{book_class, token_cap};
use super::Shard;
use crate::engine::link::{Encoded, Event};
use crate::model::format::Format;
use crate::net::conn::Conn;
use crate::net::index::later;
use crate::net::index::{Gate, Member};
use crate::net::merged::EventWriter;
use crate::net::pace_group::{PaceMode, Released};
use crate::wire::frame::FrameBuf;
use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Instant;

/// What handing a group's update out needs besides the members.
pub(super) struct Hand<'a> {
    pub fb: &'a mut FrameBuf,
    pub names: &'a [Box<str>],
    pub conflate_at: usize,
    pub now: Instant,
    /// Connections given something, to be written.
    pub dirty: &'a mut Vec<usize>,
}

/// The depth class member `m` receives a book topic at (looked up once).
fn class_of(conn: &Conn, m: &mut Member, rel: &Released, topic: &str) -> usize {
    match rel.merged.is_book() {
        true => book_class(conn, m, topic),
        false => 0,
    }
}

/// Offers a group's released update to each member paced by that group
/// (`every`): the frame for a member that had everything before it is
/// encoded once per format and depth class; a member whose snapshot
/// covered part of it gets its own count. Returns the frames queued.
///
/// Hot path (a slot per topic and interval, not per update): no
/// serialization per member in the common case, no lock, no syscall.
pub(super) fn hand_out(
    conns: &mut super::conns::ConnSet,
    (members, gate): (&mut [Member], &Gate<'_>),
    (topic, every, rel): (&Arc<str>, u32, &Released),
    h: &mut Hand<'_>,
) -> u64 {
    let mut frames: Vec<(Format, usize, Vec<u8>)> = Vec::new();
    let mut queued = 0;
    for m in members.iter_mut() {
        let Some(conn) = conns.get_mut(m.token()) else {
            continue;
        };
        if conn.key != m.key() || !conn.is_open() || conn.pace.group() != Some(every) {
            continue;
        }
        if m.generation != rel.generation || gate.any() && gate.stale(m.key(), topic, &conn.subs) {
            continue;
        }
        let Some(count) = rel.count_for(m.skip_through) else {
            continue;
        };
        let (class, fmt) = (class_of(conn, m, rel, topic), m.fmt);
        let mut enc = EventWriter {
            fb: &mut *h.fb,
            fmt,
            names: h.names,
        };
        let own;
        let frame: &[u8] = if count == rel.merged.count() {
            let at = match frames.iter().position(|(f, c, _)| *f == fmt && *c == class) {
                Some(at) => at,
                None => {
                    let f = rel.merged.frame_as(&mut enc, topic, class, count).to_vec();
                    frames.push((fmt, class, f));
                    frames.len() - 1
                }
            };
            &frames[at].2
        } else {
            own = rel.merged.frame_as(&mut enc, topic, class, count);
            own
        };
        let copy = || rel.merged.for_member(class, count);
        let out = &mut conn.out;
        if conn
            .backlog
            .offer_released(out, (topic, frame), copy, h.conflate_at, h.now)
        {
            queued += 1;
        }
        if !conn.dirty {
            conn.dirty = true;
            h.dirty.push(m.token());
        }
    }
    queued
}

impl Shard {
    /// A status or a clear for a topic with rate-cap groups: a status
    /// follows what they hold (it goes out first, out of turn); a clear or
    /// a load drops what an older numbering held.
    pub(super) fn groups_before(&mut self, enc: &Arc<Encoded>) {
        let Some((lt, _)) = self.delivery.index.topic_mut(&enc.topic) else {
            return;
        };
        let mut held: Vec<u32> = Vec::new();
        for g in lt.paced.iter_mut() {
            match (&enc.event, g.held_generation()) {
                (Event::Status { .. }, Some(_)) => held.push(g.every),
                (Event::Cleared | Event::Resync { .. }, Some(gen))
                    if later(enc.generation, gen) =>
                {
                    // It holds something (`held_generation` said so).
                    g.take_held();
                    self.timers.groups.taken();
                }
                _ => {}
            }
        }
        for every in held {
            self.release_group(&enc.topic, every, |g| g.take_held());
        }
    }

    /// Rate-cap groups whose slot came: each held-back update goes to the
    /// group's members.
    pub(super) fn release_groups(&mut self, now: Instant) {
        let dropped = self.delivery.index.take_dropped_holds();
        self.timers.groups.dropped(dropped);
        let delta = self.timers.groups.report();
        if delta != 0 {
            let metrics = &self.ctx.shared.metrics.shards[self.ctx.id];
            metrics
                .queued_bytes
                .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
        }
        while let Some(Reverse((at, ..))) = self.timers.groups.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, every, topic))) = self.timers.groups.heap.pop() else {
                break;
            };
            self.release_group(&topic, every, |g| g.take_due(now));
        }
    }

    /// Takes a group's held-back update with `take` and hands it out.
    pub(super) fn release_group(
        &mut self,
        topic: &Arc<str>,
        every: u32,
        take: impl FnOnce(&mut crate::net::pace_group::PaceGroup) -> Option<Released>,
    ) {
        let Some((lt, gate)) = self.delivery.index.topic_mut(topic) else {
            return;
        };
        let Some(rel) = lt
            .paced
            .iter_mut()
            .find(|g| g.every == every)
            .and_then(take)
        else {
            return;
        };
        self.timers.groups.taken();
        let h = &mut Hand {
            fb: &mut self.delivery.fb,
            names: self.ctx.table.field_names(),
            conflate_at: self.delivery.limits.conflate_at,
            now: Instant::now(),
            dirty: &mut self.pending.dirty,
        };
        let sent = hand_out(
            &mut self.conns,
            (&mut lt.members, &gate),
            (topic, every, &rel),
            h,
        );
        let metrics = &self.ctx.shared.metrics.shards[self.ctx.id];
        metrics
            .frames
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every group's held-back update goes out now (a reload changed the
    /// server's cap: every connection's pacing is computed again).
    pub(super) fn release_all_groups(&mut self) {
        let held: Vec<(u32, Arc<str>)> = std::mem::take(&mut self.timers.groups.heap)
            .into_iter()
            .map(|Reverse((_, every, topic))| (every, topic))
            .collect();
        for (every, topic) in held {
            self.release_group(&topic, every, |g| g.take_held());
        }
    }

    /// Computes the connection's pacing again (its subscriptions, its
    /// token's cap or the server's changed). When it changes, what its old
    /// pacing held for it goes out now, and its memberships skip through
    /// what it was given (which covers what the groups it joins hold), so
    /// its `seq` steps stay exact under the new one.
    ///
    /// O(its subscriptions), plus, when it leaves or joins a group
    /// interval, the topics whose group of that interval holds an update.
    pub(super) fn repace(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let cap = token_cap(conn, self.ctx.live.config.max_rate);
        let mode = PaceMode::of(conn.subs.asked_rate(), cap);
        let was = std::mem::replace(&mut conn.pace, mode);
        if mode == PaceMode::MIXED {
            // Its own pacing looks every topic's interval up again.
            let subs = &conn.subs;
            conn.backlog.subscriptions_changed(|t| subs.covers(t));
        }
        if was == mode {
            return;
        }
        // Topics whose members were all in one group look again.
        self.delivery.pace_epoch += 1;
        if let Some(every) = was.group() {
            self.hand_over_groups(token, every);
        } else if was == PaceMode::MIXED {
            self.hand_over_own(token);
        }
        if let Some(every) = mode.group() {
            self.skip_groups_held(token, every);
        }
    }

    /// The topics whose group of interval `every` holds an update, each
    /// once (a hold arms one timer; a timer may outlive its hold).
    fn held_topics(&self, every: u32) -> Vec<Arc<str>> {
        let mut topics: Vec<Arc<str>> = (self.timers.groups.heap.iter())
            .filter(|Reverse((_, e, _))| *e == every)
            .map(|Reverse((_, _, t))| t.clone())
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }

    /// The connection joined the groups of interval `every`. Its old pacing
    /// gave it every update of its topics up to now (at once, or in the
    /// hand-over just made), so what those groups hold is not news to it:
    /// its memberships skip through it, and the groups' next releases
    /// count its `conflated` from there.
    fn skip_groups_held(&mut self, token: usize, every: u32) {
        let topics = self.held_topics(every);
        let Some(conn) = self.conns.get(token) else {
            return;
        };
        let key = conn.key;
        for topic in topics {
            let Some((lt, _)) = self.delivery.index.topic_mut(&topic) else {
                continue;
            };
            let group = lt.paced.iter().find(|g| g.every == every);
            let Some(rel) = group.and_then(|g| g.held()) else {
                continue;
            };
            let (seq, generation) = (rel.merged.seq(), rel.generation);
            for m in lt.members.iter_mut().filter(|m| m.key() == key) {
                if m.generation == generation {
                    m.skip_through = m.skip_through.max(seq);
                }
            }
        }
    }

    /// The connection left the groups of interval `every`: what they hold
    /// for it goes to it now.
    fn hand_over_groups(&mut self, token: usize, every: u32) {
        let topics = self.held_topics(every);
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let names = self.ctx.table.field_names();
        let conflate_at = self.delivery.limits.conflate_at;
        let now = Instant::now();
        for topic in topics {
            let Some((lt, gate)) = self.delivery.index.topic_mut(&topic) else {
                continue;
            };
            if gate.any() && gate.stale(conn.key, &topic, &conn.subs) {
                continue;
            }
            let group = lt.paced.iter().find(|g| g.every == every);
            let Some(rel) = group.and_then(|g| g.held()) else {
                continue;
            };
            let Some(m) = lt.members.iter_mut().find(|m| m.key() == conn.key) else {
                continue;
            };
            if m.generation != rel.generation {
                continue;
            }
            let Some(count) = rel.count_for(m.skip_through) else {
                continue;
            };
            let class = class_of(conn, m, rel, &topic);
            let fb = &mut self.delivery.fb;
            let mut enc = EventWriter {
                fb,
                fmt: m.fmt,
                names,
            };
            let frame = rel.merged.frame_as(&mut enc, &topic, class, count);
            let copy = || rel.merged.for_member(class, count);
            let out = &mut conn.out;
            (conn.backlog).offer_released(out, (&topic, frame), copy, conflate_at, now);
            m.skip_through = rel.merged.seq();
        }
        self.mark_dirty(token);
    }

    /// The connection leaves its own pacing: what it holds back goes out
    /// now, and its memberships skip through it.
    fn hand_over_own(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let names = self.ctx.table.field_names();
        let fmt = conn.format;
        let enc = &mut EventWriter {
            fb: &mut self.delivery.fb,
            fmt,
            names,
        };
        let sent = conn.backlog.flush_paced(&mut conn.out, enc);
        let key = conn.key;
        for (topic, seq) in sent {
            if let Some((lt, _)) = self.delivery.index.topic_mut(&topic) {
                for m in lt.members.iter_mut().filter(|m| m.key() == key) {
                    m.skip_through = m.skip_through.max(seq);
                }
            }
        }
        self.mark_dirty(token);
    }
}
