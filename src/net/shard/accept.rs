//! Accepting connections and dealing them out: the accepting shard holds the
//! listeners and hands each new socket to the shards round-robin.

use super::{Shard, ShardMsg};
use crate::metrics::CloseReason;
use crate::net::conn::Conn;
use crate::net::http;
use crate::net::http::status::Status;
use crate::net::index::member_key;
use crate::net::mailbox::{Listener, ShardLink};
use crate::net::transport::Transport;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Connections accepted per iteration before the shard turns to others.
const ACCEPT_BUDGET: usize = 256;

/// Connections accepted per iteration even when the turn's time slice is
/// spent, so a busy shard still takes in arrivals.
const ACCEPT_AT_LEAST: usize = 16;

/// Sockets beyond `max_connections` accepted for plain HTTP requests, so
/// `/healthz` and `/metrics` answer while subscribers are refused.
pub(super) const HTTP_RESERVE: usize = 16;

/// Out of descriptors without a spare: how soon to try accepting again.
const FD_RETRY: Duration = Duration::from_millis(50);

/// At most one descriptor-limit warning per this period.
const FD_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The accepting side of a shard: the listeners (only the accepting shard
/// has any), every shard's link to deal sockets out round-robin, and the
/// spare descriptor for answering at the descriptor limit.
pub(super) struct Acceptor {
    pub listeners: Vec<(Token, TcpListener, Listener)>,
    /// Every shard, self included.
    pub peers: Vec<ShardLink>,
    pub next_peer: usize,
    pub spare: SpareFd,
}

impl Acceptor {
    pub fn new(listeners: Vec<(Token, TcpListener, Listener)>, peers: Vec<ShardLink>) -> Self {
        Acceptor {
            listeners,
            peers,
            next_peer: 0,
            spare: SpareFd::new(),
        }
    }

    /// The shard the next accepted socket goes to: each in turn.
    pub fn next_target(&mut self) -> usize {
        let target = self.next_peer % self.peers.len().max(1);
        self.next_peer = self.next_peer.wrapping_add(1);
        target
    }
}

/// A descriptor kept in reserve: at the process's descriptor limit it is
/// closed to accept one waiting connection, answer it 503 and close it, so
/// waiting clients get an answer, not a hang.
pub(super) struct SpareFd {
    pub file: Option<std::fs::File>,
    /// When a descriptor-limit warning was last logged.
    pub warned_at: Option<Instant>,
    /// Connections refused since.
    pub refused: u64,
}

impl SpareFd {
    pub fn new() -> Self {
        SpareFd {
            file: std::fs::File::open("/dev/null").ok(),
            warned_at: None,
            refused: 0,
        }
    }

    /// Counts one connection refused at the descriptor limit. Returns how
    /// many were refused since the last warning when another is due (at
    /// most one per `FD_LOG_PERIOD`), so a flood logs a line, not a line
    /// per connection.
    pub fn note_refused(&mut self, now: Instant) -> Option<u64> {
        self.refused += 1;
        if self
            .warned_at
            .is_some_and(|at| now.duration_since(at) < FD_LOG_PERIOD)
        {
            return None;
        }
        self.warned_at = Some(now);
        Some(std::mem::take(&mut self.refused))
    }
}

/// What the spare descriptor did at the descriptor limit.
enum AtLimit {
    /// A waiting connection was answered 503; more may wait.
    Refused,
    /// The queue was empty: nothing to do until a connection arrives.
    NoneWaiting,
    /// No spare descriptor, or it did not help: try again on a timer.
    NoSpare,
}

impl Shard {
    /// The retry timer (out of descriptors, no spare) has come.
    pub(super) fn accept_retry_due(&mut self) -> bool {
        let due = self
            .timers
            .accept_retry
            .is_some_and(|at| Instant::now() >= at);
        if due {
            self.timers.accept_retry = None;
        }
        due
    }

    pub(super) fn accept(&mut self) {
        self.pending.accept = false;
        for which in 0..self.acceptor.listeners.len() {
            if !self.accept_from(which) {
                self.pending.accept = true;
            }
        }
    }

    /// Accepts from one listener until it would block (true) or the budget
    /// is spent (false: come back next iteration).
    fn accept_from(&mut self, which: usize) -> bool {
        for n in 0..ACCEPT_BUDGET {
            if n >= ACCEPT_AT_LEAST && self.work.out_of_time() {
                return false;
            }
            let (_, listener, tls) = &self.acceptor.listeners[which];
            let tls = *tls;
            match listener.accept() {
                Ok((sock, _addr)) => self.deal(sock, tls),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Linux takes the descriptor before it looks at the
                    // queue, so this error does not say anyone is waiting.
                    match self.refuse_at_fd_limit(which) {
                        AtLimit::Refused => {}
                        // Nobody waits: the next arrival is a new edge.
                        // (Going on here was a busy loop at the limit.)
                        AtLimit::NoneWaiting => return true,
                        AtLimit::NoSpare => {
                            // The listener is edge-triggered, so no event
                            // would come for the connections already
                            // waiting; look again on a timer.
                            self.timers.accept_retry = Some(Instant::now() + FD_RETRY);
                            return true;
                        }
                    }
                }
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return true;
                }
            }
        }
        false
    }

    /// Out of descriptors: frees the spare one, accepts a waiting connection
    /// with it, answers 503 and closes it, then takes the spare back. Logs
    /// at most once per `FD_LOG_PERIOD`.
    fn refuse_at_fd_limit(&mut self, which: usize) -> AtLimit {
        let Some(spare) = self.acceptor.spare.file.take() else {
            return AtLimit::NoSpare;
        };
        drop(spare);
        let (_, listener, tls) = &self.acceptor.listeners[which];
        let outcome = match listener.accept() {
            Ok((sock, _)) => {
                if *tls == Listener::Plain {
                    let _ = (&sock).write(&http::response(
                        Status::ServiceUnavailable,
                        "server out of file descriptors\n",
                    ));
                }
                AtLimit::Refused
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => AtLimit::NoneWaiting,
            // Still no descriptor (another thread or process took it):
            // try again on the timer rather than spin.
            Err(_) => AtLimit::NoSpare,
        };
        self.acceptor.spare.file = std::fs::File::open("/dev/null").ok();
        if !matches!(outcome, AtLimit::Refused) {
            return outcome;
        }
        let m = self.metrics();
        m.fd_refused.fetch_add(1, Ordering::Relaxed);
        if let Some(refused) = self.acceptor.spare.note_refused(Instant::now()) {
            log::warn!(
                "shard {}: out of file descriptors: {refused} connection(s) answered 503 \
                 (raise the open-files limit or lower max_connections)",
                self.ctx.id
            );
        }
        if self.acceptor.spare.file.is_some() {
            AtLimit::Refused
        } else {
            AtLimit::NoSpare
        }
    }

    /// Counts a new connection against the limit and gives it to the next shard.
    fn deal(&mut self, sock: TcpStream, tls: Listener) {
        let m = self.metrics();
        m.accepted.fetch_add(1, Ordering::Relaxed);
        m.open.fetch_add(1, Ordering::Relaxed);
        let open = self.ctx.shared.connections.fetch_add(1, Ordering::Relaxed);
        // A few sockets past the limit are let in for plain HTTP (health
        // checks, metrics); their upgrades are refused (`HttpContext::full`).
        if open >= self.ctx.live.config.max_connections + HTTP_RESERVE {
            self.ctx.shared.connections.fetch_sub(1, Ordering::Relaxed);
            m.closed(CloseReason::Limit);
            // Best effort, plain only: the socket is fresh, so the
            // response fits (a TLS client just sees the close).
            if tls == Listener::Plain {
                let _ = (&sock).write(&http::response(
                    Status::ServiceUnavailable,
                    "connection limit reached\n",
                ));
            }
            return;
        }
        let _ = sock.set_nodelay(true);
        let sndbuf = self.ctx.live.config.socket_send_buffer;
        if sndbuf > 0 {
            let _ = socket2::SockRef::from(&sock).set_send_buffer_size(sndbuf);
        }
        let target = self.acceptor.next_target();
        if target == self.ctx.id {
            return self.adopt(sock, tls);
        }
        // That shard is swamped or gone: serve it here.
        if let Err(ShardMsg::Adopt(sock, tls)) =
            self.acceptor.peers[target].try_send(ShardMsg::Adopt(sock, tls))
        {
            self.adopt(sock, tls);
        }
    }

    /// Starts serving a connection on this shard.
    pub(super) fn adopt(&mut self, mut sock: TcpStream, tls: Listener) {
        let token = self.conns.vacant_key();
        let (id, shared) = (self.ctx.id, &self.ctx.shared);
        let give_up = |what: &str, e: &dyn std::fmt::Display| {
            log::warn!("shard {id}: {what}: {e}");
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            shared.metrics.shards[id].closed(CloseReason::Io);
        };
        // Only while some address is remembered for flooding is the
        // peer's address worth a system call.
        let now = Instant::now();
        let flooder = shared.floods.any()
            && sock
                .peer_addr()
                .is_ok_and(|a| shared.floods.penalized(a.ip(), now));
        let conn_id = self.conns.next_id;
        let Some(key) = member_key(token, conn_id) else {
            return give_up("cannot serve more connections", &token);
        };
        if self.delivery.index.has_leaves(key) {
            // The slot's earlier connection with this key still has
            // memberships being withdrawn (rare: see `member_key`).
            self.delivery.index.finish_leaves(&self.ctx.table, key);
        }
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return give_up("cannot register connection", &e);
        }
        let io = match (tls, &self.ctx.live.tls) {
            (Listener::Tls, Some(cfg)) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(session) => Transport::Tls(sock, Box::new(session)),
                Err(e) => {
                    let _ = self.poll.registry().deregister(&mut sock);
                    return give_up("cannot start a TLS session", &e);
                }
            },
            _ => Transport::Plain(sock),
        };
        self.conns.next_id += 1;
        let mut conn = Conn::new(io, conn_id, key);
        if flooder {
            conn.commands = crate::net::allowance::CommandBucket::penalized(now);
        }
        self.conns.insert(conn);
        self.timers.handshakes.push(Instant::now(), token, conn_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_limit_warnings_come_at_most_once_per_period_with_the_count() {
        let mut spare = SpareFd::new();
        let t0 = Instant::now();
        assert_eq!(spare.note_refused(t0), Some(1), "the first one is told");
        for i in 1..=5 {
            assert_eq!(spare.note_refused(t0 + Duration::from_secs(i)), None);
        }
        let later = t0 + FD_LOG_PERIOD;
        assert_eq!(
            spare.note_refused(later),
            Some(6),
            "the next tells all since"
        );
        assert_eq!(spare.note_refused(later), None);
    }

    #[test]
    fn the_spare_descriptor_is_held_from_the_start() {
        assert!(SpareFd::new().file.is_some());
    }
}
