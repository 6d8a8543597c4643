//! Accepting connections and dealing them out: the accepting shard holds the
//! listeners and hands each new socket to the shards round-robin.

use super::{Shard, ShardMsg};
use crate::metrics::CloseReason;
use crate::net::conn::Conn;
use crate::net::http;
use crate::net::http::status::Status;
use crate::net::index::member_key;
use crate::net::mailbox::Listener;
use crate::net::transport::Transport;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Connections accepted per iteration before the shard turns to others.
const ACCEPT_BUDGET: usize = 256;

/// Sockets beyond `max_connections` accepted for plain HTTP requests, so
/// `/healthz` and `/metrics` answer while subscribers are refused.
pub(super) const HTTP_RESERVE: usize = 16;

/// Out of descriptors without a spare: how soon to try accepting again.
const FD_RETRY: Duration = Duration::from_millis(50);

/// At most one descriptor-limit warning per this period.
const FD_LOG_PERIOD: Duration = Duration::from_secs(10);

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
        for which in 0..self.listeners.len() {
            if !self.accept_from(which) {
                self.pending.accept = true;
            }
        }
    }

    /// Accepts from one listener until it would block (true) or the budget
    /// is spent (false: come back next iteration).
    fn accept_from(&mut self, which: usize) -> bool {
        for _ in 0..ACCEPT_BUDGET {
            let (_, listener, tls) = &self.listeners[which];
            let tls = *tls;
            match listener.accept() {
                Ok((sock, _addr)) => self.deal(sock, tls),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if !self.refuse_at_fd_limit(which) {
                        // No spare: the listener is edge-triggered, so no
                        // event would come for the connections already
                        // waiting; look again on a timer.
                        self.timers.accept_retry = Some(Instant::now() + FD_RETRY);
                        return true;
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
    /// with it, answers 503 and closes it, then takes the spare back. False
    /// when there is no spare. Logs at most once per `FD_LOG_PERIOD`.
    fn refuse_at_fd_limit(&mut self, which: usize) -> bool {
        let Some(spare) = self.spare.file.take() else {
            return false;
        };
        drop(spare);
        let (_, listener, tls) = &self.listeners[which];
        if let Ok((sock, _)) = listener.accept() {
            if *tls == Listener::Plain {
                let _ = (&sock).write(&http::response(
                    Status::ServiceUnavailable,
                    "server out of file descriptors\n",
                ));
            }
            let m = self.metrics();
            m.fd_refused.fetch_add(1, Ordering::Relaxed);
        }
        self.spare.file = std::fs::File::open("/dev/null").ok();
        let now = Instant::now();
        self.spare.refused += 1;
        if self
            .spare
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= FD_LOG_PERIOD)
        {
            log::warn!(
                "shard {}: out of file descriptors: {} connection(s) answered 503 \
                 (raise the open-files limit or lower max_connections)",
                self.id,
                self.spare.refused
            );
            self.spare.warned_at = Some(now);
            self.spare.refused = 0;
        }
        self.spare.file.is_some()
    }

    /// Counts a new connection against the limit and gives it to the next shard.
    fn deal(&mut self, sock: TcpStream, tls: Listener) {
        let m = self.metrics();
        m.accepted.fetch_add(1, Ordering::Relaxed);
        m.open.fetch_add(1, Ordering::Relaxed);
        let open = self.shared.connections.fetch_add(1, Ordering::Relaxed);
        // A few sockets past the limit are let in for plain HTTP (health
        // checks, metrics); their upgrades are refused (`HttpContext::full`).
        if open >= self.live.config.max_connections + HTTP_RESERVE {
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
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
        let sndbuf = self.live.config.socket_send_buffer;
        if sndbuf > 0 {
            let _ = socket2::SockRef::from(&sock).set_send_buffer_size(sndbuf);
        }
        let target = self.next_peer % self.peers.len();
        self.next_peer = self.next_peer.wrapping_add(1);
        if target == self.id {
            return self.adopt(sock, tls);
        }
        // That shard is swamped or gone: serve it here.
        if let Err(ShardMsg::Adopt(sock, tls)) =
            self.peers[target].try_send(ShardMsg::Adopt(sock, tls))
        {
            self.adopt(sock, tls);
        }
    }

    /// Starts serving a connection on this shard.
    pub(super) fn adopt(&mut self, mut sock: TcpStream, tls: Listener) {
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        let (id, shared) = (self.id, &self.shared);
        let give_up = |what: &str, e: &dyn std::fmt::Display| {
            log::warn!("shard {id}: {what}: {e}");
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            shared.metrics.shards[id].closed(CloseReason::Io);
        };
        let conn_id = self.next_conn_id;
        let Some(key) = member_key(token, conn_id) else {
            return give_up("cannot serve more connections", &token);
        };
        if self.index.has_leaves(key) {
            // The slot's earlier connection with this key still has
            // memberships being withdrawn (rare: see `member_key`).
            self.index.finish_leaves(&self.table, key);
        }
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return give_up("cannot register connection", &e);
        }
        let io = match (tls, &self.live.tls) {
            (Listener::Tls, Some(cfg)) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(session) => Transport::Tls(sock, Box::new(session)),
                Err(e) => {
                    let _ = self.poll.registry().deregister(&mut sock);
                    return give_up("cannot start a TLS session", &e);
                }
            },
            _ => Transport::Plain(sock),
        };
        self.next_conn_id += 1;
        entry.insert(Conn::new(io, conn_id, key));
        self.timers.handshakes.push(Instant::now(), token, conn_id);
    }
}
