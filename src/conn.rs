//! One socket's state machine and outbound queue.
//!
//! A connection moves Handshake → Open → Closing and is then removed:
//! - Handshake: bytes accumulate until the HTTP request head is complete, then
//!   [`crate::http::route`] decides: upgrade, or a plain response and close.
//! - Open: tungstenite parses client frames from the socket; everything we send
//!   goes through [`Outbound`], including what tungstenite writes itself.
//! - Closing: a last response or close frame is queued. Once it is written the
//!   write side is shut down and the socket drained until the peer closes (or a
//!   deadline passes), so the peer reads our close frame instead of a reset.

use crate::http::{self, HttpContext, Role, Route};
use crate::metrics::CloseReason;
use crate::outbound::{Flushed, Outbound, Tally};
use crate::topics::Selector;
use crate::transport::Transport;
use crate::wire::Format;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;
use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role as WsRole, WebSocketConfig, WebSocketContext};
use tungstenite::Message;

/// Where a connection is in its life.
pub(crate) enum Phase {
    /// Waiting for the complete HTTP request head.
    Handshake { head: Vec<u8> },
    /// A WebSocket session.
    Open { ws: Box<WebSocketContext> },
    /// Final bytes queued; the connection ends once they are written and the peer
    /// has closed, or at the close deadline.
    Closing,
}

/// A connection's subscriptions, as the client named them.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// Exact topics, sorted: a small sorted vector costs a third of a hash
    /// set's memory, and idle connections are most of a server's memory.
    pub exact: ExactSet,
    /// Prefix patterns (`FX.` for `FX.*`).
    pub prefixes: Vec<Arc<str>>,
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    pub fn contains(&self, sel: &Selector) -> bool {
        match sel {
            Selector::Exact(t) => self.exact.contains(t),
            Selector::Prefix(p) => self.prefixes.contains(p),
        }
    }

    /// Does any subscription cover `topic`?
    pub fn covers(&self, topic: &str) -> bool {
        self.exact.contains(topic) || self.prefixes.iter().any(|p| topic.starts_with(&**p))
    }
}

/// What a network publisher connection carries beyond a subscriber's.
#[derive(Default)]
pub(crate) struct PublisherState {
    /// Decoded updates waiting for room in the ingest queue. While any wait,
    /// nothing more is read from this connection.
    pub pending: std::collections::VecDeque<crate::update::Update>,
    /// Updates accepted into the ingest queue.
    pub accepted: u64,
    /// The count last acknowledged to the publisher.
    pub acked: u64,
}

/// A sorted set of topic names.
#[derive(Default)]
pub(crate) struct ExactSet(Vec<Arc<str>>);

