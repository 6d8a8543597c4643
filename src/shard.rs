//! A shard: one thread, one `mio::Poll`, its own connections.
//!
//! Each loop iteration: wait for events (or a router wake-up), accept, read
//! and answer client commands, take the router's batches and append the shared
//! frames to every subscriber's queue, then write every connection that has
//! something queued once. Nothing in the loop blocks: sockets are non-blocking,
//! reads and accepts have a per-iteration budget, and the only locks taken are
//! the topic table's, briefly, when a client subscribes.

use crate::conn::{Conn, HandshakeStep, Incoming, Phase};
use crate::http::{self, HttpContext, Role};
use crate::index::{LocalIndex, NewlyMatched};
use crate::ingest::Publisher;
use crate::metrics::{CloseReason, ShardMetrics};
use crate::outbound::{Flushed, Tally};
use crate::router::Encoded;
use crate::server::Shared;
use crate::timer::DeadlineQueue;
use crate::topics::{Selector, TopicTable};
use crate::transport::Transport;
use crate::update::now_ns;
use crate::wire::command::{self, Command, CommandError, Encoding, Op};
use crate::wire::event::{self, ErrorCode, PriceKind};
use crate::wire::frame::FrameBuf;
use crate::wire::publish::{self, PublisherEvent};
use crate::wire::Format;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

const LISTENER: Token = Token(usize::MAX - 1);
const TLS_LISTENER: Token = Token(usize::MAX - 3);
/// The token of every shard's `mio::Waker`.
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Messages a client may send in one go before the shard turns to others.
const READ_BUDGET: usize = 64;
/// Connections accepted per iteration before the shard turns to others.
const ACCEPT_BUDGET: usize = 256;
/// Router messages taken per iteration before flushing.
const CHANNEL_BUDGET: usize = 256;
/// Most topics listed in one `topics` reply.
const TOPICS_LIMIT: usize = 10_000;

/// What other threads send a shard.
pub(crate) enum ShardMsg {
    /// Sequenced, encoded updates for topics this shard has subscribers for.
    Deliver(Vec<Arc<Encoded>>),
    /// A connection accepted by the accepting shard, for this shard to serve.
    /// (`true`: it came in on the TLS listener.)
    Adopt(TcpStream, bool),
    /// Close every connection with 1001 and exit.
    Shutdown,
}

/// How to reach a shard from another thread.
#[derive(Clone)]
pub(crate) struct ShardLink {
    pub tx: Sender<ShardMsg>,
    pub waker: Arc<Waker>,
}

pub(crate) struct Shard {
    id: usize,
    poll: Poll,
    /// Only the accepting shard holds listeners: (token, listener, is TLS).
    listeners: Vec<(Token, TcpListener, bool)>,
    /// Every shard, self included, for handing out accepted connections.
    peers: Vec<ShardLink>,
    next_peer: usize,
    rx: Receiver<ShardMsg>,
    conns: Slab<Conn>,
    index: LocalIndex,
    table: Arc<TopicTable>,
    shared: Arc<Shared>,
    ws_config: WebSocketConfig,
    fb: FrameBuf,
    dirty: Vec<usize>,
    reread: Vec<usize>,
    accept_pending: bool,
    channel_pending: bool,
    next_conn_id: u64,
    handshakes: DeadlineQueue,
    closings: DeadlineQueue,
    shutdown_deadline: Option<Instant>,
    /// Feeds network publishers' updates into the ingest channel.
    ingest: Publisher,
    /// Publisher connections waiting for room in the ingest queue.
    blocked: Vec<usize>,
    /// When the heartbeat sweep runs next.
    next_sweep: Instant,
}

