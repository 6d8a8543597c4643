//! The shard's mailbox: router batches to deliver, sockets dealt to it,
//! shutdown, operator queries, interest events for publishers, reloads.
//! Taken a bounded number of messages per turn, so a flood of batches
//! cannot hold back flushing and reading.

use super::{Shard, ShardMsg};
use crossbeam_channel::TryRecvError;

/// Mailbox messages taken per turn before flushing.
const MAIL_BUDGET: usize = 256;

impl Shard {
    /// Takes up to `MAIL_BUDGET` messages; more left means another look
    /// next turn (`pending.mail`).
    pub(super) fn take_mail(&mut self) {
        self.pending.mail = false;
        for _ in 0..MAIL_BUDGET {
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    for enc in &batch {
                        self.deliver(enc);
                    }
                }
                Ok(ShardMsg::Adopt(sock, tls)) => self.adopt(sock, tls),
                Ok(ShardMsg::Shutdown) => self.begin_shutdown(),
                Ok(ShardMsg::Admin(q, reply)) => self.answer_admin(q, reply),
                Ok(ShardMsg::Interest(e)) => self.tell_publishers(&e),
                Ok(ShardMsg::Reload(live, done)) => {
                    self.reload(live);
                    let _ = done.try_send(());
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
        self.pending.mail = true;
    }
}
