//! The shard's mailbox: router batches to deliver, sockets dealt to it,
//! shutdown, operator queries, interest events for publishers, reloads.
//! Taken a bounded number of messages per turn, so a flood of batches
//! cannot hold back flushing and reading.

use super::{Shard, ShardMsg};
use crate::engine::link::Encoded;
use crossbeam_channel::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Mailbox messages taken per turn before flushing.
const MAIL_BUDGET: usize = 256;

/// Wall time a turn may spend taking mail before it flushes what it has:
/// delivering is the shard's job, so this is longer than the slice for
/// other work, but a turn that delivered for 15 ms wrote nothing for 15 ms.
const MAIL_SLICE: Duration = Duration::from_millis(8);

/// Events delivered between two looks at the clock within a batch: a
/// router batch holds up to `batch_max` events, and with many members each
/// (wildcard subscribers far behind, whose updates are merged) one batch
/// took 17 ms of CPU in the soak's ramp, twice the slice.
const EVENTS_PER_CLOCK: usize = 64;

impl Shard {
    /// Takes up to `MAIL_BUDGET` messages, for at most `MAIL_SLICE` (one
    /// clock read per message and per `EVENTS_PER_CLOCK` events of a
    /// batch); more left means another look next turn (`pending.mail`),
    /// and a batch cut short is finished first then (`pending.rest`).
    pub(super) fn take_mail(&mut self) {
        self.pending.mail = false;
        let start = Instant::now();
        let until = start + MAIL_SLICE;
        if let Some((batch, from)) = self.pending.rest.take() {
            if !self.deliver_batch(batch, from, start, until) {
                return;
            }
        }
        for n in 0..MAIL_BUDGET {
            let now = Instant::now();
            if n > 0 && now >= until {
                break;
            }
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    if !self.deliver_batch(batch, 0, now, until) {
                        return;
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

    /// Delivers `batch` from event `from` on; false when the slice ran out
    /// first, with the rest kept for the next turn. One clock read per
    /// `EVENTS_PER_CLOCK` events: pacing decisions microseconds apart share
    /// it. Delivering allocates nothing per subscriber (see `deliver`).
    fn deliver_batch(
        &mut self,
        batch: Vec<Arc<Encoded>>,
        from: usize,
        mut now: Instant,
        until: Instant,
    ) -> bool {
        let mut i = from;
        while i < batch.len() {
            let end = batch.len().min(i + EVENTS_PER_CLOCK);
            for enc in &batch[i..end] {
                self.deliver(enc, now);
            }
            i = end;
            if i < batch.len() {
                now = Instant::now();
                if now >= until || crate::faults::armed(crate::faults::Fault::CutBatches) {
                    self.pending.rest = Some((batch, i));
                    self.pending.mail = true;
                    return false;
                }
            }
        }
        true
    }
}
