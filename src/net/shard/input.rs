//! Reading connections: the HTTP handshake, then WebSocket messages, each
//! dispatched to the subscriber commands, a network publisher, or the echo
//! test mode.

use super::Shard;
use crate::metrics::CloseReason;
use crate::model::format::Format;
use crate::net::byte_budget::effective;
use crate::net::conn::{HandshakeStep, Incoming, Phase, ReadLimits, Verdict};
use crate::net::http::{self, HttpContext, Role};
use crate::net::live::Live;
use crate::net::outbound::batch::OwnContext;
use crate::net::work::{self, Outcome, WorkBudget};
use crate::net::Shared;
use crate::wire::command;
use crate::wire::deflate::contexts_in;
use crate::wire::frame::{OP_BINARY, OP_TEXT};
use std::sync::atomic::Ordering;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

fn http_context<'a>(shared: &Shared, live: &'a Live) -> HttpContext<'a> {
    let config = &live.config;
    HttpContext {
        max_head: config.max_handshake_bytes,
        shutting_down: shared.shutting_down.load(Ordering::Relaxed),
        subscriber_tokens: &config.subscriber_tokens,
        publisher_tokens: &config.publisher_tokens,
        jwt: live.jwt.as_deref(),
        admin_tokens: &config.admin_tokens,
        protect_metrics: config.protect_metrics,
        allowed_origins: &config.allowed_origins,
        max_topic_len: config.max_topic_len,
        fields: &config.extra_fields,
        deflate: config.permessage_deflate,
        deflate_min: config.deflate_min_bytes,
        deflate_context: config.deflate_per_connection
            && shared.deflate_contexts.load(Ordering::Relaxed)
                < contexts_in(config.deflate_context_memory),
        // This socket is counted: past the limit means it is in the reserve.
        full: shared.connections.load(Ordering::Relaxed) > config.max_connections,
        degraded: shared.cluster.as_ref().is_some_and(|c| !c.up()),
        failed: shared.failed.load(Ordering::Relaxed),
    }
}

