//! A network publisher's side of a connection, without sockets: the
//! updates of its frames that wait for room in the ingest queue (each with
//! its place in its frame, so a refusal names the right update), what the
//! queue has taken and what was acknowledged, and the topics it published.
//! The shard hands it decoded frames and a way to send; it answers with
//! what to tell the publisher.

use crate::engine::ingest::TrySend;
use crate::engine::op::IngestOp;
use crate::error::Error;
use crate::net::topic_map::TopicSet;
use crate::wire::publish::Item;
use std::collections::VecDeque;

/// One update or clear of a frame, waiting for the ingest queue.
struct Waiting {
    op: IngestOp,
    /// Its index in its frame.
    index: u32,
    /// How many updates its frame had.
    of: u32,
    /// Which frame of this connection it came in (to group refusals).
    frame: u64,
}

/// Where a publisher's waiting updates stand after a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// All are in the ingest queue.
    All,
    /// The queue is full; the rest wait, in order.
    Blocked,
    /// The server is shutting down and takes no more.
    ShutDown,
}

/// Updates of one frame refused: (index in the frame, why), and the
/// frame's size, for `wire::publish::refused_event`.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub refused: Vec<(usize, Error)>,
    pub of: usize,
}

/// What a network publisher connection carries beyond a subscriber's.
#[derive(Default)]
pub(crate) struct PublisherState {
    /// Decoded updates waiting for room in the ingest queue. While any
    /// wait, nothing more is read from this connection.
    waiting: VecDeque<Waiting>,
    /// Frames taken so far.
    frames: u64,
    /// Updates accepted into the ingest queue.
    accepted: u64,
    /// The count last acknowledged to the publisher.
    acked: u64,
    /// Topics it published: marked stale when it goes away.
    topics: TopicSet,
    /// It asked that its topics stay live when it goes away (`on_leave=keep`).
    keep_live: bool,
}

impl PublisherState {
    /// A publisher whose topics are marked stale when it leaves, unless
    /// `keep_live`.
    pub fn keeping_live(keep_live: bool) -> Self {
        PublisherState {
            keep_live,
            ..Self::default()
        }
    }

