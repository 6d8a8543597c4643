//! A shard's mailbox: what other threads send it (the router's batches,
//! adopted connections, operator questions, reloads, interest events,
//! shutdown) and the handle that reaches it, a channel plus a waker.

use crate::engine::interest::Interest;
use crate::engine::link::{Encoded, Outlet};
use crossbeam_channel::Sender;
use mio::net::TcpStream;
use mio::{Token, Waker};
use std::sync::Arc;

/// The token of every shard's `mio::Waker`.
pub(crate) const WAKER: Token = Token(usize::MAX - 2);

/// Which listener accepted a connection, so the shard that adopts it knows
/// whether to start a TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// `ws://`.
    Plain,
    /// `wss://`.
    Tls,
}

/// What other threads send a shard.
pub(crate) enum ShardMsg {
    /// Sequenced, encoded updates for topics this shard has subscribers for.
    Deliver(Vec<Arc<Encoded>>),
    /// A connection accepted by the accepting shard, for this shard to serve.
    Adopt(TcpStream, Listener),
    /// Close every connection with 1001 and exit.
    Shutdown,
    /// An operator's question (`/admin/…`), answered on the sender.
    Admin(
        crate::admin::AdminQuery,
        crossbeam_channel::Sender<crate::admin::AdminReply>,
    ),
    /// A topic or pattern gained its first subscriber or lost its last:
    /// for this shard's `/publish` connections.
    Interest(Arc<Interest>),
    /// Reloaded settings, for new connections and limits from now on;
    /// the shard answers on the sender once they are in force.
    Reload(Arc<crate::net::live::Live>, crossbeam_channel::Sender<()>),
}

/// How to reach a shard from another thread.
#[derive(Clone)]
pub(crate) struct ShardLink {
    pub tx: Sender<ShardMsg>,
    pub waker: Arc<Waker>,
}

impl ShardLink {
    /// Sends `msg`, waiting while the mailbox is full, and wakes the shard.
    /// False when the shard is gone (it dropped its mailbox).
    pub fn send(&self, msg: ShardMsg) -> bool {
        let sent = self.tx.send(msg).is_ok();
        if sent {
            let _ = self.waker.wake();
        }
        sent
    }

    /// Sends `msg` if there is room now and wakes the shard; otherwise
    /// (full, or the shard is gone) hands it back. For shards and other
    /// threads that must not wait.
    pub fn try_send(&self, msg: ShardMsg) -> Result<(), ShardMsg> {
        match self.tx.try_send(msg) {
            Ok(()) => {
                let _ = self.waker.wake();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }
}

impl Outlet for ShardLink {
    fn deliver(&self, batch: Vec<Arc<Encoded>>) {
        self.send(ShardMsg::Deliver(batch));
    }
}
