//! Fan-out: taking the router's batches, appending each shared frame to every
//! local subscriber's queue, and writing every dirty connection once per
//! iteration under the backlog rules (conflation, hard limit, slow consumers).

use super::{Shard, ShardMsg};
use crate::engine::link::{Encoded, Event};
use crate::metrics::CloseReason;
use crate::model::format::Format;
use crate::net::backlog::{Offer, Pressure, Rules};
use crate::net::conn::Verdict;
use crate::net::index::{later, token_of, UNRESOLVED};
use crate::net::merged::EventWriter;
use crate::net::outbound::{Flushed, Tally};
use crossbeam_channel::TryRecvError;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Router messages taken per iteration before flushing.
const CHANNEL_BUDGET: usize = 256;

/// Existing topics all wildcard subscriptions of a shard may join per loop turn.
const JOIN_BUDGET: usize = 2_048;

/// How often a shard compares what all connections hold with the budget.
const BUDGET_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

impl Shard {
    pub(super) fn drain_channel(&mut self) {
        self.pending.channel = false;
        for _ in 0..CHANNEL_BUDGET {
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    for enc in &batch {
                        self.deliver(enc);
                    }
                }
                Ok(ShardMsg::Adopt(sock, tls)) => self.adopt(sock, tls),
                Ok(ShardMsg::Shutdown) => self.begin_shutdown(),
                Ok(ShardMsg::Admin(q, reply)) => self.answer_admin(q, reply),
                Ok(ShardMsg::Interest(e)) => self.tell_publishers(&e),
                Ok(ShardMsg::Reload(live, done)) => {
                    self.reload(live);
                    let _ = done.try_send(());
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
        self.pending.channel = true;
    }

    /// Appends one event's shared frame to the queue of every local
    /// subscriber of its topic.
    ///
    /// Hot path: no serialization and no allocation per subscriber (a copy into
    /// each connection's reused queue), no lock, no syscall; the write happens
    /// once per connection per iteration in `flush_dirty`. A subscriber whose
    /// queue is past the conflation mark has the update held back and merged
    /// instead (`Backlog::offer`) until its queue drains.
    fn deliver(&mut self, enc: &Arc<Encoded>) {
        let conflate_at = self.limits.conflate_at;
        let server_rate = self.live.config.max_rate;
        let now = Instant::now();
        let Some((lt, gate)) = self.index.members_for(&enc.topic, enc.generation) else {
            // Nobody here wants it any more (a wildcard left between the
            // topic's creation and its first delivery): withdraw the interest
            // it inherited, or the router would keep sending it.
            for fmt in Format::ALL {
                if enc.has_format(fmt) {
                    self.table.leave_exact(&enc.topic, self.id, fmt);
                }
            }
            return;
        };
        let new_generation = matches!(enc.event, Event::Cleared | Event::Resync { .. });
        if new_generation && later(enc.generation, lt.generation) {
            lt.generation = enc.generation;
        }
        let mut frames = 0;
        let mut conflated = 0;
        for m in lt.members.iter_mut() {
            let Some(conn) = self.conns.get_mut(m.token()) else {
                continue;
            };
            // A book update has a frame per depth class: the one this
            // connection receives the topic at (looked up once per member).
            let class = match &enc.book {
                Some(_) => {
                    if m.class == UNRESOLVED {
                        m.class = conn.subs.depth_class_for(&enc.topic) as u8;
                    }
                    m.class as usize
                }
                None => 0,
            };
            let Some(frame) = enc.frame(m.fmt, class) else {
                continue;
            };
            // A membership of a connection that is closing or gone, or of
            // a subscription being withdrawn, awaits its turn to be
            // detached (`ShardIndex::advance_leaves`): nothing reaches it.
            if conn.key != m.key() || !conn.is_open() {
                continue;
            }
            if gate.any() && gate.stale(m.key(), &enc.topic, &conn.subs) {
                continue;
            }
            match enc.event {
                Event::Update { .. } => {
                    // Already in its snapshot, or of a numbering it is not in.
                    if enc.seq <= m.skip_through || m.generation != enc.generation {
                        continue;
                    }
                    // Rate caps: looked up once per connection and topic, and
                    // only for connections that have one (the server's, their
                    // token's, or their subscription's).
                    let cap = match conn.access.as_ref().and_then(|a| a.grant.max_rate) {
                        Some(own) => Some(server_rate.map_or(own, |s| s.min(own))),
                        None => server_rate,
                    };
                    let interval = if cap.is_some() || conn.subs.has_rates() {
                        conn.backlog.interval(&enc.topic).unwrap_or_else(|| {
                            let iv = conn.subs.interval_for(&enc.topic, cap);
                            conn.backlog.set_interval(&enc.topic, iv);
                            iv
                        })
                    } else {
                        None
                    };
                    let out = &mut conn.out;
                    match conn.backlog.offer(
                        out,
                        enc,
                        frame,
                        &Rules {
                            class,
                            conflate_at,
                            interval,
                            now,
                        },
                    ) {
                        Offer::Parked { merged: true } => {
                            conflated += 1;
                            continue;
                        }
                        // A newly held topic grows what the connection
                        // holds: the flush pass counts it against the limits.
                        Offer::Parked { merged: false } => {}
                        Offer::Paced { due } => {
                            conflated += 1;
                            if let Some(at) = due {
                                let key = (at, m.token(), conn.id, enc.topic.clone());
                                self.timers.pace.push(Reverse(key));
                            }
                            continue;
                        }
                        Offer::Queued => frames += 1,
                    }
                }
                Event::Status { .. } => {
                    if m.generation != enc.generation {
                        continue;
                    }
                    // After the topic's held-back update, if any: in order.
                    let topic = &enc.topic;
                    let names = self.table.field_names();
                    let enc = &mut EventWriter {
                        fb: &mut self.fb,
                        fmt: conn.format,
                        names,
                    };
                    conn.backlog.send_held(&mut conn.out, enc, topic);
                    conn.out.push(frame);
                }
                Event::Cleared | Event::Resync { .. } => {
                    // A member that joined after this clear (or load) is
                    // in the new generation already; every other starts it
                    // now: after a clear from nothing, after a load from
                    // the snapshot this frame is.
                    // A member already in the load's generation that holds
                    // nothing of it (a wildcard's member made as this very
                    // event reached the shard) takes its snapshot too.
                    let unseen = matches!(enc.event, Event::Resync { .. })
                        && m.generation == enc.generation
                        && m.skip_through < enc.seq;
                    if !later(enc.generation, m.generation) && !unseen {
                        continue;
                    }
                    m.generation = enc.generation;
                    m.skip_through = match enc.event {
                        Event::Resync { .. } => enc.seq,
                        _ => 0,
                    };
                    conn.backlog.forget(&enc.topic);
                    conn.out.push(frame);
                }
            }
            if !conn.dirty {
                conn.dirty = true;
                self.pending.dirty.push(m.token());
            }
        }
        let metrics = &self.shared.metrics.shards[self.id];
        metrics.frames.fetch_add(frames, Ordering::Relaxed);
        if conflated > 0 {
            metrics.conflated.fetch_add(conflated, Ordering::Relaxed);
        }
    }

    /// Takes the next chunk of the subscriptions being withdrawn and of
    /// the wildcard subscriptions still joining existing topics (at most
    /// `JOIN_BUDGET` topics per turn each); joins only for the connections
    /// whose queue is below the conflation mark, with their snapshots
    /// queued. A subscription to many topics, or its end, costs bounded
    /// time per turn, and snapshots stream out as the client reads.
    pub(super) fn advance_index(&mut self) {
        let conns = &self.conns;
        // The connection a member key names, if it is still there.
        let live = |key: usize| conns.get(token_of(key)).filter(|c| c.key == key);
        if self.index.leaving() {
            let subs_of = |key| live(key).map(|c| &c.subs);
            self.index.advance_leaves(&self.table, JOIN_BUDGET, subs_of);
        }
        self.pending.index_work = self.index.leaving();
        if !self.index.joining() {
            return;
        }
        let conflate_at = self.limits.conflate_at;
        let ready = |key| {
            live(key)
                .filter(|c| c.is_open() && c.out.pending() < conflate_at)
                .map(|c| &c.subs)
        };
        let (owed, more) = self.index.advance_joins(&self.table, JOIN_BUDGET, ready);
        self.pending.index_work |= more;
        for (key, fmt, fresh) in owed {
            let token = token_of(key);
            if let Some(conn) = self.conns.get_mut(token) {
                let (out, subs) = (&mut conn.out, &conn.subs);
                let names = self.table.field_names();
                let enc = &mut EventWriter {
                    fb: &mut self.fb,
                    fmt,
                    names,
                };
                super::commands::push_owed(out, enc, subs, &fresh);
                self.mark_dirty(token);
            }
        }
    }

    /// Writes every connection with queued bytes, once each, and applies the
    /// backlog rules to what is left: release conflated updates once the
    /// queue drains, close a consumer that stays over the hard limit.
    pub(super) fn flush_dirty(&mut self) {
        let limits = self.limits;
        let mut tally = Tally::default();
        let now = Instant::now();
        let metrics = &self.shared.metrics.shards[self.id];
        let mut ended = Vec::new();
        let mut drained_any = false;
        for token in std::mem::take(&mut self.pending.dirty) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut res = conn.flush(&mut tally);
            let names = self.table.field_names();
            let enc = &mut EventWriter {
                fb: &mut self.fb,
                fmt: conn.format,
                names,
            };
            if res.is_ok() && conn.backlog.release(&mut conn.out, enc, limits.conflate_at) {
                res = conn.flush(&mut tally);
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
                        self.id
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
        if drained_any && self.index.joining() {
            self.pending.index_work = true;
        }
        metrics.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
        metrics.writes.fetch_add(tally.writes, Ordering::Relaxed);
        // Two stores per loop turn, not per message.
        let (entries, members) = self.index.size();
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
        let budget = self.live.config.max_total_outbound_bytes as i64;
        let total = self.shared.metrics.queued_total();
        let mine = self.metrics().queued_bytes.load(Ordering::Relaxed);
        if total <= budget || mine <= 0 {
            return;
        }
        let share = ((total - budget) as i128 * mine as i128 / total as i128) as usize + 1;
        let mut holders: Vec<(usize, usize)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_open() && c.reported_pending > 0)
            .map(|(t, c)| (c.reported_pending, t))
            .collect();
        holders.sort_unstable_by(|a, b| b.cmp(a));
        let mut freed = 0;
        for (holds, token) in holders {
            if freed >= share {
                break;
            }
            freed += holds;
            log::warn!(
                "shard {}: server memory budget of {budget} bytes exceeded ({total}): \
                 closing a connection holding {holds} bytes",
                self.id
            );
            let verdict = Verdict::policy(
                "server memory budget exceeded: closing the connections that hold the most",
                CloseReason::SlowConsumer,
            );
            self.settle(token, verdict);
        }
    }
}