    /// Takes a decoded frame: each item that `check` refuses is returned
    /// with its index (nothing else of it is kept); the rest wait, in order,
    /// for `push`.
    pub fn take_frame(
        &mut self,
        items: Vec<Item>,
        mut check: impl FnMut(&Item) -> Result<(), Error>,
    ) -> Option<Refusal> {
        let of = items.len();
        self.frames += 1;
        let mut refused = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            if let Err(why) = check(&item) {
                refused.push((index, why));
                continue;
            }
            let op = match item {
                Item::Update(u) => {
                    if !self.keep_live && !self.topics.contains(u.topic.as_str()) {
                        self.topics.insert(u.topic.as_str().into());
                    }
                    IngestOp::Update(u)
                }
                Item::Clear(t) => IngestOp::Clear(t),
            };
            self.waiting.push_back(Waiting {
                op,
                index: index as u32,
                of: of as u32,
                frame: self.frames,
            });
        }
        (!refused.is_empty()).then_some(Refusal { refused, of })
    }

    /// Sends waiting operations with `send` until it is full or they are
    /// all in. Refusals (cluster mode with Redis away, a new topic that lost
    /// the race for the last place under `max_topics`) are returned per
    /// frame, each naming its update's index in that frame: never a silent
    /// drop. No operation is cloned: a full queue hands it back.
    pub fn push(&mut self, mut send: impl FnMut(IngestOp) -> TrySend) -> (Push, Vec<Refusal>) {
        let mut refusals: Vec<(u64, Refusal)> = Vec::new();
        let outcome = loop {
            let Some(w) = self.waiting.pop_front() else {
                break Push::All;
            };
            match send(w.op) {
                TrySend::Sent => self.accepted += 1,
                TrySend::Full(op) => {
                    self.waiting.push_front(Waiting { op, ..w });
                    break Push::Blocked;
                }
                TrySend::Refused(Error::Closed) => {
                    self.waiting.clear();
                    break Push::ShutDown;
                }
                TrySend::Refused(why) => match refusals.last_mut() {
                    Some((frame, r)) if *frame == w.frame => {
                        r.refused.push((w.index as usize, why))
                    }
                    _ => refusals.push((
                        w.frame,
                        Refusal {
                            refused: vec![(w.index as usize, why)],
                            of: w.of as usize,
                        },
                    )),
                },
            }
        };
        (outcome, refusals.into_iter().map(|(_, r)| r).collect())
    }

    /// Updates wait for room: the connection is not read until they are in.
    pub fn is_blocked(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The count to acknowledge, when it changed since the last one.
    pub fn ack(&mut self) -> Option<u64> {
        if self.acked == self.accepted {
            return None;
        }
        self.acked = self.accepted;
        Some(self.accepted)
    }

    /// The topics it published, taken (to mark them stale as it goes);
    /// none for a publisher that asked to keep them live.
    pub fn take_topics(&mut self) -> TopicSet {
        std::mem::take(&mut self.topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::update::Update;

    fn frame(topics: &[&str]) -> Vec<Item> {
        topics
            .iter()
            .map(|t| Item::Update(Update::new(*t).last(1.0)))
            .collect()
    }

    fn topic(op: &IngestOp) -> &str {
        match op {
            IngestOp::Update(u) => &u.topic,
            IngestOp::Clear(t) => t,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_refusal_at_push_names_the_update_by_its_index_in_its_frame() {
        let mut p = PublisherState::default();
        assert!(p.take_frame(frame(&["A", "B", "C"]), |_| Ok(())).is_none());
        assert!(p.take_frame(frame(&["D", "E"]), |_| Ok(())).is_none());
        // The queue refuses B and E (say, Redis is away); the rest go in.
        let (push, refusals) = p.push(|op| match topic(&op) {
            "B" | "E" => TrySend::Refused(Error::Unavailable),
            _ => TrySend::Sent,
        });
        assert_eq!(push, Push::All);
        let got: Vec<(Vec<usize>, usize)> = refusals
            .iter()
            .map(|r| (r.refused.iter().map(|(i, _)| *i).collect(), r.of))
            .collect();
        assert_eq!(got, [(vec![1], 3), (vec![1], 2)]);
        assert_eq!(p.ack(), Some(3));
        assert_eq!(p.ack(), None, "acknowledged only when the count moves");
    }

    #[test]
    fn a_full_queue_keeps_the_rest_in_order_and_hands_nothing_twice() {
        let mut p = PublisherState::default();
        let _ = p.take_frame(frame(&["A", "B", "C", "D"]), |_| Ok(()));
        let mut sent = Vec::new();
        let room = std::cell::Cell::new(2);
        let mut send = |op: IngestOp| {
            if room.get() == 0 {
                return TrySend::Full(op);
            }
            room.set(room.get() - 1);
            sent.push(topic(&op).to_string());
            TrySend::Sent
        };
        assert_eq!(p.push(&mut send).0, Push::Blocked);
        assert!(p.is_blocked());
        room.set(10);
        assert_eq!(p.push(&mut send).0, Push::All);
        assert!(!p.is_blocked());
        assert_eq!(sent, ["A", "B", "C", "D"]);
        assert_eq!(p.ack(), Some(4));
    }

    #[test]
    fn refusals_at_the_frame_keep_the_good_updates_and_their_topics() {
        let mut p = PublisherState::default();
        let refused = p
            .take_frame(frame(&["A", "BAD", "C", "BAD"]), |item| match item {
                Item::Update(u) if u.topic == "BAD" => Err(Error::EmptyUpdate),
                _ => Ok(()),
            })
            .expect("two refused");
        assert_eq!(refused.of, 4);
        let idx: Vec<usize> = refused.refused.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, [1, 3]);
        let mut topics: Vec<String> = p.take_topics().iter().map(|t| t.to_string()).collect();
        topics.sort();
        assert_eq!(topics, ["A", "C"]);
    }

    #[test]
    fn shutdown_drops_what_waits() {
        let mut p = PublisherState::default();
        let _ = p.take_frame(frame(&["A", "B"]), |_| Ok(()));
        let (push, refusals) = p.push(|_| TrySend::Refused(Error::Closed));
        assert_eq!(push, Push::ShutDown);
        assert!(refusals.is_empty());
        assert!(!p.is_blocked());
    }
}
