//! Accepting connections and dealing them out: the accepting shard holds the
//! listeners and hands each new socket to the shards round-robin.

use super::{Shard, ShardMsg};
use crate::metrics::CloseReason;
use crate::net::conn::Conn;
use crate::net::http;
use crate::net::transport::Transport;
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Connections accepted per iteration before the shard turns to others.
const ACCEPT_BUDGET: usize = 256;

impl Shard {
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
                Err(e) => {
                    // EMFILE and friends: the pending connection stays queued; a
                    // new event comes with the next arrival.
                    log::warn!("accept failed: {e}");
                    return true;
                }
            }
        }
        false
    }

    /// Counts a new connection against the limit and gives it to the next shard.
    fn deal(&mut self, sock: TcpStream, tls: bool) {
        let m = self.metrics();
        m.accepted.fetch_add(1, Ordering::Relaxed);
        m.open.fetch_add(1, Ordering::Relaxed);
        let open = self.shared.connections.fetch_add(1, Ordering::Relaxed);
        if open >= self.shared.config.max_connections {
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            m.closed(CloseReason::Limit);
            // Best effort, plain only: the socket is fresh, so the
            // response fits (a TLS client just sees the close).
            if !tls {
                let _ = (&sock).write(&http::response(
                    503,
                    "Service Unavailable",
                    "connection limit reached\n",
                ));
            }
            return;
        }
        let _ = sock.set_nodelay(true);
        let sndbuf = self.shared.config.socket_send_buffer;
        if sndbuf > 0 {
            let _ = socket2::SockRef::from(&sock).set_send_buffer_size(sndbuf);
        }
        let target = self.next_peer % self.peers.len();
        self.next_peer = self.next_peer.wrapping_add(1);
        if target == self.id {
            return self.adopt(sock, tls);
        }
        let link = &self.peers[target];
        match link.tx.try_send(ShardMsg::Adopt(sock, tls)) {
            Ok(()) => {
                let _ = link.waker.wake();
            }
            Err(e) => {
                // That shard is swamped or gone: serve it here.
                if let ShardMsg::Adopt(sock, tls) = e.into_inner() {
                    self.adopt(sock, tls);
                }
            }
        }
    }

    /// Starts serving a connection on this shard.
    pub(super) fn adopt(&mut self, mut sock: TcpStream, tls: bool) {
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        let (id, shared) = (self.id, &self.shared);
        let give_up = |what: &str, e: &dyn std::fmt::Display| {
            log::warn!("shard {id}: {what}: {e}");
            shared.connections.fetch_sub(1, Ordering::Relaxed);
            shared.metrics.shards[id].closed(CloseReason::Io);
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            return give_up("cannot register connection", &e);
        }
        let io = match (tls, &shared.tls) {
            (true, Some(cfg)) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(session) => Transport::Tls(sock, Box::new(session)),
                Err(e) => {
                    let _ = self.poll.registry().deregister(&mut sock);
                    return give_up("cannot start a TLS session", &e);
                }
            },
            _ => Transport::Plain(sock),
        };
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        entry.insert(Conn::new(io, id));
        self.timers.handshakes.push(Instant::now(), token, id);
    }
}
