//! A shard: one thread, one `mio::Poll`, its own connections. Nothing in
//! its loop blocks: sockets are non-blocking, and reading, accepting, the
//! mailbox and wildcard joins each have a per-turn budget. The locks it
//! takes are short and listed in docs/ARCHITECTURE.md (the topic table's
//! slots on subscribe, the interest book on subscribe and close, the
//! cluster's `following` map on a cluster-mode subscribe).
//!
//! The loop's chapters, in order, each named after what it does: take
//! socket events (read connections, note writable ones), `accept`,
//! re-read connections a budget cut short, `take_mail` (router batches
//! are delivered here), `advance_index` (wildcard joins, withdrawals),
//! `retry_blocked_publishers`, `mark_stale_topics`, `flush_dirty` (write
//! once per connection, backlog rules, memory budget), `fire_timers`
//! (heartbeats, slow readers, handshake and close timeouts, paced
//! updates), `check_waits` (admin answers, parked subscribes).
//!
//! The shard is its parts (see [`Shard`]); each file holds one job: `accept`
//! (the acceptor), `conns` (the connection set), `input` (reading,
//! dispatching), `commands`, `books`, `access` (subscriber commands and
//! their rules), `publishers` (network publishers, back-pressure), `mail`,
//! `fanout` (delivery), `offer` (one update to one member), `pace_groups`
//! (rate caps shared per topic), `timers`, `admin`, `reload`, `cluster`, `state`
//! (pending work and timers). The rules that decide (budgets, admission of
//! events, heartbeats, the memory budget, snapshot room) are sans-IO
//! modules beside the shard in `net`, with their own unit tests. Handlers
//! return a [`Verdict`] (with its cost, a `work::Outcome`); `settle` alone
//! acts on verdicts.

mod accept;
mod access;
mod admin;
mod books;
mod cluster;
mod commands;
mod conns;
mod fanout;
mod input;
mod mail;
mod offer;
mod pace_groups;
mod publishers;
mod reload;
mod state;
mod timers;

use super::backlog::BacklogLimits;
use super::conn::{Phase, Verdict};
use super::index::ShardIndex;
use super::timer::DeadlineQueue;
use super::Shared;
use crate::engine::ingest::Publisher;
use crate::engine::table::TopicTable;
use crate::metrics::{CloseReason, ShardMetrics};
use crate::net::live::Live;
use crate::net::mailbox::{Listener, ShardLink, ShardMsg, WAKER};
use crate::net::work::WorkBudget;
use crate::wire::frame::FrameBuf;
use conns::ConnSet;
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use state::{Pending, Timers};
use std::io;
use std::sync::{atomic::Ordering, Arc};
use std::time::Instant;

const LISTENER: Token = Token(usize::MAX - 1);
const TLS_LISTENER: Token = Token(usize::MAX - 3);

/// A shard is its parts and the loop that drives them. Each part owns its
/// state; the loop hands each the others' state it needs, so what a part
/// may touch is in its signatures.
pub(crate) struct Shard {
    /// What the shard reads and never replaces between reloads: its id,
    /// the server's shared state, the settings in force, the topic table.
    ctx: Ctx,
    poll: Poll,
    /// The shard's mailbox: router batches, adopted sockets, operations.
    rx: Receiver<ShardMsg>,
    /// Listeners (accepting shard only), peers to deal sockets to, the
    /// spare descriptor.
    acceptor: accept::Acceptor,
    /// The shard's connections.
    conns: ConnSet,
    /// The subscription index, backlog limits and the frame scratch buffer.
    delivery: fanout::Delivery,
    /// Work found by events or left over by a budget.
    pending: Pending,
    /// Deadlines the loop wakes up for.
    timers: Timers,
    /// What reading connections has cost this turn.
    work: WorkBudget,
}

