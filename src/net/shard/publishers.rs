//! Network publishers on `/publish`: decoding and checking their frames,
//! moving their updates into the ingest queue, and back-pressure: a publisher
//! whose updates wait for room is not read until they are in.

use super::Shard;
use crate::engine::ingest::IngestOp;
use crate::error::Error;
use crate::net::conn::Verdict;
use crate::wire::frame::OP_BINARY;
use crate::wire::publish::{self, Item, PublishError, PublisherEvent};
use tungstenite::Message;

/// Where a publisher's waiting updates stand.
enum Push {
    /// All are in the ingest queue.
    All,
    /// The queue is full; the rest wait.
    Blocked,
    /// The server is shutting down and takes no more.
    ShutDown,
}

impl Shard {
    /// A network publisher's frame: decode, check every update, queue them.
    /// A bad frame is refused whole with an `error` event; nothing of it
    /// reaches the topic table.
    pub(super) fn on_publish(&mut self, token: usize, msg: Message) -> Verdict {
        let max_len = self.shared.config.max_topic_len;
        let checked = match msg {
            Message::Binary(bytes) => publish::decode(&bytes)
                .and_then(|items| publish::check(&items, max_len).map(|()| items)),
            Message::Text(_) => Err(PublishError::TextFrame),
            _ => return Verdict::Continue,
        };
        match checked {
            Ok(items) => {
                if let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) {
                    for item in items {
                        let op = match item {
                            Item::Update(u) => {
                                if !p.topics.contains(u.topic.as_str()) {
                                    p.topics.insert(u.topic.as_str().into());
                                }
                                IngestOp::Update(u)
                            }
                            Item::Clear(t) => IngestOp::Clear(t),
                        };
                        p.pending.push_back(op);
                    }
                }
                match self.push_pending(token) {
                    Push::ShutDown => Verdict::shutting_down(),
                    Push::All | Push::Blocked => Verdict::Continue,
                }
            }
            Err(e) => {
                self.send_publisher_event(token, &e.to_event());
                Verdict::Continue
            }
        }
    }

    /// Moves a publisher's waiting updates into the ingest queue until it is full.
    fn push_pending(&mut self, token: usize) -> Push {
        let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) else {
            return Push::All;
        };
        while let Some(op) = p.pending.pop_front() {
            match self.ingest.try_send_op(op.clone()) {
                Ok(()) => p.accepted += 1,
                Err(Error::Full) => {
                    p.pending.push_front(op);
                    if !self.pending.blocked.contains(&token) {
                        self.pending.blocked.push(token);
                    }
                    return Push::Blocked;
                }
                Err(_) => {
                    p.pending.clear();
                    return Push::ShutDown;
                }
            }
        }
        Push::All
    }

    /// A publisher connection is going away: the topics it published are
    /// marked stale (a `status` event to their subscribers), unless the
    /// server is shutting down.
    pub(super) fn publisher_gone(&mut self, token: usize) {
        let Some(p) = self.conns.get_mut(token).and_then(|c| c.publisher.as_mut()) else {
            return;
        };
        for topic in std::mem::take(&mut p.topics) {
            self.pending.stale_marks.push(topic);
        }
        self.mark_stale_topics();
    }

    /// Sends the stale marks that wait for room in the ingest queue.
    pub(super) fn mark_stale_topics(&mut self) {
        while let Some(topic) = self.pending.stale_marks.pop() {
            // Sent, or the server is shutting down and nobody will hear:
            // either way done; full: try again next turn.
            let op = IngestOp::Stale(topic.to_string(), true);
            if let Err(Error::Full) = self.ingest.try_send_op(op) {
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
        self.fb.payload().extend_from_slice(&ev.to_msgpack());
        conn.out.push(self.fb.finish(OP_BINARY));
        self.mark_dirty(token);
    }
}