impl ExactSet {
    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|t| (**t).cmp(topic))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, topic: &str) -> bool {
        self.find(topic).is_ok()
    }

    /// Adds `topic`; false if it was there.
    pub fn insert(&mut self, topic: Arc<str>) -> bool {
        match self.find(&topic) {
            Ok(_) => false,
            Err(i) => {
                // Exact growth: a connection's subscriptions change rarely and
                // idle connections are most of a server's memory.
                self.0.reserve_exact(1);
                self.0.insert(i, topic);
                true
            }
        }
    }

    /// Removes `topic`; false if it was not there.
    pub fn remove(&mut self, topic: &str) -> bool {
        match self.find(topic) {
            Ok(i) => {
                self.0.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter()
    }
}

/// What reading from an open connection produced.
pub(crate) enum Incoming {
    /// A complete message.
    Message(Message),
    /// Nothing more to read now.
    Idle,
    /// The peer is gone or finished the close handshake: remove now.
    Gone,
    /// The peer broke the protocol: close with this code and reason.
    Fail(CloseCode, String),
}

/// One client connection.
pub(crate) struct Conn {
    /// Plain TCP or TLS.
    pub io: Transport,
    /// Unique per shard for the server's lifetime; timers hold it to tell a
    /// reused slab slot from the connection they were set for.
    pub id: u64,
    pub phase: Phase,
    pub out: Outbound,
    pub format: Format,
    pub subs: Subscriptions,
    /// Already listed in the shard's flush list this iteration.
    pub dirty: bool,
    /// Our write side is shut down; only draining remains.
    write_shut: bool,
    /// Ingest time of the oldest update waiting in `out`, for the latency histogram.
    pub oldest: Option<Instant>,
    /// Why the connection is ending, once it is (for the metrics).
    pub close_reason: Option<CloseReason>,
    /// Subscriber (`/ws`) or network publisher (`/publish`).
    pub role: Role,
    /// Network publishers' state, boxed: subscribers, by far the most
    /// connections, should not pay for it.
    pub publisher: Option<Box<PublisherState>>,
    /// When the peer last sent anything (for heartbeats).
    pub last_rx: Instant,
    /// A ping is out and unanswered since `last_rx`.
    pub ping_out: bool,
    /// Past the conflation mark: updates are parked in `conflated` (newest per
    /// topic) instead of queued, until the queue drains.
    pub conflating: bool,
    /// Parked updates, allocated only for a connection that has conflated.
    // Boxed on purpose: `None` then costs 8 bytes per connection, not 48.
    #[allow(clippy::box_collection)]
    pub conflated: Option<Box<std::collections::HashMap<Arc<str>, Arc<crate::router::Encoded>>>>,
    /// Since when the queue has been over the hard limit.
    pub over_limit_since: Option<Instant>,
    /// Queue length last added to the shard's queued-bytes gauge.
    pub reported_pending: usize,
}

/// The tungstenite stream: reads come from the socket, writes go to the queue.
struct Duplex<'a> {
    io: &'a mut Transport,
    out: &'a mut Outbound,
    /// tungstenite's writes are control frames that go ahead of queued data.
    control_first: bool,
}

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.control_first {
            self.out.push_control(buf);
        } else {
            self.out.push(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Outcome of feeding handshake bytes.
pub(crate) enum HandshakeStep {
    /// Still waiting for the end of the head.
    More,
    /// Upgraded; frames may already be buffered, so read at once.
    Upgraded,
    /// A plain HTTP response was queued; the connection is closing.
    Responded,
    /// The peer closed or failed before finishing.
    Gone,
    /// `GET /metrics`: the shard queues the rendered page; the connection is closing.
    Metrics,
}

impl Conn {
    pub fn new(io: Transport, id: u64) -> Self {
        Conn {
            io,
            id,
            phase: Phase::Handshake { head: Vec::new() },
            out: Outbound::default(),
            format: Format::Json,
            subs: Subscriptions::default(),
            dirty: false,
            write_shut: false,
            oldest: None,
            close_reason: None,
            role: Role::Subscriber,
            publisher: None,
            last_rx: Instant::now(),
            ping_out: false,
            conflating: false,
            conflated: None,
            over_limit_since: None,
            reported_pending: 0,
        }
    }

    /// Reads what the socket has and routes the request once the head is complete.
    pub fn read_handshake(
        &mut self,
        ctx: HttpContext<'_>,
        ws_config: WebSocketConfig,
    ) -> HandshakeStep {
        let Phase::Handshake { head } = &mut self.phase else {
            return HandshakeStep::More;
        };
        let mut chunk = [0u8; 2048];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => return HandshakeStep::Gone,
                Ok(n) => {
                    head.extend_from_slice(&chunk[..n]);
                    if head.len() > ctx.max_head + chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return HandshakeStep::Gone,
            }
        }
        match http::route(head, ctx) {
            Route::Partial => HandshakeStep::More,
            Route::Respond(resp) => {
                self.out.push(&resp);
                self.phase = Phase::Closing;
                self.close_reason = Some(CloseReason::Http);
                HandshakeStep::Responded
            }
            Route::Metrics => {
                self.phase = Phase::Closing;
                self.close_reason = Some(CloseReason::Http);
                HandshakeStep::Metrics
            }
            Route::Upgrade {
                response,
                format,
                role,
                consumed,
            } => {
                self.role = role;
                if role == Role::Publisher {
                    self.publisher = Some(Box::default());
                }
                let rest = head.split_off(consumed);
                self.out.push(&response);
                self.out.start_frames();
                self.format = format;
                let ws =
                    WebSocketContext::from_partially_read(rest, WsRole::Server, Some(ws_config));
                self.phase = Phase::Open { ws: Box::new(ws) };
                HandshakeStep::Upgraded
            }
        }
    }

    /// Reads one message from an open connection. Automatic replies (pong,
    /// the answer to a close) go ahead of queued data, right after the frame
    /// being written, so a backlog does not delay them.
    pub fn read_message(&mut self) -> Incoming {
        let Phase::Open { ws } = &mut self.phase else {
            return Incoming::Idle;
        };
        let mut io = Duplex {
            io: &mut self.io,
            out: &mut self.out,
            control_first: true,
        };
        loop {
            let res = ws.read(&mut io);
            if res.is_ok() {
                self.last_rx = Instant::now();
                self.ping_out = false;
            } // Pongs and close replies tungstenite queued go out with the next flush.
            let _ = ws.flush(&mut io);
            return match res {
                Ok(Message::Close(_)) => {
                    // tungstenite has queued its reply; finish like any close.
                    self.phase = Phase::Closing;
                    self.close_reason.get_or_insert(CloseReason::Client);
                    Incoming::Idle
                }
                Ok(m) => Incoming::Message(m),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Incoming::Idle,
                Err(WsError::Io(_))
                | Err(WsError::ConnectionClosed)
                | Err(WsError::AlreadyClosed) => Incoming::Gone,
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    Incoming::Gone
                }
                Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    Incoming::Fail(
                        CloseCode::Size,
                        format!("message of {size} bytes exceeds the limit of {max_size}"),
                    )
                }
                Err(WsError::Capacity(e)) => Incoming::Fail(CloseCode::Size, e.to_string()),
                Err(WsError::Utf8(_)) => {
                    Incoming::Fail(CloseCode::Invalid, "text frame is not valid UTF-8".into())
                }
                Err(WsError::Protocol(e)) => Incoming::Fail(CloseCode::Protocol, e.to_string()),
                Err(e) => Incoming::Fail(CloseCode::Protocol, e.to_string()),
            };
        }
    }

    /// Queues a close frame (if the session is open) and moves to Closing.
    /// The reason is cut to fit a control frame. A 1001 (shutdown) goes after
    /// the queued updates; any other code goes first and drops the backlog.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.close_reason.get_or_insert(match code {
            CloseCode::Away => CloseReason::Shutdown,
            _ => CloseReason::Protocol,
        });
        if let Phase::Open { ws } = &mut self.phase {
            let mut cut = reason.len().min(120);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut io = Duplex {
                io: &mut self.io,
                out: &mut self.out,
                // A shutdown's 1001 follows the updates already queued; any
                // other close is urgent and drops the backlog behind it.
                control_first: code != CloseCode::Away,
            };
            let _ = ws.close(
                &mut io,
                Some(CloseFrame {
                    code,
                    reason: reason[..cut].to_owned().into(),
                }),
            );
        }
        self.phase = Phase::Closing;
    }

    /// Queues a WebSocket ping (heartbeat).
    pub fn ping(&mut self) {
        if let Phase::Open { ws } = &mut self.phase {
            let mut io = Duplex {
                io: &mut self.io,
                out: &mut self.out,
                control_first: true,
            };
            let _ = ws.write(&mut io, Message::Ping(b"tickcast".to_vec().into()));
            let _ = ws.flush(&mut io);
            self.ping_out = true;
        }
    }

    /// Writes the queue to the socket. `Ok(true)` when the connection should
    /// now be removed (closing and everything written and the peer done).
    pub fn flush(&mut self, tally: &mut Tally) -> io::Result<Flushed> {
        let res = self.io.flush(&mut self.out, tally)?;
        if res == Flushed::All && matches!(self.phase, Phase::Closing) && !self.write_shut {
            self.write_shut = true;
            self.io.shutdown_write();
        }
        Ok(res)
    }

    /// Is this an open WebSocket session?
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// True once a closing connection has written everything and shut its side.
    pub fn write_done(&self) -> bool {
        self.write_shut
    }

    /// In Closing: reads and discards until the peer closes. `true` when it has.
    pub fn drain(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }
}
