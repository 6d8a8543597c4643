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
/// A shard whose mail is older than this takes longer (`mail_slice`).
const MAIL_SLICE: Duration = Duration::from_millis(8);

/// The longest a turn takes mail, however far behind the shard is, so
/// reading clients, accepting and timers still come round.
const MAIL_SLICE_MAX: Duration = Duration::from_millis(50);

/// How long a turn may take mail when the oldest update it has taken
/// entered the server `late` ago: [`MAIL_SLICE`] while the shard keeps up,
/// else as long as the mail is late, up to [`MAIL_SLICE_MAX`].
///
/// Why: a flush costs one `send` per connection with something queued, and
/// a send carrying ten frames costs about what one carrying one does (the
/// kernel's per-call path dominates). A shard that fell behind and still
/// flushed every 8 ms sent each connection the few frames 8 ms of
/// delivering gave it, so it never caught up: 10,000 subscribers at 2M
/// deliveries/s got 1.46M/s, about 10 frames per send, with latency
/// growing past 2 s (benches/fanout.sh). Its subscribers already wait as
/// long as the mail is late, so flushing less often costs them nothing,
/// and each send then carries more the further behind the shard is, until
/// it catches up; with this rule the same row delivers every update.
fn mail_slice(late: Duration) -> Duration {
    late.clamp(MAIL_SLICE, MAIL_SLICE_MAX)
}

/// When the slice of a turn that started at `start` ends, given a batch
/// it takes at `now`: later than `until` if that batch is late.
fn slice_end(start: Instant, until: Instant, batch: &[Arc<Encoded>], now: Instant) -> Instant {
    match batch.first() {
        Some(e) => until.max(start + mail_slice(now.saturating_duration_since(e.ingested_at))),
        None => until,
    }
}

/// Events delivered between two looks at the clock within a batch: a
/// router batch holds up to `batch_max` events, and with many members each
/// (wildcard subscribers far behind, whose updates are merged) one batch
/// took 17 ms of CPU in the soak's ramp, twice the slice.
const EVENTS_PER_CLOCK: usize = 64;

impl Shard {
    /// Takes up to `MAIL_BUDGET` messages, for at most `mail_slice` (one
    /// clock read per message and per `EVENTS_PER_CLOCK` events of a
    /// batch); more left means another look next turn (`pending.mail`),
    /// and a batch cut short is finished first then (`pending.rest`).
    pub(super) fn take_mail(&mut self) {
        self.pending.mail = false;
        let start = Instant::now();
        let mut until = start + MAIL_SLICE;
        if let Some((batch, from)) = self.pending.rest.take() {
            until = slice_end(start, until, &batch, start);
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
                    until = slice_end(start, until, &batch, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_that_keeps_up_flushes_every_mail_slice() {
        for late in [0, 1, 5, 8] {
            assert_eq!(mail_slice(Duration::from_millis(late)), MAIL_SLICE);
        }
    }

    #[test]
    fn a_shard_behind_takes_mail_as_long_as_it_is_late_up_to_the_cap() {
        assert_eq!(
            mail_slice(Duration::from_millis(20)),
            Duration::from_millis(20)
        );
        assert_eq!(
            mail_slice(Duration::from_millis(49)),
            Duration::from_millis(49)
        );
        assert_eq!(mail_slice(Duration::from_secs(2)), MAIL_SLICE_MAX);
    }
}
