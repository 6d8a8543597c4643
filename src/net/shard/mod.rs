//! A shard: one thread, one `mio::Poll`, its own connections. Each loop
//! iteration: wait for events (or a router wake-up), accept, read and answer
//! client commands, take the router's batches and append the shared frames
//! to every subscriber's queue, then write every connection that has
//! something queued once. Nothing in the loop blocks: sockets are
//! non-blocking, reads and accepts have a per-iteration budget, and the only
//! locks taken are the topic table's, briefly, when a client subscribes.
//!
//! The loop is here; each job has its own file: `accept` (listeners, dealing
//! connections), `input` (reading, dispatching), `commands` (subscriber
//! commands), `publishers` (network publishers, back-pressure), `fanout`
//! (delivery, flushing, backlog rules), `timers` (deadlines, heartbeats,
//! shutdown), `access` (token scopes, expiry, command rate), `admin`
//! (operator requests), `reload` (new settings). Handlers return a
//! [`Verdict`]; `settle` acts on it.

mod accept;
mod access;
mod admin;
mod books;
mod cluster;
mod commands;
mod fanout;
mod input;
mod publishers;
mod reload;
mod state;
mod timers;

use super::backlog::BacklogLimits;
use super::conn::{Conn, Phase, Verdict};
use super::index::ShardIndex;
use super::timer::DeadlineQueue;
use super::Shared;
use crate::engine::ingest::Publisher;
use crate::engine::table::TopicTable;
use crate::metrics::{CloseReason, ShardMetrics};
use crate::net::live::Live;
use crate::net::mailbox::{Listener, ShardLink, ShardMsg, WAKER};
use crate::wire::frame::FrameBuf;
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use state::{Pending, Timers};
use std::io;
use std::sync::{atomic::Ordering, Arc};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX - 1);
const TLS_LISTENER: Token = Token(usize::MAX - 3);

pub(crate) struct Shard {
    id: usize,
    poll: Poll,
    /// Only the accepting shard holds listeners.
    listeners: Vec<(Token, TcpListener, Listener)>,
    /// Every shard, self included, for handing out accepted connections.
    peers: Vec<ShardLink>,
    next_peer: usize,
    rx: Receiver<ShardMsg>,
    conns: Slab<Conn>,
    next_conn_id: u64,
    index: ShardIndex,
    table: Arc<TopicTable>,
    shared: Arc<Shared>,
    live: Arc<Live>, // The settings in force, replaced at a reload.
    limits: BacklogLimits,
    fb: FrameBuf,
    pending: Pending,
    timers: Timers,
    /// Feeds network publishers' updates into the ingest channel.
    ingest: Publisher,
    /// Work the connection being read has cost this turn (see `input`).
    spent: usize,
    /// Work all connections' commands have cost this loop turn.
    turn_spent: usize,
    /// The accepting shard's spare descriptor (see `accept`).
    spare: state::SpareFd,
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
            id,
            poll,
            listeners: registered,
            peers,
            next_peer: 0,
            rx,
            // Reserved, not touched: untouched pages cost no memory, and the
            // slab never reallocates (and copies every connection) as it grows.
            conns: Slab::with_capacity((cfg.max_connections / cfg.shards.max(1)).min(1 << 16) + 1),
            next_conn_id: 0,
            index: ShardIndex::new(id).with_interest(shared.interest.clone()),
            table,
            timers: Timers {
                handshakes: DeadlineQueue::new(cfg.handshake_timeout),
                closings: DeadlineQueue::new(cfg.close_timeout),
                next_sweep: Instant::now(),
                shutdown: None,
                accept_retry: None,
                next_budget_check: Instant::now(),
                pace: Default::default(),
                slow_reads: Vec::new(),
                slow_read_at: None,
            },
            limits: BacklogLimits::new(cfg),
            live: live.clone(),
            shared,
            fb: FrameBuf::default(),
            pending: Pending::default(),
            ingest,
            spent: 0,
            turn_spent: 0,
            spare: state::SpareFd::new(),
        })
    }

    /// The event loop. Returns when shut down and every connection is closed
    /// (or the close deadline passed).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("shard {}: poll failed: {e}", self.id);
                    break;
                }
            }
            self.turn_spent = 0;
            if self.id > 0 {
                // Not the accepting shard, so `/healthz` can still answer.
                crate::faults::hit(crate::faults::Fault::ShardLoop);
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | TLS_LISTENER => self.pending.accept = true,
                    WAKER => self.pending.channel = true,
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
            if self.pending.channel {
                self.drain_channel();
            }
            self.advance_index();
            if !self.pending.blocked.is_empty() {
                self.retry_blocked_publishers();
            }
            if !self.pending.stale_marks.is_empty() {
                self.mark_stale_topics();
            }
            self.flush_dirty();
            self.expire(Instant::now());
            if self.drained_for_shutdown() {
                break;
            }
        }
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for t in tokens {
            self.settle(t, Verdict::Drop(CloseReason::Shutdown));
        }
    }

    fn poll_timeout(&self) -> Duration {
        let p = &self.pending;
        if p.accept || p.channel || !p.reread.is_empty() || !p.dirty.is_empty() {
            // Dirty here means the timers queued something (a ping, a
            // close): write it now, not at the next event.
            return Duration::ZERO;
        }
        if p.waits() {
            // Waiting on the router or other shards: look again soon.
            return Duration::from_millis(1);
        }
        let t = &self.timers;
        let next = [
            t.handshakes.next(),
            t.closings.next(),
            t.shutdown,
            t.accept_retry,
            Some(t.next_sweep),
            t.next_due(),
        ]
        .into_iter()
        .flatten()
        .min();
        next.map_or(Duration::from_secs(1), |at| {
            at.saturating_duration_since(Instant::now())
                .min(Duration::from_secs(1))
        })
    }

    fn metrics(&self) -> &ShardMetrics {
        &self.shared.metrics.shards[self.id]
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
        let (index, table) = (&mut self.index, &self.table);
        index.remove_all(table, conn.key, conn.format, &mut conn.subs);
        self.shared.metrics.shards[self.id]
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
        let m = &self.shared.metrics.shards[self.id];
        m.closed(conn.close_reason.unwrap_or(reason));
        m.subscriptions
            .fetch_sub(conn.subs.len() as i64, Ordering::Relaxed);
        m.queued_bytes
            .fetch_sub(conn.reported_pending as i64, Ordering::Relaxed);
        self.index
            .remove_all(&self.table, conn.key, conn.format, &mut conn.subs);
        let _ = self.poll.registry().deregister(conn.io.socket());
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
