//! Fan-out: taking the router's batches, appending each shared frame to every
//! local subscriber's queue, and writing every dirty connection once per
//! iteration under the backlog rules (conflation, hard limit, slow consumers).

use super::offer::{
    frame_for, group_holds, in_order, offer_update, restart, Counted, Moment, Offered, OneGroup,
};
use super::Shard;
use crate::engine::link::{Encoded, Event};
use crate::metrics::CloseReason;
use crate::model::format::Format;
use crate::net::admit::{admit, Admit};
use crate::net::backlog::Pressure;
use crate::net::conn::Verdict;
use crate::net::index::{later, token_of};
use crate::net::memory_budget::over_budget;
use crate::net::merged::EventWriter;
use crate::net::outbound::{Flushed, Tally};
use crate::net::snapshot_frames::SnapshotFrames;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Existing topics all wildcard subscriptions of a shard may join (and as
/// many withdraw) per loop turn, while its time slice lasts.
const JOIN_BUDGET: usize = 2_048;

/// Topics joined or withdrawn between two looks at the clock.
const JOIN_STEP: usize = 256;

/// How often a shard compares what all connections hold with the budget.
const BUDGET_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

/// Writes a connection's queue; once it has drained enough, releases its
/// held-back updates (as far as its byte budget allows) and writes again.
/// The bytes written are charged to its byte budget.
fn write_and_release(
    conn: &mut crate::net::conn::Conn,
    (fb, names): (&mut crate::wire::frame::FrameBuf, &[Box<str>]),
    limits: &crate::net::backlog::BacklogLimits,
    tally: &mut Tally,
    now: Instant,
) -> std::io::Result<Flushed> {
    let wrote = tally.bytes;
    let mut res = conn.flush(tally);
    let fmt = conn.format;
    let enc = &mut EventWriter { fb, fmt, names };
    if res.is_ok()
        && conn
            .backlog
            .release(&mut conn.out, enc, limits.conflate_at, now)
    {
        res = conn.flush(tally);
    }
    conn.backlog.spend(tally.bytes - wrote, now);
    res
}

/// What delivery keeps: the subscription index (who gets which topic),
/// the backlog limits in force, and the scratch buffer frames are encoded
/// in when a connection needs its own (merged or held-back updates).
pub(super) struct Delivery {
    pub index: crate::net::index::ShardIndex,
    pub limits: crate::net::backlog::BacklogLimits,
    pub fb: crate::wire::frame::FrameBuf,
    /// Counts deliveries: a rate-cap group decides once per stamp.
    pub stamp: u64,
    /// Moves whenever a connection's pacing changes (`Groups::all_in`).
    pub pace_epoch: u64,
}

impl Shard {
    /// Appends one event's shared frame to the queue of every local
    /// subscriber of its topic.
    ///
    /// Hot path: no serialization and no allocation per subscriber (a copy into
    /// each connection's reused queue), no lock, no syscall; the write happens
    /// once per connection per iteration in `flush_dirty`. A subscriber whose
    /// queue is past the conflation mark has the update held back and merged
    /// instead (`Backlog::offer`) until its queue drains. Whether the event
    /// is for a member at all is [`admit`]'s decision.
    pub(super) fn deliver(&mut self, enc: &Arc<Encoded>, now: Instant) {
        let valued = !matches!(enc.event, Event::Cleared);
        if !matches!(enc.event, Event::Update { .. }) {
            self.groups_before(enc);
        }
        self.delivery.stamp += 1;
        let at = Moment {
            stamp: self.delivery.stamp,
            now,
            conflate_at: self.delivery.limits.conflate_at,
            server_rate: self.ctx.live.config.max_rate,
            epoch: self.delivery.pace_epoch,
        };
        let index = &mut self.delivery.index;
        let Some((lt, gate)) = index.members_for(&enc.topic, enc.generation, valued) else {
            return self.unwanted(enc);
        };
        let new_generation = matches!(enc.event, Event::Cleared | Event::Resync { .. });
        if new_generation && later(enc.generation, lt.generation) {
            lt.generation = enc.generation;
        }
        let mut count = Counted::default();
        let deflate_min = self.ctx.live.config.deflate_min_bytes;
        let (members, groups) = (&mut lt.members, &mut lt.paced);
        // Every member paced by one group that holds this back: no pass.
        let one = (groups.all_in(at.epoch), &mut self.timers.groups);
        if group_holds(one.0, groups, (at.stamp, enc, now), one.1) {
            count.conflated += members.len() as u64;
            return count.record(&self.ctx.shared.metrics.shards[self.ctx.id]);
        }
        let mut pacing = OneGroup::default();
        for m in members.iter_mut() {
            let Some(conn) = self.conns.get_mut(m.token()) else {
                continue;
            };
            if conn.key == m.key() && conn.is_open() {
                pacing.see(conn.pace);
            }
            let Some((class, frame)) = frame_for(conn, m, enc, &gate, (deflate_min, &mut count))
            else {
                continue;
            };
            let (generation, skip) = (m.generation, m.skip_through);
            match admit(generation, skip, &enc.event, enc.seq, enc.generation) {
                Admit::Skip => continue,
                Admit::Offer => {
                    let timers = (&mut self.timers.pace, &mut self.timers.groups);
                    match offer_update(conn, (m.token(), groups), (enc, frame, class), timers, &at)
                    {
                        Offered::Queued => count.frames += 1,
                        // A newly held topic grows what the connection
                        // holds: the flush pass counts it against the limits.
                        Offered::Held => {}
                        Offered::Merged => {
                            count.conflated += 1;
                            continue;
                        }
                    }
                }
                Admit::InOrder => {
                    let names = self.ctx.table.field_names();
                    in_order(conn, (&mut self.delivery.fb, names), &enc.topic, frame);
                }
                Admit::Restart {
                    generation,
                    skip_through,
                } => restart(conn, m, (generation, skip_through), &enc.topic, frame),
            }
            if !conn.dirty {
                conn.dirty = true;
                self.pending.dirty.push(m.token());
            }
        }
        if !groups.is_empty() {
            groups.set_all_in(pacing.found(), at.epoch);
        }
        count.record(&self.ctx.shared.metrics.shards[self.ctx.id]);
    }

    /// Nobody here wants `enc`'s topic any more (a wildcard left between
    /// the topic's creation and its first delivery): withdraws the interest
    /// it inherited, or the router would keep sending it.
    fn unwanted(&mut self, enc: &Encoded) {
        for fmt in Format::ALL {
            if enc.has_format(fmt) {
                self.ctx.table.leave_exact(&enc.topic, self.ctx.id, fmt);
            }
        }
    }

    /// Takes the next chunks of the subscriptions being withdrawn and of
    /// the wildcard subscriptions still joining existing topics, a step of
    /// `JOIN_STEP` topics each at a time, up to `JOIN_BUDGET` per turn and
    /// while the turn's time slice lasts (one step always, so they progress
    /// on a busy shard); joins only for the connections whose queue is
    /// below the conflation mark, with their snapshots queued. A
    /// subscription to many topics, or its end, costs bounded time per
    /// turn, and snapshots stream out as the client reads.
    pub(super) fn advance_index(&mut self) {
        let mut spent = 0;
        loop {
            let more = self.advance_index_step();
            spent += JOIN_STEP;
            if !more || spent >= JOIN_BUDGET || self.work.out_of_time() {
                return;
            }
        }
    }

    /// One step of `advance_index`; true when work is left.
    fn advance_index_step(&mut self) -> bool {
        let conns = &self.conns;
        // The connection a member key names, if it is still there.
        let live = |key: usize| conns.get(token_of(key)).filter(|c| c.key == key);
        if self.delivery.index.leaving() {
            let subs_of = |key| live(key).map(|c| &c.subs);
            self.delivery
                .index
                .advance_leaves(&self.ctx.table, JOIN_STEP, subs_of);
        }
        self.pending.index_work = self.delivery.index.leaving();
        if !self.delivery.index.joining() {
            return self.pending.index_work;
        }
        let conflate_at = self.delivery.limits.conflate_at;
        let ready = |key| {
            live(key)
                .filter(|c| c.is_open() && c.out.pending() < conflate_at)
                .map(|c| &c.subs)
        };
        let (owed, more) = self
            .delivery
            .index
            .advance_joins(&self.ctx.table, JOIN_STEP, ready);
        self.pending.index_work |= more;
        let mut frames = SnapshotFrames::default();
        for group in owed {
            frames.clear();
            let shared = group.owed.len() > 1;
            for (key, fresh) in group.owed {
                let token = token_of(key);
                let Some(conn) = self.conns.get_mut(token) else {
                    continue;
                };
                let zip = super::books::deflate_at(conn, &self.ctx.live.config);
                let (out, subs) = ((&mut conn.out, zip), &conn.subs);
                let names = self.ctx.table.field_names();
                let enc = &mut EventWriter {
                    fb: &mut self.delivery.fb,
                    fmt: group.fmt,
                    names,
                };
                let f = shared.then_some(&mut frames);
                super::commands::push_owed(out, enc, subs, &fresh, f);
                self.mark_dirty(token);
            }
        }
        self.pending.index_work
    }

    /// Writes every connection with queued bytes, once each, and applies the
    /// backlog rules to what is left: release conflated updates once the
    /// queue drains, close a consumer that stays over the hard limit.
    pub(super) fn flush_dirty(&mut self) {
        let limits = self.delivery.limits;
        let mut tally = Tally::default();
        let now = Instant::now();
        let metrics = &self.ctx.shared.metrics.shards[self.ctx.id];
        let mut ended = Vec::new();
        let mut drained_any = false;
        for token in std::mem::take(&mut self.pending.dirty) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let names = self.ctx.table.field_names();
            let fb = &mut self.delivery.fb;
            let res = write_and_release(conn, (fb, names), &limits, &mut tally, now);
            if let Some(at) = conn.backlog.budget_wait(conn.out.pending(), now) {
                self.timers.budget.push(Reverse((at, token, conn.id)));
            }
            // Everything the connection holds counts, not only its queue.
            let (holds, delta) = conn.report_holds();
            if delta != 0 {
                metrics.queued_bytes.fetch_add(delta, Ordering::Relaxed);
            }
            let Ok(flushed) = res else {
                ended.push((token, Verdict::Drop(CloseReason::Io)));
                continue;
            };
            if flushed == Flushed::All {
                // A wildcard join paused for this connection's queue may go
                // on: no socket event would say so (one turn early is cheap).
                drained_any = true;
                if let Some(at) = conn.backlog.take_oldest() {
                    metrics.observe_latency(now.saturating_duration_since(at));
                }
                if conn.write_done() && conn.drain() {
                    ended.push((token, Verdict::Drop(CloseReason::Client)));
                }
            }
            match conn.backlog.after_flush(flushed, holds, now, &limits) {
                Pressure::Fine | Pressure::Waiting => {}
                Pressure::CutOff => ended.push((token, Verdict::Drop(CloseReason::SlowConsumer))),
                Pressure::SlowConsumer if conn.is_open() => {
                    log::info!(
                        "shard {}: closing slow consumer holding {holds} bytes",
                        self.ctx.id
                    );
                    ended.push((
                        token,
                        Verdict::policy(
                            "slow consumer: outbound queue over its limit for too long",
                            CloseReason::SlowConsumer,
                        ),
                    ));
                }
                Pressure::SlowConsumer => {}
            }
        }
        if drained_any && self.delivery.index.joining() {
            self.pending.index_work = true;
        }
        metrics.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
        metrics.writes.fetch_add(tally.writes, Ordering::Relaxed);
        // Two stores per loop turn, not per message.
        let (entries, members) = self.delivery.index.size();
        metrics
            .index_entries
            .store(entries as u64, Ordering::Relaxed);
        metrics.memberships.store(members as u64, Ordering::Relaxed);
        for (token, verdict) in ended {
            self.settle(token, verdict);
        }
        if now >= self.timers.next_budget_check {
            self.timers.next_budget_check = now + BUDGET_CHECK_PERIOD;
            self.enforce_memory_budget();
        }
    }

    /// The server-wide budget (`max_total_outbound_bytes`): when all
    /// connections together hold more, this shard closes its own
    /// connections that hold the most, with 1008, until it has freed its
    /// share of the excess (in proportion to what it holds), so the shards
    /// together free the excess and no more.
    ///
    /// Runs at most every `BUDGET_CHECK_PERIOD`; one pass over the shard's
    /// connections, and a sort only when over the budget.
    fn enforce_memory_budget(&mut self) {
        let budget = self.ctx.live.config.max_total_outbound_bytes as i64;
        let metrics = &self.ctx.shared.metrics;
        metrics
            .outbound_budget
            .store(budget as u64, Ordering::Relaxed);
        let total = metrics.queued_total();
        let mine = self.metrics().queued_bytes.load(Ordering::Relaxed);
        if total <= budget {
            // The common case: no pass over the connections.
            return;
        }
        let holders: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_open() && c.reported_pending > 0)
            .map(|(t, c)| (c.reported_pending, t))
            .collect();
        for token in over_budget(holders, total, budget, mine) {
            let holds = self.conns.get(token).map_or(0, |c| c.reported_pending);
            log::warn!(
                "shard {}: server memory budget of {budget} bytes exceeded ({total}): \
                 closing a connection holding {holds} bytes",
                self.ctx.id
            );
            let verdict = Verdict::policy(
                "server memory budget exceeded: closing the connections that hold the most",
                CloseReason::SlowConsumer,
            );
            self.settle(token, verdict);
        }
    }
}
