//! Deadlines and heartbeats: handshake and close timeouts, pings and idle
//! closes, and the orderly shutdown of every connection.

use super::Shard;
use crate::metrics::CloseReason;
use crate::net::conn::{Phase, Verdict};
use crate::net::heartbeat::{Beat, Heartbeat};
use crate::net::http;
use crate::net::http::status::Status;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Shard {
    /// Work that waits on other threads: operator requests gathering the
    /// shards' answers, subscribes parked until the cluster follows their
    /// topics. Each answers or gives up at its deadline.
    pub(super) fn check_waits(&mut self, now: Instant) {
        if !self.pending.admin.is_empty() {
            self.poll_admin(now);
        }
        if !self.pending.follows.is_empty() {
            self.poll_follows(now);
        }
    }

    /// Deadlines that came: the heartbeat sweep (pings, idle closes, token
    /// expiry), the slow readers' turn, handshake timeouts, rate-capped
    /// updates whose slot came, and close timeouts.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        if now >= self.timers.next_sweep {
            self.heartbeat(now);
        }
        self.read_slow_readers(now);
        while let Some((token, id)) = self.timers.handshakes.pop_expired(now) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            if conn.id == id && matches!(conn.phase, Phase::Handshake { .. }) {
                conn.out.push(&http::response(
                    Status::RequestTimeout,
                    "handshake timed out\n",
                ));
                self.settle(token, Verdict::Finish(CloseReason::HandshakeTimeout));
            }
        }
        while let Some(Reverse((at, ..))) = self.timers.pace.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, token, id, topic))) = self.timers.pace.pop() else {
                break;
            };
            let Some(conn) = self.conns.same(token, id) else {
                continue;
            };
            let names = self.ctx.table.field_names();
            let (out, fmt) = (&mut conn.out, conn.format);
            let enc = &mut crate::net::merged::EventWriter {
                fb: &mut self.delivery.fb,
                fmt,
                names,
            };
            if conn.backlog.release_paced(out, enc, &topic, now) {
                self.mark_dirty(token);
            }
        }
        self.release_groups(now);
        while let Some(Reverse((at, token, id))) = self.timers.budget.peek().copied() {
            if at > now {
                break;
            }
            self.timers.budget.pop();
            if let Some(conn) = self.conns.same(token, id) {
                // flush_dirty releases what the budget has room for and
                // sets the next timer if some must wait still.
                conn.backlog.budget_fired();
                self.mark_dirty(token);
            }
        }
        while let Some((token, id)) = self.timers.closings.pop_expired(now) {
            if self.conns.get(token).is_some_and(|c| c.id == id) {
                self.settle(token, Verdict::Drop(CloseReason::Client));
            }
        }
    }

    /// Heartbeats, swept over the shard's connections (at most once per
    /// second): ping a connection silent for `ping_interval`, close one silent
    /// for `idle_timeout`. One sweep per shard instead of a timer per
    /// connection; a deadline may be late by the sweep period.
    fn heartbeat(&mut self, now: Instant) {
        let cfg = &self.ctx.live.config;
        let hb = Heartbeat {
            ping: cfg.ping_interval,
            idle: cfg.idle_timeout,
        };
        self.timers.next_sweep = now + hb.sweep_period();
        let mut idle_ones = Vec::new();
        let mut look_again = Vec::new();
        for (token, conn) in self.conns.iter_mut() {
            if !conn.is_open() {
                continue;
            }
            if conn.backlog.is_over_limit() {
                // A stalled reader gets no writable events and, conflating,
                // no new frames: only this sweep makes flush_dirty look at
                // its backlog again and apply the slow-consumer timeout.
                look_again.push(token);
            }
            match hb.beat(now.saturating_duration_since(conn.last_rx), conn.ping_out) {
                Beat::Quiet => {}
                Beat::Ping => {
                    conn.ping();
                    look_again.push(token);
                }
                Beat::Idle => idle_ones.push(token),
            }
        }
        for token in look_again {
            self.mark_dirty(token);
        }
        for token in idle_ones {
            let verdict = Verdict::policy(
                "idle timeout: no data or pong received",
                CloseReason::IdleTimeout,
            );
            self.settle(token, verdict);
        }
        self.expire_tokens(now);
    }

    pub(super) fn begin_shutdown(&mut self) {
        if self.timers.shutdown.is_some() {
            return;
        }
        // The listener stays open while connections drain, so load balancers
        // polling /healthz see 503 (and new upgrades are refused with 503).
        self.timers.shutdown = Some(Instant::now() + self.ctx.live.config.close_timeout);
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for t in tokens {
            let verdict = match self.conns[t].phase {
                Phase::Open { .. } => Verdict::shutting_down(),
                Phase::Handshake { .. } | Phase::Admin => Verdict::Drop(CloseReason::Shutdown),
                Phase::Closing => continue,
            };
            self.settle(t, verdict);
        }
    }

    /// Shutting down and done: every connection gone, or the deadline passed.
    /// The accepting shard keeps answering (503 on /healthz) until every
    /// shard has drained, not just itself.
    pub(super) fn drained_for_shutdown(&self) -> bool {
        let Some(deadline) = self.timers.shutdown else {
            return false;
        };
        let drained = if self.acceptor.listeners.is_empty() {
            self.conns.is_empty()
        } else {
            self.ctx.shared.connections.load(Ordering::Relaxed) == 0
        };
        drained || Instant::now() >= deadline
    }
}
