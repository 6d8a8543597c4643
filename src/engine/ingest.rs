//! The way in: publisher handles feeding the bounded ingest channel.

use super::inbox::Inbox;
use super::op::{IngestOp, Ingested};
use super::table::TopicTable;
use crate::error::{Error, Result};
use crate::model::liveness::Liveness;
use crate::model::topic_name::validate_topic;
use crate::model::update::{now_ns, Update};
use crossbeam_channel::{SendTimeoutError, TrySendError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cloneable, `Send` handle that publishes updates into a running server.
///
/// Each update goes to the bounded channel of its topic's router (one per
/// `routers`), so the order of two updates of one topic from one thread is
/// kept; updates from different threads to one topic are sequenced in the
/// order that router receives them.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// The routers' channels (in cluster mode, the one to the link's
    /// writer): each update goes to its topic's.
    inbox: Inbox,
    max_topic_len: usize,
    /// For the `max_topics` check: an atomic load until the table is full.
    table: Arc<TopicTable>,
    /// Cluster mode: set while what drains `tx` reaches Redis. When it is
    /// not, a full channel fails at once with `Unavailable` instead of
    /// waiting.
    sink_up: Option<Arc<AtomicBool>>,
}

/// How often a publisher waiting for room looks whether the sink went down.
const SINK_CHECK: Duration = Duration::from_millis(100);

/// What `Publisher::try_send_op` did with an operation.
pub(crate) enum TrySend {
    /// It is in the ingest channel.
    Sent,
    /// The channel is full: here it is back, to try again without a copy.
    Full(IngestOp),
    /// Refused for good (invalid, `max_topics`, Redis away, shut down).
    Refused(Error),
}

impl Publisher {
    pub(crate) fn new(inbox: Inbox, max_topic_len: usize, table: Arc<TopicTable>) -> Self {
        Publisher {
            inbox,
            max_topic_len,
            table,
            sink_up: None,
        }
    }

    /// One of the server's extra fields (`[fields] extra`), by name; None
    /// when the server has no field of that name.
    pub fn field(&self, name: &str) -> Option<crate::model::update::Field> {
        crate::model::update::Field::named(name, self.table.field_names())
    }

    /// Cluster mode: `up` says when the channel's reader reaches Redis
    /// (see `sink_up`).
    pub(crate) fn with_sink_state(mut self, up: Arc<AtomicBool>) -> Self {
        self.sink_up = Some(up);
        self
    }

    fn sink_is_down(&self) -> bool {
        self.sink_up
            .as_ref()
            .is_some_and(|u| !u.load(Ordering::Relaxed))
    }