impl Shard {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        poll: Poll,
        listeners: Vec<(TcpListener, bool)>,
        peers: Vec<ShardLink>,
        rx: Receiver<ShardMsg>,
        table: Arc<TopicTable>,
        shared: Arc<Shared>,
        ingest: Publisher,
    ) -> io::Result<Self> {
        let cfg = &shared.config;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(cfg.read_buffer_size)
            .write_buffer_size(0)
            .max_message_size(Some(cfg.max_message_size))
            .max_frame_size(Some(cfg.max_message_size))
            .accept_unmasked_frames(false);
        let mut registered = Vec::new();
        for (mut l, tls) in listeners {
            let token = if tls { TLS_LISTENER } else { LISTENER };
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
            index: LocalIndex::new(id),
            table,
            handshakes: DeadlineQueue::new(cfg.handshake_timeout),
            closings: DeadlineQueue::new(cfg.close_timeout),
            shared,
            ws_config,
            fb: FrameBuf::default(),
            dirty: Vec::new(),
            reread: Vec::new(),
            accept_pending: false,
            channel_pending: false,
            next_conn_id: 0,
            shutdown_deadline: None,
            ingest,
            blocked: Vec::new(),
            next_sweep: Instant::now(),
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
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | TLS_LISTENER => self.accept_pending = true,
                    WAKER => self.channel_pending = true,
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
            if self.accept_pending {
                self.accept();
            }
            for t in std::mem::take(&mut self.reread) {
                self.read_conn(t);
            }
            if self.channel_pending {
                self.drain_channel();
            }
            if !self.blocked.is_empty() {
                self.retry_blocked_publishers();
            }
            self.flush_dirty();
            self.expire(Instant::now());
            if let Some(deadline) = self.shutdown_deadline {
                // The accepting shard keeps answering (503 on /healthz) until
                // every shard has drained, not just itself.
                let drained = if !self.listeners.is_empty() {
                    self.shared.connections.load(Ordering::Relaxed) == 0
                } else {
                    self.conns.is_empty()
                };
                if drained || Instant::now() >= deadline {
                    break;
                }
            }
        }
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for t in tokens {
            self.remove(t, CloseReason::Shutdown);
        }
    }

    fn poll_timeout(&self) -> Duration {
        if self.accept_pending
            || self.channel_pending
            || !self.reread.is_empty()
            || !self.dirty.is_empty()
        {
            // Dirty here means the timers queued something (a ping, a
            // close): write it now, not at the next event.
            return Duration::ZERO;
        }
        if !self.blocked.is_empty() {
            // Publishers wait for the router to make room; look again soon.
            return Duration::from_millis(1);
        }
        let now = Instant::now();
        let next = [
            self.handshakes.next(),
            self.closings.next(),
            self.shutdown_deadline,
            Some(self.next_sweep),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(at) => at
                .saturating_duration_since(now)
                .min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        }
    }

    fn metrics(&self) -> &ShardMetrics {
        &self.shared.metrics.shards[self.id]
    }

    fn http_context(shared: &Shared) -> HttpContext<'_> {
        HttpContext {
            max_head: shared.config.max_handshake_bytes,
            shutting_down: shared.shutting_down.load(Ordering::Relaxed),
            subscriber_tokens: &shared.config.subscriber_tokens,
            publisher_tokens: &shared.config.publisher_tokens,
            allowed_origins: &shared.config.allowed_origins,
        }
    }

    fn accept(&mut self) {
        self.accept_pending = false;
        for which in 0..self.listeners.len() {
            if !self.accept_from(which) {
                self.accept_pending = true;
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
                Ok((sock, _addr)) => {
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
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let target = self.next_peer % self.peers.len();
                    self.next_peer = self.next_peer.wrapping_add(1);
                    if target == self.id {
                        self.adopt(sock, tls);
                    } else {
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
                }
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

    fn adopt(&mut self, mut sock: TcpStream, tls: bool) {
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("shard {}: cannot register connection: {e}", self.id);
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
            self.metrics().closed(CloseReason::Io);
            return;
        }
        let io = match (tls, &self.shared.tls) {
            (true, Some(cfg)) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(session) => Transport::Tls(sock, Box::new(session)),
                Err(e) => {
                    log::warn!("shard {}: cannot start a TLS session: {e}", self.id);
                    let _ = self.poll.registry().deregister(&mut sock);
                    self.shared.connections.fetch_sub(1, Ordering::Relaxed);
                    self.metrics().closed(CloseReason::Io);
                    return;
                }
            },
            _ => Transport::Plain(sock),
        };
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        entry.insert(Conn::new(io, id));
        self.handshakes.push(Instant::now(), token, id);
    }

    fn mark_dirty(&mut self, token: usize) {
        if let Some(c) = self.conns.get_mut(token) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    fn read_conn(&mut self, token: usize) {
        self.read_conn_inner(token);
        // Reading may have queued bytes (tungstenite's pongs and close
        // replies, TLS handshake messages and alerts): flush them this turn.
        if self
            .conns
            .get(token)
            .is_some_and(|c| !c.out.is_empty() || c.io.wants_write())
        {
            self.mark_dirty(token);
        }
    }

    fn read_conn_inner(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        match conn.phase {
            Phase::Handshake { .. } => {
                match conn.read_handshake(Self::http_context(&self.shared), self.ws_config) {
                    HandshakeStep::More => {}
                    HandshakeStep::Upgraded => {
                        self.mark_dirty(token);
                        self.read_messages(token);
                    }
                    HandshakeStep::Responded => {
                        self.start_closing(token);
                    }
                    HandshakeStep::Metrics => {
                        let body = self.shared.metrics.render(
                            self.table.len(),
                            self.shared.shutting_down.load(Ordering::Relaxed),
                        );
                        if let Some(conn) = self.conns.get_mut(token) {
                            conn.out.push(&http::metrics_response(&body));
                        }
                        self.start_closing(token);
                    }
                    HandshakeStep::Gone => self.remove(token, CloseReason::Client),
                }
            }
            Phase::Open { .. } => self.read_messages(token),
            Phase::Closing => {
                // Discard input; once the peer has closed we are done (even if
                // our last bytes could not all be written: nobody reads them).
                if conn.drain() {
                    self.remove(token, CloseReason::Client);
                }
            }
        }
    }

    fn read_messages(&mut self, token: usize) {
        for _ in 0..READ_BUDGET {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if conn
                .publisher
                .as_ref()
                .is_some_and(|p| !p.pending.is_empty())
            {
                // Back-pressure: a publisher whose updates wait for room in the
                // ingest queue is not read until they are in.
                self.send_ack(token);
                return;
            }
            match conn.read_message() {
                Incoming::Message(m) => {
                    self.shared.metrics.shards[self.id]
                        .received
                        .fetch_add(1, Ordering::Relaxed);
                    self.on_message(token, m)
                }
                Incoming::Idle => {
                    if matches!(
                        self.conns.get(token).map(|c| &c.phase),
                        Some(Phase::Closing)
                    ) {
                        // The peer sent a close; our reply is queued.
                        self.start_closing(token);
                    }
                    self.send_ack(token);
                    return;
                }
                Incoming::Gone => {
                    self.remove(token, CloseReason::Client);
                    return;
                }
                Incoming::Fail(code, reason) => {
                    log::debug!("shard {}: closing connection: {code:?} {reason}", self.id);
                    conn.close(code, &reason);
                    self.start_closing(token);
                    return;
                }
            }
            if !matches!(
                self.conns.get(token).map(|c| &c.phase),
                Some(Phase::Open { .. })
            ) {
                self.start_closing(token);
                return;
            }
        }
        self.reread.push(token);
    }

    /// A connection entered Closing: its subscriptions end now and a deadline
    /// bounds how long it may linger.
    fn start_closing(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let fmt = conn.format;
        let subs = conn.subs.len() as i64;
        self.index
            .remove_all(&self.table, token, fmt, &mut conn.subs);
        self.shared.metrics.shards[self.id]
            .subscriptions
            .fetch_sub(subs, Ordering::Relaxed);
        let id = conn.id;
        self.closings.push(Instant::now(), token, id);
        self.mark_dirty(token);
    }

    fn on_message(&mut self, token: usize, msg: Message) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if conn.role == Role::Publisher {
            self.on_publish(token, msg);
            self.mark_dirty(token);
            return;
        }
        if self.shared.config.echo {
            // Transport test mode: send every message back unchanged.
            let (op, data): (u8, &[u8]) = match &msg {
                Message::Text(t) => (crate::wire::frame::OP_TEXT, t.as_bytes()),
                Message::Binary(b) => (crate::wire::frame::OP_BINARY, b),
                _ => return,
            };
            let buf = self.fb.payload();
            buf.extend_from_slice(data);
            conn.out.push(self.fb.finish(op));
            self.mark_dirty(token);
            return;
        }
        let parsed = match msg {
            Message::Text(text) => command::parse(text.as_bytes(), Encoding::Json),
            Message::Binary(bytes) if conn.format == Format::MsgPack => {
                command::parse(&bytes, Encoding::MsgPack)
            }
            Message::Binary(_) => {
                conn.close(
                    CloseCode::Unsupported,
                    "binary frames need the tickcast.msgpack subprotocol; send JSON text",
                );
                return;
            }
            // tungstenite answers pings itself; pongs and raw frames carry nothing for us.
            _ => return,
        };
        match parsed {
            Ok(cmd) => self.on_command(token, cmd),
            Err(e) => self.send_error(token, e),
        }
        self.mark_dirty(token);
    }

    /// A network publisher's frame: decode, check every update, queue them.
    /// A bad frame is refused whole with an `error` event; nothing of it
    /// reaches the topic table.
    fn on_publish(&mut self, token: usize, msg: Message) {
        let max_len = self.shared.config.max_topic_len;
        let decoded = match msg {
            Message::Binary(bytes) => publish::decode(&bytes).map_err(|m| ("bad_frame", m, 0)),
            Message::Text(_) => Err((
                "bad_frame",
                "publish frames are MessagePack binary frames".to_string(),
                0,
            )),
            _ => return,
        };
        let checked = decoded.and_then(|updates| {
            for (i, u) in updates.iter().enumerate() {
                if let Err(e) = u.validate(max_len) {
                    return Err((
                        "bad_update",
                        format!(
                            "update {i} of the frame: {e}; nothing in this frame was published"
                        ),
                        updates.len() as u64,
                    ));
                }
            }
            Ok(updates)
        });
        match checked {
            Ok(updates) => {
                if let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) {
                    p.pending.extend(updates);
                }
                self.push_pending(token);
            }
            Err((code, message, refused)) => {
                let ev = PublisherEvent::Error {
                    code: code.into(),
                    message,
                    refused,
                };
                self.send_publisher_event(token, &ev);
            }
        }
    }

    /// Moves a publisher's waiting updates into the ingest queue until it is
    /// full. Returns true when none are left.
    fn push_pending(&mut self, token: usize) -> bool {
        let Some(conn) = self.conns.get_mut(token) else {
            return true;
        };
        let Some(p) = conn.publisher.as_mut() else {
            return true;
        };
        while let Some(u) = p.pending.pop_front() {
            match self.ingest.try_publish(u.clone()) {
                Ok(()) => p.accepted += 1,
                Err(crate::Error::Full) => {
                    p.pending.push_front(u);
                    if !self.blocked.contains(&token) {
                        self.blocked.push(token);
                    }
                    return false;
                }
                Err(_) => {
                    p.pending.clear();
                    conn.close(CloseCode::Away, "server shutting down");
                    self.start_closing(token);
                    return true;
                }
            }
        }
        true
    }

    fn retry_blocked_publishers(&mut self) {
        for token in std::mem::take(&mut self.blocked) {
            if self.push_pending(token) {
                self.send_ack(token);
                // Resume reading what the publisher sent meanwhile.
                self.read_conn(token);
            }
        }
    }

    /// Acknowledges to a publisher how many of its updates are in the ingest
    /// queue, if that changed.
    fn send_ack(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let Some(p) = conn.publisher.as_mut() else {
            return;
        };
        if p.acked == p.accepted {
            return;
        }
        p.acked = p.accepted;
        let ev = PublisherEvent::Ack { count: p.accepted };
        self.send_publisher_event(token, &ev);
    }

    fn send_publisher_event(&mut self, token: usize, ev: &PublisherEvent) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let payload = ev.to_msgpack();
        let buf = self.fb.payload();
        buf.extend_from_slice(&payload);
        conn.out.push(self.fb.finish(crate::wire::frame::OP_BINARY));
        self.mark_dirty(token);
    }

    fn send_error(&mut self, token: usize, e: CommandError) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let f = event::encode_error(&mut self.fb, conn.format, e.id.as_ref(), e.code, &e.message);
        conn.out.push(f);
    }

    fn on_command(&mut self, token: usize, cmd: Command) {
        let before = self.conns.get(token).map_or(0, |c| c.subs.len() as i64);
        self.run_command(token, cmd);
        let after = self.conns.get(token).map_or(0, |c| c.subs.len() as i64);
        self.shared.metrics.shards[self.id]
            .subscriptions
            .fetch_add(after - before, Ordering::Relaxed);
    }

    fn run_command(&mut self, token: usize, cmd: Command) {
        let max_len = self.shared.config.max_topic_len;
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let fmt = conn.format;
        let id = cmd.id;
        match cmd.op {
            Op::Subscribe(list) => {
                let sels = match parse_selectors(&list, max_len, &id) {
                    Ok(s) => s,
                    Err(e) => return self.send_error(token, e),
                };
                let new = sels.iter().filter(|s| !conn.subs.contains(s)).count();
                let max = self.shared.config.max_subscriptions;
                if conn.subs.len() + new > max {
                    let message = format!(
                        "subscribing to {new} more would make {} subscriptions; the limit per connection is {max}",
                        conn.subs.len() + new
                    );
                    return self.send_error(
                        token,
                        CommandError {
                            id,
                            code: ErrorCode::TooManySubscriptions,
                            message,
                        },
                    );
                }
                let names: Vec<String> = sels.iter().map(Selector::text).collect();
                let ack =
                    event::encode_topics(&mut self.fb, fmt, "subscribed", id.as_ref(), &names);
                conn.out.push(ack);
                let mut fresh: Vec<NewlyMatched> = Vec::new();
                for sel in sels {
                    match sel {
                        Selector::Exact(t) => fresh.extend(self.index.add_exact(
                            &self.table,
                            token,
                            fmt,
                            &mut conn.subs,
                            t,
                        )),
                        Selector::Prefix(p) => fresh.extend(self.index.add_prefix(
                            &self.table,
                            token,
                            fmt,
                            &mut conn.subs,
                            p,
                        )),
                    }
                }
                for nm in fresh {
                    let s = nm.snapshot;
                    let f = event::encode_price(
                        &mut self.fb,
                        fmt,
                        PriceKind::Snapshot,
                        &nm.topic,
                        s.seq,
                        s.ts,
                        &s.prices,
                    );
                    conn.out.push(f);
                }
            }
            Op::Unsubscribe(list) => {
                let sels = match parse_selectors(&list, max_len, &id) {
                    Ok(s) => s,
                    Err(e) => return self.send_error(token, e),
                };
                for sel in &sels {
                    match sel {
                        Selector::Exact(t) => {
                            self.index
                                .remove_exact(&self.table, token, fmt, &mut conn.subs, t)
                        }
                        Selector::Prefix(p) => {
                            self.index
                                .remove_prefix(&self.table, token, fmt, &mut conn.subs, p)
                        }
                    }
                }
                let names: Vec<String> = sels.iter().map(Selector::text).collect();
                let ack =
                    event::encode_topics(&mut self.fb, fmt, "unsubscribed", id.as_ref(), &names);
                conn.out.push(ack);
            }
            Op::Topics { prefix } => {
                let names = self.table.list(&prefix, TOPICS_LIMIT);
                let names: Vec<&str> = names.iter().map(|n| &**n).collect();
                let f = event::encode_topics(&mut self.fb, fmt, "topics", id.as_ref(), &names);
                conn.out.push(f);
            }
            Op::Ping => {
                let f = event::encode_pong(&mut self.fb, fmt, id.as_ref(), now_ns());
                conn.out.push(f);
            }
        }
    }

    fn drain_channel(&mut self) {
        self.channel_pending = false;
        for _ in 0..CHANNEL_BUDGET {
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    for enc in &batch {
                        self.deliver(enc);
                    }
                }
                Ok(ShardMsg::Adopt(sock, tls)) => self.adopt(sock, tls),
                Ok(ShardMsg::Shutdown) => self.begin_shutdown(),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
        self.channel_pending = true;
    }

    /// Appends one update's shared frame to the queue of every local subscriber.
    ///
    /// Hot path: no serialization and no allocation per subscriber (a copy into
    /// each connection's reused queue), no lock, no syscall; the write happens
    /// once per connection per iteration in `flush_dirty`. A subscriber whose
    /// queue is past the conflation mark gets the update parked instead: only
    /// the latest per topic is kept until its queue drains.
    fn deliver(&mut self, enc: &Arc<Encoded>) {
        let high_water = self.shared.config.conflate_bytes;
        let Some(lt) = self.index.members_for(&enc.topic) else {
            // Nobody here wants it any more (a wildcard left between the
            // topic's creation and its first delivery): withdraw the interest
            // it inherited, or the router would keep sending it.
            for fmt in Format::ALL {
                if enc.frames[fmt.index()].is_some() {
                    self.table.leave_exact(&enc.topic, self.id, fmt);
                }
            }
            return;
        };
        let mut frames = 0;
        let mut conflated = 0;
        for m in &lt.members {
            if enc.seq <= m.skip_through {
                continue;
            }
            let Some(frame) = enc.frames[m.fmt.index()].as_deref() else {
                continue;
            };
            let Some(conn) = self.conns.get_mut(m.token()) else {
                continue;
            };
            if conn.conflating || conn.out.pending() >= high_water {
                // Slow consumer: keep only the newest update of each topic.
                conn.conflating = true;
                let parked = conn.conflated.get_or_insert_with(Default::default);
                if parked.insert(enc.topic.clone(), enc.clone()).is_some() {
                    conflated += 1;
                }
                continue;
            }
            if conn.out.is_empty() {
                conn.oldest = Some(enc.ingested_at);
            }
            conn.out.push(frame);
            frames += 1;
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(m.token());
            }
        }
        let metrics = &self.shared.metrics.shards[self.id];
        metrics.frames.fetch_add(frames, Ordering::Relaxed);
        if conflated > 0 {
            metrics.conflated.fetch_add(conflated, Ordering::Relaxed);
        }
    }

    /// Writes every connection with queued bytes, once each. A conflating
    /// connection whose queue has drained below half the conflation mark gets
    /// its parked updates (the newest of each topic) and leaves conflation.
    /// One that stays over the hard limit for `slow_consumer_timeout` is closed
    /// with 1008.
    fn flush_dirty(&mut self) {
        let cfg = &self.shared.config;
        let (high_water, hard, patience) = (
            cfg.conflate_bytes,
            cfg.max_outbound_bytes,
            cfg.slow_consumer_timeout,
        );
        let mut tally = Tally::default();
        let now = Instant::now();
        let metrics = &self.shared.metrics.shards[self.id];
        let mut slow = Vec::new();
        let mut gone = Vec::new();
        for token in std::mem::take(&mut self.dirty) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut res = conn.flush(&mut tally);
            if conn.conflating && res.is_ok() && conn.out.pending() < high_water / 2 {
                if let Some(parked) = conn.conflated.take() {
                    for (_, enc) in *parked {
                        if let Some(f) = enc.frames[conn.format.index()].as_deref() {
                            if conn.out.is_empty() {
                                conn.oldest = Some(enc.ingested_at);
                            }
                            conn.out.push(f);
                        }
                    }
                }
                conn.conflating = false;
                res = conn.flush(&mut tally);
            }
            let pending = conn.out.pending();
            let delta = pending as i64 - conn.reported_pending as i64;
            if delta != 0 {
                metrics.queued_bytes.fetch_add(delta, Ordering::Relaxed);
                conn.reported_pending = pending;
            }
            match res {
                Ok(Flushed::All) => {
                    conn.over_limit_since = None;
                    if let Some(at) = conn.oldest.take() {
                        metrics.observe_latency(now.saturating_duration_since(at));
                    }
                    if conn.write_done() && conn.drain() {
                        gone.push((token, CloseReason::Client));
                    }
                }
                Ok(Flushed::Blocked) => {
                    if pending <= hard {
                        conn.over_limit_since = None;
                    } else if pending > 2 * hard {
                        // Far past any reasonable backlog: cut it off now.
                        gone.push((token, CloseReason::SlowConsumer));
                    } else {
                        let since = *conn.over_limit_since.get_or_insert(now);
                        if now.duration_since(since) >= patience && conn.is_open() {
                            slow.push(token);
                        }
                    }
                }
                Err(_) => gone.push((token, CloseReason::Io)),
            }
        }
        metrics.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
        metrics.writes.fetch_add(tally.writes, Ordering::Relaxed);
        for token in slow {
            let conn = &mut self.conns[token];
            log::info!(
                "shard {}: closing slow consumer with {} bytes queued",
                self.id,
                conn.out.pending()
            );
            conn.close_reason = Some(CloseReason::SlowConsumer);
            conn.close(
                CloseCode::Policy,
                "slow consumer: outbound queue over its limit for too long",
            );
            self.start_closing(token);
        }
        for (token, reason) in gone {
            self.remove(token, reason);
        }
    }

    fn expire(&mut self, now: Instant) {
        if now >= self.next_sweep {
            self.heartbeat(now);
        }
        while let Some((token, id)) = self.handshakes.pop_expired(now) {
            if let Some(conn) = self.conns.get_mut(token) {
                if conn.id == id && matches!(conn.phase, Phase::Handshake { .. }) {
                    conn.out.push(&http::response(
                        408,
                        "Request Timeout",
                        "handshake timed out\n",
                    ));
                    conn.phase = Phase::Closing;
                    conn.close_reason = Some(CloseReason::HandshakeTimeout);
                    self.start_closing(token);
                }
            }
        }
        while let Some((token, id)) = self.closings.pop_expired(now) {
            if self.conns.get(token).is_some_and(|c| c.id == id) {
                self.remove(token, CloseReason::Client);
            }
        }
    }

    /// Heartbeats, swept over the shard's connections (at most once per
    /// second): ping a connection silent for `ping_interval`, close one silent
    /// for `idle_timeout`. One sweep per shard instead of a timer per
    /// connection; a deadline may be late by the sweep period.
    fn heartbeat(&mut self, now: Instant) {
        let cfg = &self.shared.config;
        let (ping, idle) = (cfg.ping_interval, cfg.idle_timeout);
        self.next_sweep = now + (ping / 2).min(Duration::from_secs(1));
        let mut to_close = Vec::new();
        let mut to_ping = Vec::new();
        let mut over_limit = Vec::new();
        for (token, conn) in self.conns.iter() {
            if !matches!(conn.phase, Phase::Open { .. }) {
                continue;
            }
            if conn.over_limit_since.is_some() {
                // A stalled reader gets no writable events and, conflating,
                // no new frames: only this sweep makes flush_dirty look at
                // its backlog again and apply the slow-consumer timeout.
                over_limit.push(token);
            }
            let silent = now.saturating_duration_since(conn.last_rx);
            if silent >= idle {
                to_close.push(token);
            } else if silent >= ping && !conn.ping_out {
                to_ping.push(token);
            }
        }
        for token in to_ping {
            self.conns[token].ping();
            self.mark_dirty(token);
        }
        for token in over_limit {
            self.mark_dirty(token);
        }
        for token in to_close {
            let conn = &mut self.conns[token];
            conn.close_reason = Some(CloseReason::IdleTimeout);
            conn.close(CloseCode::Policy, "idle timeout: no data or pong received");
            self.start_closing(token);
        }
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        // The listener stays open while connections drain, so load balancers
        // polling /healthz see 503 (and new upgrades are refused with 503).
        self.shutdown_deadline = Some(Instant::now() + self.shared.config.close_timeout);
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for t in tokens {
            let conn = &mut self.conns[t];
            match conn.phase {
                Phase::Open { .. } => {
                    conn.close(CloseCode::Away, "server shutting down");
                    self.start_closing(t);
                }
                Phase::Handshake { .. } => self.remove(t, CloseReason::Shutdown),
                Phase::Closing => {}
            }
        }
    }

    fn remove(&mut self, token: usize, reason: CloseReason) {
        if !self.conns.contains(token) {
            return;
        }
        let mut conn = self.conns.remove(token);
        let m = &self.shared.metrics.shards[self.id];
        m.closed(conn.close_reason.unwrap_or(reason));
        m.subscriptions
            .fetch_sub(conn.subs.len() as i64, Ordering::Relaxed);
        m.queued_bytes
            .fetch_sub(conn.reported_pending as i64, Ordering::Relaxed);
        self.index
            .remove_all(&self.table, token, conn.format, &mut conn.subs);
        let _ = self.poll.registry().deregister(conn.io.socket());
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Parses a command's topics and patterns (duplicates dropped); the first bad
/// one refuses the whole command with `bad_topic`.
fn parse_selectors(
    list: &[String],
    max_len: usize,
    id: &Option<serde_json::Value>,
) -> Result<Vec<Selector>, CommandError> {
    let mut out: Vec<Selector> = Vec::with_capacity(list.len());
    for s in list {
        let sel = Selector::parse(s, max_len).map_err(|message| CommandError {
            id: id.clone(),
            code: ErrorCode::BadTopic,
            message,
        })?;
        if !out.contains(&sel) {
            out.push(sel);
        }
    }
    Ok(out)
}
