//! Network publishers on `/publish`: decoding and checking their frames,
//! moving their updates into the ingest queue, and back-pressure: a publisher
//! whose updates wait for room is not read until they are in.

use super::Shard;
use crate::engine::ingest::TrySend;
use crate::engine::op::IngestOp;
use crate::model::liveness::Liveness;
use crate::net::conn::Verdict;
use crate::net::http::Role;
use crate::net::publishing::Push;
use crate::net::work::Outcome;
use crate::wire::frame::OP_BINARY;
use crate::wire::publish::{self, Item, PublishError, PublisherEvent};
use std::sync::atomic::Ordering;
use tungstenite::Message;

impl Shard {
    /// A network publisher's frame: decode, check each update, queue the
    /// good ones. A frame that cannot be decoded is refused whole; a bad
    /// update (or one of a new topic while the server is at `max_topics`) is
    /// refused alone and named by its index in one `error` event, and the
    /// rest of its frame is published.
    pub(super) fn on_publish(&mut self, token: usize, msg: Message) -> Outcome {
        let max_len = self.ctx.live.config.max_topic_len;
        let decoded = match msg {
            Message::Binary(bytes) => publish::decode_with(&bytes, self.ctx.table.field_names()),
            Message::Text(_) => Err(PublishError::TextFrame),
            _ => return Outcome::go_on(1),
        };
        let items = match decoded {
            Ok(items) => items,
            Err(e) => {
                self.send_publisher_event(token, &e.to_event());
                return Outcome::go_on(1);
            }
        };
        let count = items.len();
        // Each update is work, like each topic of a command (`input`).
        if self.publish_forbidden(token, &items) {
            return Outcome::go_on(count);
        }
        let table = &self.ctx.table;
        let refused = self
            .conns
            .get_mut(token)
            .and_then(|c| c.publisher.as_mut())
            .and_then(|p| {
                p.take_frame(items, |item| {
                    publish::check_item(item, max_len).and_then(|()| match item {
                        Item::Update(u) => table.admits(&u.topic),
                        Item::Clear(_) => Ok(()),
                    })
                })
            });
        if let Some(r) = refused {
            self.metrics()
                .publish_refused
                .fetch_add(r.refused.len() as u64, Ordering::Relaxed);
            self.send_publisher_event(token, &publish::refused_event(&r.refused, r.of));
        }
        let verdict = match self.push_pending(token) {
            Push::ShutDown => Verdict::shutting_down(),
            Push::All | Push::Blocked => Verdict::Continue,
        };
        Outcome::with(verdict, count)
    }

    /// Moves a publisher's waiting updates into the ingest queue until it
    /// is full; a refused one is told by its index in its own frame.
    fn push_pending(&mut self, token: usize) -> Push {
        let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) else {
            return Push::All;
        };
        let ingest = &self.ctx.ingest;
        let (outcome, refusals) = p.push(|op| ingest.try_send_op(op));
        if outcome == Push::Blocked && !self.pending.blocked.contains(&token) {
            self.pending.blocked.push(token);
        }
        for r in refusals {
            self.send_publisher_event(token, &publish::refused_event(&r.refused, r.of));
        }
        outcome
    }

    /// A publisher connection is going away: the topics it published are
    /// marked stale (a `status` event to their subscribers), unless the
    /// server is shutting down.
    pub(super) fn publisher_gone(&mut self, token: usize) {
        let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) else {
            return;
        };
        for topic in p.take_topics() {
            self.pending.stale_marks.push(topic);
        }
        self.mark_stale_topics();
    }

    /// Sends the stale marks that wait for room in the ingest queue.
    pub(super) fn mark_stale_topics(&mut self) {
        while let Some(topic) = self.pending.stale_marks.pop() {
            // Sent, or the server is shutting down and nobody will hear:
            // either way done; full: try again next turn.
            let op = IngestOp::Stale(topic.to_string(), Liveness::Stale);
            if let TrySend::Full(_) = self.ctx.ingest.try_send_op(op) {
                self.pending.stale_marks.push(topic);
                return;
            }
        }
    }

    pub(super) fn retry_blocked_publishers(&mut self) {
        for token in std::mem::take(&mut self.pending.blocked) {
            match self.push_pending(token) {
                Push::All => {
                    self.send_ack(token);
                    // Resume reading what the publisher sent meanwhile.
                    self.read_conn(token);
                }
                Push::Blocked => {}
                Push::ShutDown => self.settle(token, Verdict::shutting_down()),
            }
        }
    }

    /// Acknowledges to a publisher how many of its updates are in the ingest
    /// queue, if that changed.
    pub(super) fn send_ack(&mut self, token: usize) {
        let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) else {
            return;
        };
        let Some(count) = p.ack() else {
            return;
        };
        let ev = PublisherEvent::Ack { count };
        self.send_publisher_event(token, &ev);
    }

    pub(super) fn send_publisher_event(&mut self, token: usize, ev: &PublisherEvent) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        self.delivery
            .fb
            .payload()
            .extend_from_slice(&ev.to_msgpack());
        conn.out.push(self.delivery.fb.finish(OP_BINARY));
        self.mark_dirty(token);
    }
}

impl Shard {
    /// Tells every `/publish` connection here that a topic or pattern
    /// gained its first subscriber or lost its last.
    pub(super) fn tell_publishers(&mut self, e: &crate::engine::interest::Interest) {
        let event = interest_event(e.selector.clone(), e.pattern, e.active);
        let tokens: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_open() && c.role == Role::Publisher)
            .map(|(t, _)| t)
            .collect();
        for token in tokens {
            self.send_publisher_event(token, &event);
        }
    }

    /// A `/publish` connection just opened: what is wanted now.
    pub(super) fn tell_wanted(&mut self, token: usize) {
        if self
            .conns
            .get(token)
            .is_none_or(|c| c.role != Role::Publisher)
        {
            return;
        }
        let wanted: Vec<(String, bool)> = self
            .ctx
            .shared
            .wanted
            .lock()
            .iter()
            .map(|(s, p)| (s.clone(), *p))
            .collect();
        for (selector, pattern) in wanted {
            self.send_publisher_event(token, &interest_event(selector, pattern, true));
        }
    }
}

fn interest_event(selector: String, pattern: bool, active: bool) -> PublisherEvent {
    PublisherEvent::Interest {
        selector,
        pattern,
        active,
    }
}
