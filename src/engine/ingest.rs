//! The way in: publisher handles feeding the bounded ingest channel.

use super::update::{now_ns, Update};
use crate::error::{Error, Result};
use crossbeam_channel::{Sender, TrySendError};
use std::time::{Duration, Instant};

/// An update on its way to the router, stamped with when it entered the
/// channel (for the delivery-latency histogram).
pub(crate) struct Ingested {
    pub update: Update,
    pub at: Instant,
}

/// A cloneable, `Send` handle that publishes updates into a running server.
///
/// All clones feed one bounded channel drained by the router thread, so the
/// order of two updates from one thread is kept; updates from different threads
/// to one topic are sequenced in the order the router receives them.
#[derive(Clone, Debug)]
pub struct Publisher {
    tx: Sender<Ingested>,
    max_topic_len: usize,
}

impl Publisher {
    pub(crate) fn new(tx: Sender<Ingested>, max_topic_len: usize) -> Self {
        Publisher { tx, max_topic_len }
    }

    fn prepare(&self, mut update: Update) -> Result<Ingested> {
        update.validate(self.max_topic_len)?;
        if update.timestamp_ns == 0 {
            update.timestamp_ns = now_ns();
        }
        Ok(Ingested {
            update,
            at: Instant::now(),
        })
    }

    /// Queues an update, waiting while the ingest channel is full.
    ///
    /// Fails with `InvalidTopic`/`InvalidValue` for a bad update and `Closed`
    /// once the server has shut down.
    pub fn publish(&self, update: Update) -> Result<()> {
        let update = self.prepare(update)?;
        self.tx.send(update).map_err(|_| Error::Closed)
    }

    /// Queues an update or fails at once with `Full` when the channel is full.
    pub fn try_publish(&self, update: Update) -> Result<()> {
        let update = self.prepare(update)?;
        self.tx.try_send(update).map_err(|e| match e {
            TrySendError::Full(_) => Error::Full,
            TrySendError::Disconnected(_) => Error::Closed,
        })
    }

    /// Queues an update, waiting at most `timeout` for room; `Full` after that.
    pub fn publish_timeout(&self, update: Update, timeout: Duration) -> Result<()> {
        let update = self.prepare(update)?;
        self.tx.send_timeout(update, timeout).map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(_) => Error::Full,
            crossbeam_channel::SendTimeoutError::Disconnected(_) => Error::Closed,
        })
    }

    /// Queues several updates in order, waiting while the channel is full.
    /// Every update is checked before any is queued, so a bad one queues none.
    pub fn publish_batch(&self, updates: impl IntoIterator<Item = Update>) -> Result<()> {
        let ready = updates
            .into_iter()
            .map(|u| self.prepare(u))
            .collect::<Result<Vec<_>>>()?;
        for u in ready {
            self.tx.send(u).map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    /// Updates waiting in the ingest channel.
    pub fn queue_len(&self) -> usize {
        self.tx.len()
    }
}