    /// Sends, waiting while the channel is full, for at most `limit`
    /// (`Full` then); while the sink is down a full channel is
    /// `Unavailable` at once.
    fn send_waiting(&self, op: Ingested, limit: Option<Duration>) -> Result<()> {
        let deadline = limit.map(|l| Instant::now() + l);
        let mut op = op;
        loop {
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SINK_CHECK),
                None => SINK_CHECK,
            };
            match self.inbox.for_op(&op.op).send_timeout(op, wait) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Disconnected(_)) => return Err(Error::Closed),
                Err(SendTimeoutError::Timeout(back)) => {
                    if self.sink_is_down() {
                        return Err(Error::Unavailable);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Full);
                    }
                    op = back;
                }
            }
        }
    }

    fn full(&self) -> Error {
        if self.sink_is_down() {
            Error::Unavailable
        } else {
            Error::Full
        }
    }

    fn prepare(&self, mut update: Update) -> Result<Ingested> {
        update.validate(self.max_topic_len)?;
        self.table.admits(&update.topic)?;
        if update.timestamp_ns == 0 {
            update.timestamp_ns = now_ns();
        }
        Ok(Ingested::update(update))
    }

    /// Sends a topic operation, waiting while the channel is full.
    fn control(&self, topic: &str, op: impl FnOnce(String) -> IngestOp) -> Result<()> {
        validate_topic(topic, self.max_topic_len)?;
        let op = Ingested {
            op: op(topic.to_string()),
            at: Instant::now(),
        };
        self.send_waiting(op, None)
    }

    /// Sends an operation if there is room now (shards must not block).
    /// Updates are checked and stamped as `try_publish` does. When the
    /// channel is full the operation comes back with `Full`, to be tried
    /// again without a copy.
    pub(crate) fn try_send_op(&self, op: IngestOp) -> TrySend {
        let op = match op {
            IngestOp::Update(u) => match self.prepare(u) {
                Ok(op) => op,
                Err(e) => return TrySend::Refused(e),
            },
            op => Ingested {
                op,
                at: Instant::now(),
            },
        };
        match self.inbox.for_op(&op.op).try_send(op) {
            Ok(()) => TrySend::Sent,
            Err(TrySendError::Full(back)) => match self.full() {
                Error::Full => TrySend::Full(back.op),
                other => TrySend::Refused(other),
            },
            Err(TrySendError::Disconnected(_)) => TrySend::Refused(Error::Closed),
        }
    }

    /// Clears a topic: subscribers get a `cleared` event, the topic leaves
    /// the `topics` list, its value and history are freed, and its next
    /// update starts a new epoch at `seq` 1. Subscriptions stay in place.
    /// In order with this handle's updates; waits while the channel is full.
    pub fn clear(&self, topic: &str) -> Result<()> {
        self.control(topic, IngestOp::Clear)
    }

    /// Marks a topic stale: subscribers get a `status` event with state
    /// `stale`, and snapshots say `"stale": true`, until its next update or
    /// [`Publisher::mark_live`].
    pub fn mark_stale(&self, topic: &str) -> Result<()> {
        self.control(topic, |t| IngestOp::Stale(t, Liveness::Stale))
    }

    /// Marks a stale topic live again without an update.
    pub fn mark_live(&self, topic: &str) -> Result<()> {
        self.control(topic, |t| IngestOp::Stale(t, Liveness::Live))
    }

    /// Sets how long this topic may go without an update before it is marked
    /// stale (None: the server's `stale_after`).
    pub fn set_stale_after(&self, topic: &str, after: Option<Duration>) -> Result<()> {
        self.control(topic, |t| IngestOp::StaleAfter(t, after))
    }

    /// Queues an update, waiting while the ingest channel is full.
    ///
    /// Fails with `InvalidTopic`/`InvalidValue` for a bad update and `Closed`
    /// once the server has shut down. In cluster mode, while Redis cannot be
    /// reached, updates are queued (and sent once it can) until the queue
    /// is full; then this fails with `Unavailable` instead of waiting.
    pub fn publish(&self, update: Update) -> Result<()> {
        let update = self.prepare(update)?;
        if self.sink_up.is_none() {
            return match self.inbox.send(update) {
                true => Ok(()),
                false => Err(Error::Closed),
            };
        }
        self.send_waiting(update, None)
    }

    /// Queues an update or fails at once with `Full` when the channel is full.
    pub fn try_publish(&self, update: Update) -> Result<()> {
        let update = self.prepare(update)?;
        self.inbox
            .for_op(&update.op)
            .try_send(update)
            .map_err(|e| match e {
                TrySendError::Full(_) => self.full(),
                TrySendError::Disconnected(_) => Error::Closed,
            })
    }

    /// Queues an update, waiting at most `timeout` for room; `Full` after that.
    pub fn publish_timeout(&self, update: Update, timeout: Duration) -> Result<()> {
        let update = self.prepare(update)?;
        self.send_waiting(update, Some(timeout))
    }

    /// Queues several updates in order, waiting while the channel is full.
    /// Every update is checked before any is queued, so a bad one queues none.
    /// (`Unavailable`, in cluster mode, may come after some were queued.)
    pub fn publish_batch(&self, updates: impl IntoIterator<Item = Update>) -> Result<()> {
        let ready = updates
            .into_iter()
            .map(|u| self.prepare(u))
            .collect::<Result<Vec<_>>>()?;
        for u in ready {
            self.send_waiting(u, None)?;
        }
        Ok(())
    }

    /// Updates waiting in the ingest channel.
    pub fn queue_len(&self) -> usize {
        self.inbox.len()
    }
}