/// The shard's environment: read by every part, replaced only at a reload.
pub(super) struct Ctx {
    id: usize,
    shared: Arc<Shared>,
    /// The settings in force, replaced at a reload.
    live: Arc<Live>,
    table: Arc<TopicTable>,
    /// Feeds network publishers' updates into the ingest channel.
    ingest: Publisher,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        poll: Poll,
        listeners: Vec<(TcpListener, Listener)>,
        peers: Vec<ShardLink>,
        rx: Receiver<ShardMsg>,
        table: Arc<TopicTable>,
        shared: Arc<Shared>,
        ingest: Publisher,
    ) -> io::Result<Self> {
        let live = shared.live.lock().clone();
        let cfg = &live.config;
        let mut registered = Vec::new();
        for (mut l, tls) in listeners {
            let token = match tls {
                Listener::Plain => LISTENER,
                Listener::Tls => TLS_LISTENER,
            };
            poll.registry()
                .register(&mut l, token, Interest::READABLE)?;
            registered.push((token, l, tls));
        }
        Ok(Shard {
            poll,
            acceptor: accept::Acceptor::new(registered, peers),
            rx,
            conns: ConnSet::with_capacity(
                (cfg.max_connections / cfg.shards.max(1)).min(1 << 16) + 1,
            ),
            delivery: fanout::Delivery {
                index: ShardIndex::new(id).with_interest(shared.interest.clone()),
                limits: BacklogLimits::new(cfg),
                fb: FrameBuf::default(),
                stamp: 0,
                pace_epoch: 0,
            },
            timers: Timers {
                handshakes: DeadlineQueue::new(cfg.handshake_timeout),
                closings: DeadlineQueue::new(cfg.close_timeout),
                next_sweep: Instant::now(),
                shutdown: None,
                accept_retry: None,
                next_budget_check: Instant::now(),
                pace: Default::default(),
                groups: Default::default(),
                budget: Default::default(),
                slow_reads: Vec::new(),
                slow_read_at: None,
            },
            pending: Pending::default(),
            work: WorkBudget::default(),
            ctx: Ctx {
                id,
                live: live.clone(),
                shared,
                table,
                ingest,
            },
        })
    }

    /// The event loop. Returns when shut down and every connection is closed
    /// (or the close deadline passed).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = state::poll_timeout(&self.pending, &self.timers, Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("shard {}: poll failed: {e}", self.ctx.id);
                    break;
                }
            }
            self.work.new_turn();
            if self.ctx.id > 0 {
                // Not the accepting shard, so `/healthz` can still answer.
                crate::faults::hit(crate::faults::Fault::ShardLoop);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | TLS_LISTENER => self.pending.accept = true,
                    WAKER => self.pending.mail = true,
                    Token(t) => {
                        if ev.is_writable() {
                            self.mark_dirty(t);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read_conn(t);
                        }
                    }
                }
            }
            if self.pending.accept || self.accept_retry_due() {
                self.accept();
            }
            for t in std::mem::take(&mut self.pending.reread) {
                self.read_conn(t);
            }
            if self.pending.mail {
                self.take_mail();
            }
            self.advance_index();
            if !self.pending.blocked.is_empty() {
                self.retry_blocked_publishers();
            }
            if !self.pending.stale_marks.is_empty() {
                self.mark_stale_topics();
            }
            self.flush_dirty();
            let now = Instant::now();
            self.fire_timers(now);
            self.check_waits(now);
            if self.drained_for_shutdown() {
                break;
            }
        }
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for t in tokens {
            self.settle(t, Verdict::Drop(CloseReason::Shutdown));
        }
    }

    fn metrics(&self) -> &ShardMetrics {
        &self.ctx.shared.metrics.shards[self.ctx.id]
    }

    fn mark_dirty(&mut self, token: usize) {
        if let Some(c) = self.conns.get_mut(token) {
            if !c.dirty {
                c.dirty = true;
                self.pending.dirty.push(token);
            }
        }
    }

    /// Acts on what a handler decided: the only place that closes, ends and
    /// removes connections. The first reason decided is the one counted.
    fn settle(&mut self, token: usize, verdict: Verdict) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let closing = matches!(conn.phase, Phase::Closing);
        match verdict {
            Verdict::Continue => {}
            // Already closing: the first verdict stands.
            Verdict::Close { .. } | Verdict::Finish(_) if closing => {}
            Verdict::Close { code, reason, why } => {
                conn.close_reason.get_or_insert(why);
                conn.close(code, &reason);
                self.start_closing(token);
            }
            Verdict::Finish(why) => {
                conn.close_reason.get_or_insert(why);
                conn.phase = Phase::Closing;
                self.start_closing(token);
            }
            Verdict::Drop(why) => self.remove(token, why),
        }
    }

    /// A connection entered Closing: its subscriptions end now and a deadline
    /// bounds how long it may linger.
    fn start_closing(&mut self, token: usize) {
        self.publisher_gone(token);
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        // Nothing held back goes out after a close; the next flush
        // reports the memory returned.
        conn.backlog.drop_held();
        let subs = conn.subs.len() as i64;
        let (index, table) = (&mut self.delivery.index, &self.ctx.table);
        index.remove_all(table, conn.key, conn.format, &mut conn.subs);
        self.ctx.shared.metrics.shards[self.ctx.id]
            .subscriptions
            .fetch_sub(subs, Ordering::Relaxed);
        self.timers.closings.push(Instant::now(), token, conn.id);
        self.mark_dirty(token);
    }

    fn remove(&mut self, token: usize, reason: CloseReason) {
        if !self.conns.contains(token) {
            return;
        }
        self.publisher_gone(token);
        let mut conn = self.conns.remove(token);
        let m = &self.ctx.shared.metrics.shards[self.ctx.id];
        m.closed(conn.close_reason.unwrap_or(reason));
        m.subscriptions
            .fetch_sub(conn.subs.len() as i64, Ordering::Relaxed);
        m.queued_bytes
            .fetch_sub(conn.reported_pending as i64, Ordering::Relaxed);
        self.delivery
            .index
            .remove_all(&self.ctx.table, conn.key, conn.format, &mut conn.subs);
        let _ = self.poll.registry().deregister(conn.io.socket());
        self.ctx.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
