//! One socket's state machine and outbound queue.
//!
//! A connection moves Handshake → Open → Closing and is then removed:
//! - Handshake: bytes accumulate until the HTTP request head is complete, then
//!   [`super::http::route`] decides: upgrade, or a plain response and close.
//! - Open: [`Reader`] parses client frames (permessage-deflate included);
//!   everything we send goes through [`Outbound`], pongs and closes too.
//! - Closing: a last response or close frame is queued. Once it is written the
//!   write side is shut down and the socket drained until the peer closes (or a
//!   deadline passes), so the peer reads our close frame instead of a reset.
//!
//! A connection decides, the shard loop acts: what reading or a handler
//! concludes is a [`Verdict`], and only the loop closes, deregisters and
//! removes a connection, so each close reason is decided in one place.

use super::allowance::{Access, CommandBucket};
use super::backlog::Backlog;
use super::http::{self, AdminRequest, HttpContext, Role, Route};
use super::outbound::{Flushed, Outbound, Tally};
use super::subscriptions::Subscriptions;
use super::transport::Transport;
use crate::access::Pass;
use crate::metrics::CloseReason;
use crate::model::format::Format;
use crate::wire::frame::{OP_CLOSE, OP_PING, OP_PONG};
use crate::wire::inbound::{self, Got, Reader};
use std::borrow::Cow;
use std::io;
use std::time::Instant;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// Where a connection is in its life.
pub(crate) enum Phase {
    /// Waiting for the complete HTTP request head.
    Handshake { head: Vec<u8> },
    /// A WebSocket session: its inbound frames, partly read.
    Open { reader: Reader },
    /// Final bytes queued; the connection ends once they are written and the peer
    /// has closed, or at the close deadline.
    Closing,
    /// An operator's request waits for the shards' answers (`/admin/…`).
    Admin,
}

/// What a connection's handler decided. Only the shard loop acts on it: it
/// alone closes, deregisters and removes connections.
#[must_use]
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Keep serving.
    Continue,
    /// Send a WebSocket close frame with this code and reason, then end. The
    /// metrics count the connection under `why`.
    Close {
        code: CloseCode,
        reason: Cow<'static, str>,
        why: CloseReason,
    },
    /// The last bytes (an HTTP response, the reply to the peer's close) are
    /// queued: end once they are written.
    Finish(CloseReason),
    /// The connection is gone: remove it now.
    Drop(CloseReason),
}

/// The least read buffer of a `/publish` connection: its frames carry
/// batches of updates, tens of kilobytes each, and publishers are few.
pub(crate) const PUBLISHER_READ_BUFFER: usize = 64 * 1024;

impl Verdict {
    pub fn close(code: CloseCode, reason: impl Into<Cow<'static, str>>, why: CloseReason) -> Self {
        Verdict::Close {
            code,
            reason: reason.into(),
            why,
        }
    }

    /// A close with 1008 (policy) after a client broke a rule of ours.
    pub fn policy(reason: &'static str, why: CloseReason) -> Self {
        Verdict::close(CloseCode::Policy, reason, why)
    }

    /// 1001 "going away": the server shuts down.
    pub fn shutting_down() -> Self {
        Verdict::close(
            CloseCode::Away,
            "server shutting down",
            CloseReason::Shutdown,
        )
    }
}

/// What reading from an open connection produced.
pub(crate) enum Incoming {
    /// A complete message.
    Message(Message),
    /// Nothing more to read now.
    Idle,
    /// The session ends: the peer closed, left, or broke the protocol.
    End(Verdict),
}

/// One client connection.
pub(crate) struct Conn {
    /// Plain TCP or TLS.
    pub io: Transport,
    /// Unique per shard for the server's lifetime; timers hold it to tell a
    /// reused slab slot from the connection they were set for.
    pub id: u64,
    /// What its memberships in the shard's index carry
    /// ([`super::index::member_key`]).
    pub key: usize,
    pub phase: Phase,
    pub out: Outbound,
    pub format: Format,
    pub subs: Subscriptions,
    /// Conflation and the hard limit of `out`.
    pub backlog: Backlog,
    /// Already listed in the shard's flush list this iteration.
    pub dirty: bool,
    /// permessage-deflate was negotiated: event frames of at least
    /// `deflate_min_bytes` go to it compressed.
    pub deflate: bool,
    /// How its updates are paced (`max_rate`): kept here so a delivery
    /// reads one field instead of looking the rate up; recomputed when
    /// its subscriptions, its token or the server's cap change
    /// (`Shard::repace`).
    pub pace: crate::net::pace_group::PaceMode,
    /// Our write side is shut down; only draining remains.
    write_shut: bool,
    /// Why the connection is ending, once it is (for the metrics).
    pub close_reason: Option<CloseReason>,
    /// Subscriber (`/ws`) or network publisher (`/publish`).
    pub role: Role,
    /// Network publishers' state, boxed: subscribers, by far the most
    /// connections, should not pay for it.
    pub publisher: Option<Box<crate::net::publishing::PublisherState>>,
    /// When the peer last sent anything (for heartbeats).
    pub last_rx: Instant,
    /// A ping is out and unanswered since `last_rx`.
    pub ping_out: bool,
    /// Queue length last added to the shard's queued-bytes gauge.
    pub reported_pending: usize,
    /// Not reading what it is sent, it had more input than its share: it
    /// is read again by the slow-read timer, not on socket events.
    pub read_later: bool,
    /// Cluster mode: a subscribe of it waits for the node to follow its
    /// topics; nothing more of it is read until it has run.
    pub parked: bool,
    /// What its JWT allows, and its expiry; None (most connections): a
    /// static token or an open server, no limits of its own.
    pub access: Option<Box<Access>>,
    /// The fingerprint of the static token it presented (0: none), for a
    /// reload to close it when the token is removed.
    pub static_token: u64,
    /// The command rate limit's bucket.
    pub commands: CommandBucket,
    /// When it was accepted (for `/admin/connections`).
    pub connected_at: std::time::SystemTime,
}

