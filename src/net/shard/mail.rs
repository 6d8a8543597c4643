//! The shard's mailbox: router batches to deliver, sockets dealt to it,
//! shutdown, operator queries, interest events for publishers, reloads.
//! Taken a bounded number of messages per turn, so a flood of batches
//! cannot hold back flushing and reading.

use super::{Shard, ShardMsg};
use crossbeam_channel::TryRecvError;

/// Mailbox messages taken per turn before flushing.
const MAIL_BUDGET: usize = 256;

/// Wall time a turn may spend taking mail before it flushes what it has:
/// delivering is the shard's job, so this is longer than the slice for
/// other work, but a turn that delivered for 15 ms wrote nothing for 15 ms.
const MAIL_SLICE: std::time::Duration = std::time::Duration::from_millis(8);

impl Shard {
    /// Takes up to `MAIL_BUDGET` messages, for at most `MAIL_SLICE` (one
    /// clock read per message, a batch of updates); more left means
    /// another look next turn (`pending.mail`).
    pub(super) fn take_mail(&mut self) {
        self.pending.mail = false;
        let until = std::time::Instant::now() + MAIL_SLICE;
        for n in 0..MAIL_BUDGET {
            let now = std::time::Instant::now();
            if n > 0 && now >= until {
                break;
            }
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    // One clock read per batch, not per event: pacing
                    // decisions within a batch a few microseconds apart
                    // share it.
                    for enc in &batch {
                        self.deliver(enc, now);
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