impl Shard {
    /// Reads what connection `token` sent and acts on it. A panic in its
    /// handling (a bug of ours) closes that connection alone with 1011,
    /// counted as `internal_error`; the shard and its other connections go
    /// on. Unwinding is caught here, per connection, because the state it
    /// may leave half-changed is that connection's.
    pub(super) fn read_conn(&mut self, token: usize) {
        let read =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_phase(token)));
        let verdict = read.unwrap_or_else(|_| {
            log::error!(
                "shard {}: a bug while handling connection {token}: closing it with 1011",
                self.ctx.id
            );
            Verdict::Close {
                code: CloseCode::Error,
                reason: "internal error".into(),
                why: CloseReason::Internal,
            }
        });
        self.settle(token, verdict);
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

    fn read_phase(&mut self, token: usize) -> Verdict {
        let Some(conn) = self.conns.get_mut(token) else {
            return Verdict::Continue;
        };
        match conn.phase {
            Phase::Handshake { .. } => {
                match conn.read_handshake(http_context(&self.ctx.shared, &self.ctx.live)) {
                    HandshakeStep::More => Verdict::Continue,
                    HandshakeStep::Upgraded {
                        budget,
                        own_context,
                    } => {
                        if own_context {
                            let config = &self.ctx.live.config;
                            let most = contexts_in(config.deflate_context_memory);
                            // Raced past the budget: the shared mode, still valid.
                            let count = &self.ctx.shared.deflate_contexts;
                            if let Some(ctx) = OwnContext::reserve(count, most) {
                                conn.out.start_context(conn.format.opcode(), ctx);
                            }
                        }
                        if conn.deflate {
                            let m = &self.ctx.shared.metrics.shards[self.ctx.id];
                            m.deflate_sessions.fetch_add(1, Ordering::Relaxed);
                        }
                        if conn.role == Role::Subscriber {
                            let server = Some(self.ctx.live.config.max_bytes_per_sec);
                            let token =
                                conn.access.as_ref().and_then(|a| a.grant.max_bytes_per_sec);
                            let rate = effective([server, token, budget]);
                            conn.backlog.set_budget(rate, std::time::Instant::now());
                        }
                        self.mark_dirty(token);
                        self.tell_wanted(token);
                        self.read_messages(token)
                    }
                    HandshakeStep::Responded => Verdict::Finish(CloseReason::Http),
                    HandshakeStep::Metrics => {
                        let body = self.ctx.shared.metrics.render(
                            self.ctx.table.live(),
                            self.ctx.shared.shutting_down.load(Ordering::Relaxed),
                        );
                        conn.out.push(&http::metrics_response(&body));
                        Verdict::Finish(CloseReason::Http)
                    }
                    HandshakeStep::Gone => Verdict::Drop(CloseReason::Client),
                    HandshakeStep::Admin(request) => self.start_admin(token, request),
                }
            }
            Phase::Open { .. } => self.read_messages(token),
            // Nothing more is read while the shards answer.
            Phase::Admin => Verdict::Continue,
            // Discard input; once the peer has closed we are done (even if
            // our last bytes could not all be written: nobody reads them).
            Phase::Closing => match conn.drain() {
                true => Verdict::Drop(CloseReason::Client),
                false => Verdict::Continue,
            },
        }
    }

    fn read_messages(&mut self, token: usize) -> Verdict {
        if !self.work.turn_has_room() {
            self.pending.reread.push(token);
            return Verdict::Continue;
        }
        self.work.start_conn();
        let Some(conn) = self.conns.get(token) else {
            return Verdict::Continue;
        };
        if conn.read_later || conn.parked {
            // Its turn comes with the slow-read timer, whatever arrives,
            // or once its parked subscribe has run.
            return Verdict::Continue;
        }
        // Reading happens before this turn's deliveries and writes, so
        // what is queued now is what the socket did not take last time.
        let behind = !conn.out.is_empty();
        for _ in 0..WorkBudget::messages_for(behind) {
            if !self.work.conn_has_room() {
                break;
            }
            let Some(conn) = self.conns.get_mut(token) else {
                return Verdict::Continue;
            };
            if conn.publisher.as_ref().is_some_and(|p| p.is_blocked()) {
                // Back-pressure: a publisher whose updates wait for room in the
                // ingest queue is not read until they are in.
                self.send_ack(token);
                return Verdict::Continue;
            }
            let config = &self.ctx.live.config;
            let limits = ReadLimits {
                max_message: config.max_message_size,
                read_size: config.read_buffer_size,
            };
            match conn.read_message(limits) {
                Incoming::Message(m) => {
                    self.metrics().received.fetch_add(1, Ordering::Relaxed);
                    let Outcome { verdict, cost } = self.on_message(token, m);
                    self.work.charge(cost);
                    if !matches!(verdict, Verdict::Continue) {
                        return verdict;
                    }
                }
                Incoming::Idle => {
                    self.send_ack(token);
                    return Verdict::Continue;
                }
                Incoming::End(verdict) => {
                    log::debug!("shard {}: connection ends: {verdict:?}", self.ctx.id);
                    if let Verdict::Finish(_) = verdict {
                        // The peer closed; our reply is queued. A publisher
                        // still learns what of its updates got in.
                        self.send_ack(token);
                    }
                    return verdict;
                }
            }
        }
        if behind {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.read_later = true;
            }
            let t = &mut self.timers;
            t.slow_reads.push(token);
            t.slow_read_at
                .get_or_insert_with(|| std::time::Instant::now() + work::SLOW_READ_PERIOD);
        } else {
            self.pending.reread.push(token);
        }
        Verdict::Continue
    }

    /// Reads the connections that do not read, each its small share, once
    /// per `SLOW_READ_PERIOD`.
    pub(super) fn read_slow_readers(&mut self, now: std::time::Instant) {
        if self.timers.slow_read_at.is_some_and(|at| at <= now) {
            self.timers.slow_read_at = None;
            for t in std::mem::take(&mut self.timers.slow_reads) {
                if let Some(conn) = self.conns.get_mut(t) {
                    conn.read_later = false;
                    self.read_conn(t);
                }
            }
        }
    }

    /// Handles one message; the outcome says what it cost.
    fn on_message(&mut self, token: usize, msg: Message) -> Outcome {
        let Some(conn) = self.conns.get_mut(token) else {
            return Outcome::go_on(0);
        };
        if conn.role == Role::Publisher {
            let outcome = self.on_publish(token, msg);
            self.mark_dirty(token);
            return outcome;
        }
        if self.ctx.live.config.echo {
            // Transport test mode: send every message back unchanged.
            let (op, data): (u8, &[u8]) = match &msg {
                Message::Text(t) => (OP_TEXT, t.as_bytes()),
                Message::Binary(b) => (OP_BINARY, b),
                _ => return Outcome::go_on(1),
            };
            if conn.deflate {
                // Echo compressed, so a conformance suite checks both ways.
                let mut frame = Vec::with_capacity(data.len() / 2 + 16);
                crate::wire::deflate::deflate_frame(op, data, &mut frame);
                conn.out.push(&frame);
            } else {
                self.delivery.fb.payload().extend_from_slice(data);
                conn.out.push(self.delivery.fb.finish(op));
            }
            self.mark_dirty(token);
            return Outcome::go_on(1);
        }
        let (payload, fmt): (&[u8], Format) = match &msg {
            Message::Text(text) => (text.as_bytes(), Format::Json),
            Message::Binary(bytes) if conn.format == Format::MsgPack => (bytes, Format::MsgPack),
            Message::Binary(_) => {
                return Outcome::with(
                    Verdict::close(
                        CloseCode::Unsupported,
                        "binary frames need the tickcast.msgpack subprotocol; send JSON text",
                        CloseReason::Protocol,
                    ),
                    1,
                );
            }
            // tungstenite answers pings itself; pongs and raw frames carry nothing for us.
            _ => return Outcome::go_on(1),
        };
        let rate = self.ctx.live.config.max_commands_per_sec;
        let now = std::time::Instant::now();
        if !conn.commands.has_token(rate, now) {
            // Over its rate: refused without parsing more than its id. The
            // same instant, so no token can have come in between.
            let id = command::request_id(payload, fmt);
            let verdict = self.rate_limit(token, &id, now);
            debug_assert!(verdict.is_some(), "a bucket without a token took one");
            let verdict = verdict.unwrap_or(Verdict::Continue);
            self.mark_dirty(token);
            return Outcome::with(verdict, 1);
        }
        let parsed = command::parse(payload, fmt);
        let outcome = match parsed {
            Ok(cmd) => self.on_command(token, cmd, now),
            Err(e) => {
                self.send_error(token, e);
                Outcome::go_on(1)
            }
        };
        self.mark_dirty(token);
        outcome
    }
}