/// Outcome of feeding handshake bytes.
pub(crate) enum HandshakeStep {
    /// Still waiting for the end of the head.
    More,
    /// Upgraded; frames may already be buffered, so read at once. With
    /// the byte budget the client asked for, if any.
    Upgraded {
        budget: Option<u64>,
        own_context: bool,
    },
    /// A plain HTTP response was queued; the connection ends once it is written.
    Responded,
    /// The peer closed or failed before finishing.
    Gone,
    /// `GET /metrics`: the shard queues the rendered page, then the connection ends.
    Metrics,
    /// An operator's request: the shard asks every shard, then answers.
    Admin(AdminRequest),
}

impl Conn {
    pub fn new(io: Transport, id: u64, key: usize) -> Self {
        Conn {
            io,
            id,
            key,
            phase: Phase::Handshake { head: Vec::new() },
            out: Outbound::default(),
            format: Format::Json,
            subs: Subscriptions::default(),
            backlog: Backlog::default(),
            dirty: false,
            pace: Default::default(),
            deflate: false,
            write_shut: false,
            close_reason: None,
            role: Role::Subscriber,
            publisher: None,
            last_rx: Instant::now(),
            ping_out: false,
            reported_pending: 0,
            read_later: false,
            parked: false,
            access: None,
            static_token: 0,
            commands: CommandBucket::new(),
            connected_at: std::time::SystemTime::now(),
        }
    }

    /// Reads what the socket has and routes the request once the head is complete.
    pub fn read_handshake(&mut self, ctx: HttpContext<'_>) -> HandshakeStep {
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
                HandshakeStep::Responded
            }
            Route::Metrics => HandshakeStep::Metrics,
            Route::Admin(request) => {
                self.phase = Phase::Admin;
                HandshakeStep::Admin(request)
            }
            Route::Upgrade {
                response,
                format,
                role,
                pass,
                keep_live,
                deflate,
                batch,
                budget,
                own_context,
                consumed,
            } => {
                self.role = role;
                (self.access, self.static_token) = admission(pass, self.id);
                if role == Role::Publisher {
                    self.publisher = Some(Box::new(
                        crate::net::publishing::PublisherState::keeping_live(keep_live),
                    ));
                }
                let rest = head.split_off(consumed);
                self.out.push(&response);
                self.out.start_frames();
                if batch {
                    let zip = deflate.then_some(ctx.deflate_min);
                    self.out.start_batches(format.opcode(), zip);
                }
                self.format = format;
                self.deflate = deflate;
                self.phase = Phase::Open {
                    reader: Reader::new(rest, deflate),
                };
                HandshakeStep::Upgraded {
                    budget,
                    own_context,
                }
            }
        }
    }

    /// Does it take the shared compressed frames (and have its own large
    /// frames compressed alone)? Only if it negotiated permessage-deflate
    /// and shapes nothing itself: a batch session compresses whole batches,
    /// a per-connection session everything through its window.
    #[inline]
    pub fn shared_deflate(&self) -> bool {
        self.deflate && !self.out.shaped()
    }

    /// Takes what a token (or an open server) lets this connection do.
    pub fn admit(&mut self, pass: Pass) {
        (self.access, self.static_token) = admission(pass, self.id);
    }

    /// Reads one message from an open connection: frames up to `limits.max_message`
    /// bytes (inflated, if compressed), reading the socket `limits.read_size`
    /// bytes at a time. Pongs and the answer to a close go ahead of queued
    /// data, right after the frame being written, so a backlog does not
    /// delay them.
    pub fn read_message(&mut self, limits: ReadLimits) -> Incoming {
        let Phase::Open { reader } = &mut self.phase else {
            return Incoming::Idle;
        };
        let publisher = self.role == Role::Publisher;
        loop {
            match reader.next(limits.max_message) {
                Ok(Some(got)) => {
                    self.last_rx = Instant::now();
                    self.ping_out = false;
                    return answer(&mut self.out, got);
                }
                Ok(None) => {}
                Err(broke) => {
                    return Incoming::End(Verdict::close(
                        CloseCode::from(broke.code()),
                        broke.reason(),
                        CloseReason::Protocol,
                    ))
                }
            }
            let chunk = match publisher {
                // Batches of kilobytes: a few dozen bytes a read would cost a syscall each.
                true => limits.read_size.max(PUBLISHER_READ_BUFFER),
                false => limits.read_size,
            };
            let buf = reader.buffer();
            let had = buf.len();
            buf.resize(had + chunk, 0);
            let res = self.io.read(&mut buf[had..]);
            buf.truncate(had + *res.as_ref().unwrap_or(&0));
            match res {
                Ok(0) => return Incoming::End(Verdict::Drop(CloseReason::Client)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !publisher {
                        // An idle subscriber keeps no read buffer.
                        reader.release();
                    }
                    return Incoming::Idle;
                }
                Err(_) => return Incoming::End(Verdict::Drop(CloseReason::Client)),
            }
        }
    }

    /// Queues a close frame (if the session is open) and moves to Closing.
    /// The reason is cut to fit a control frame. A 1001 (shutdown) goes after
    /// the queued updates; any other code goes first and drops the backlog.
    /// Only the shard loop calls it, when it acts on a [`Verdict`].
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if let Phase::Open { .. } = &self.phase {
            let frame = inbound::close_frame(code.into(), reason);
            // A shutdown's 1001 follows the updates already queued; any
            // other close is urgent and drops the backlog behind it.
            match code {
                CloseCode::Away => self.out.push(&frame),
                _ => self.out.push_control(&frame),
            }
        }
        self.phase = Phase::Closing;
    }

    /// Queues a WebSocket ping (heartbeat).
    pub fn ping(&mut self) {
        if let Phase::Open { .. } = &self.phase {
            let frame = inbound::control_frame(OP_PING, b"tickcast");
            self.out.push_control(&frame);
            self.ping_out = true;
        }
    }

    /// Writes the queue to the socket; once a closing connection has written
    /// everything, shuts down its write side.
    pub fn flush(&mut self, tally: &mut Tally) -> io::Result<Flushed> {
        // A batch session's events of this turn become one message.
        self.out.seal();
        let res = self.io.flush(&mut self.out, tally)?;
        if res == Flushed::All && matches!(self.phase, Phase::Closing) && !self.write_shut {
            self.write_shut = true;
            self.io.shutdown_write();
        }
        Ok(res)
    }

    /// Everything the connection holds (its queue and its held-back
    /// updates), recorded as `reported_pending`; returns it and how much it
    /// changed since the last report, for the shard's gauge.
    pub fn report_holds(&mut self) -> (usize, i64) {
        let holds = self.out.held() + self.backlog.held_bytes();
        let delta = holds as i64 - self.reported_pending as i64;
        self.reported_pending = holds;
        (holds, delta)
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

/// How much a connection reads: its largest message, and its reads' size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub max_message: usize,
    pub read_size: usize,
}

/// What a frame the reader completed means for the session: a message for
/// the shard, or a control frame answered here (a ping's pong, a close's
/// echo, both ahead of queued data).
fn answer(out: &mut Outbound, got: Got) -> Incoming {
    match got {
        Got::Data {
            text: true,
            payload,
        } => match String::from_utf8(payload) {
            Ok(text) => Incoming::Message(Message::Text(text.into())),
            Err(_) => Incoming::End(Verdict::close(
                CloseCode::Invalid,
                "text frame is not valid UTF-8",
                CloseReason::Protocol,
            )),
        },
        Got::Data { payload, .. } => Incoming::Message(Message::Binary(payload.into())),
        Got::Ping(payload) => {
            out.push_control(&inbound::control_frame(OP_PONG, &payload));
            Incoming::Message(Message::Ping(payload.into()))
        }
        Got::Pong => Incoming::Message(Message::Pong(Default::default())),
        Got::Close(code) => {
            // Echo the peer's code (RFC 6455 §5.5.1), then end once it is written.
            let reply = match code {
                Some((code, _)) => inbound::close_frame(code, ""),
                None => inbound::control_frame(OP_CLOSE, b""),
            };
            out.push_control(&reply);
            Incoming::End(Verdict::Finish(CloseReason::Client))
        }
    }
}

/// A connection's access and static-token fingerprint from how it got in.
fn admission(pass: Pass, id: u64) -> (Option<Box<Access>>, u64) {
    match pass {
        Pass::Open => (None, 0),
        Pass::Static(print) => (None, print),
        Pass::Jwt(g) => {
            if let Some(sub) = &g.sub {
                log::debug!("connection {id} is {sub:?}");
            }
            (Some(Box::new(Access::new(*g))), 0)
        }
    }
}
