//! Fan-out: taking the router's batches, appending each shared frame to every
//! local subscriber's queue, and writing every dirty connection once per
//! iteration under the backlog rules (conflation, hard limit, slow consumers).

use super::{Shard, ShardMsg};
use crate::engine::link::{Encoded, Event};
use crate::metrics::CloseReason;
use crate::net::backlog::{Offer, Pressure};
use crate::net::conn::Verdict;
use crate::net::index::later;
use crate::net::outbound::{Flushed, Tally};
use crate::wire::Format;
use crossbeam_channel::TryRecvError;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Router messages taken per iteration before flushing.
const CHANNEL_BUDGET: usize = 256;

impl Shard {
    pub(super) fn drain_channel(&mut self) {
        self.pending.channel = false;
        for _ in 0..CHANNEL_BUDGET {
            match self.rx.try_recv() {
                Ok(ShardMsg::Deliver(batch)) => {
                    for enc in &batch {
                        self.deliver(enc);
                    }
                }
                Ok(ShardMsg::Adopt(sock, tls)) => self.adopt(sock, tls),
                Ok(ShardMsg::Shutdown) => self.begin_shutdown(),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return,
            }
        }
        self.pending.channel = true;
    }

    /// Appends one event's shared frame to the queue of every local
    /// subscriber of its topic.
    ///
    /// Hot path: no serialization and no allocation per subscriber (a copy into
    /// each connection's reused queue), no lock, no syscall; the write happens
    /// once per connection per iteration in `flush_dirty`. A subscriber whose
    /// queue is past the conflation mark has the update held back and merged
    /// instead (`Backlog::offer`) until its queue drains.
    fn deliver(&mut self, enc: &Arc<Encoded>) {
        let conflate_at = self.limits.conflate_at;
        let server_rate = self.shared.config.max_rate;
        let now = Instant::now();
        let Some(lt) = self.index.members_for(&enc.topic, enc.generation) else {
            // Nobody here wants it any more (a wildcard left between the
            // topic's creation and its first delivery): withdraw the interest
            // it inherited, or the router would keep sending it.
            for fmt in Format::ALL {
                if enc.frames[fmt.index()].is_some() {
                    self.table.leave_exact(&enc.topic, self.id, fmt);
                }
            }
            return;
        };
        if matches!(enc.event, Event::Cleared) && later(enc.generation, lt.generation) {
            lt.generation = enc.generation;
        }
        let mut frames = 0;
        let mut conflated = 0;
        for m in lt.members.iter_mut() {
            let Some(frame) = enc.frames[m.fmt.index()].as_deref() else {
                continue;
            };
            let Some(conn) = self.conns.get_mut(m.token()) else {
                continue;
            };
            match enc.event {
                Event::Update { .. } => {
                    // Already in its snapshot, or of a numbering it is not in.
                    if enc.seq <= m.skip_through || m.generation != enc.generation {
                        continue;
                    }
                    // Rate caps: looked up once per connection and topic, and
                    // only for connections that have one.
                    let interval = if server_rate.is_some() || conn.subs.has_rates() {
                        conn.backlog.interval(&enc.topic).unwrap_or_else(|| {
                            let iv = conn.subs.interval_for(&enc.topic, server_rate);
                            conn.backlog.set_interval(&enc.topic, iv);
                            iv
                        })
                    } else {
                        None
                    };
                    let out = &mut conn.out;
                    match conn
                        .backlog
                        .offer(out, enc, frame, conflate_at, interval, now)
                    {
                        Offer::Parked { merged } => {
                            conflated += u64::from(merged);
                            continue;
                        }
                        Offer::Paced { due } => {
                            conflated += 1;
                            if let Some(at) = due {
                                let key = (at, m.token(), conn.id, enc.topic.clone());
                                self.timers.pace.push(Reverse(key));
                            }
                            continue;
                        }
                        Offer::Queued => frames += 1,
                    }
                }
                Event::Status { .. } => {
                    if m.generation != enc.generation {
                        continue;
                    }
                    // After the topic's held-back update, if any: in order.
                    let topic = &enc.topic;
                    conn.backlog
                        .send_held(&mut conn.out, &mut self.fb, conn.format, topic);
                    conn.out.push(frame);
                }
                Event::Cleared => {
                    // A member that joined after this clear is in the new
                    // numbering already; every other starts it now.
                    if !later(enc.generation, m.generation) {
                        continue;
                    }
                    m.generation = enc.generation;
                    m.skip_through = 0;
                    conn.backlog.forget(&enc.topic);
                    conn.out.push(frame);
                }
            }
            if !conn.dirty {
                conn.dirty = true;
                self.pending.dirty.push(m.token());
            }
        }
        let metrics = &self.shared.metrics.shards[self.id];
        metrics.frames.fetch_add(frames, Ordering::Relaxed);
        if conflated > 0 {
            metrics.conflated.fetch_add(conflated, Ordering::Relaxed);
        }
    }

    /// Writes every connection with queued bytes, once each, and applies the
    /// backlog rules to what is left: release conflated updates once the
    /// queue drains, close a consumer that stays over the hard limit.
    pub(super) fn flush_dirty(&mut self) {
        let limits = self.limits;
        let mut tally = Tally::default();
        let now = Instant::now();
        let metrics = &self.shared.metrics.shards[self.id];
        let mut ended = Vec::new();
        for token in std::mem::take(&mut self.pending.dirty) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut res = conn.flush(&mut tally);
            if res.is_ok()
                && conn.backlog.release(
                    &mut conn.out,
                    &mut self.fb,
                    conn.format,
                    limits.conflate_at,
                )
            {
                res = conn.flush(&mut tally);
            }
            let pending = conn.out.pending();
            let delta = pending as i64 - conn.reported_pending as i64;
            if delta != 0 {
                metrics.queued_bytes.fetch_add(delta, Ordering::Relaxed);
                conn.reported_pending = pending;
            }
            let Ok(flushed) = res else {
                ended.push((token, Verdict::Drop(CloseReason::Io)));
                continue;
            };
            if flushed == Flushed::All {
                if let Some(at) = conn.backlog.take_oldest() {
                    metrics.observe_latency(now.saturating_duration_since(at));
                }
                if conn.write_done() && conn.drain() {
                    ended.push((token, Verdict::Drop(CloseReason::Client)));
                }
            }
            match conn.backlog.after_flush(flushed, pending, now, &limits) {
                Pressure::Fine | Pressure::Waiting => {}
                Pressure::CutOff => ended.push((token, Verdict::Drop(CloseReason::SlowConsumer))),
                Pressure::SlowConsumer if conn.is_open() => {
                    log::info!(
                        "shard {}: closing slow consumer with {pending} bytes queued",
                        self.id
                    );
                    ended.push((
                        token,
                        Verdict::policy(
                            "slow consumer: outbound queue over its limit for too long",
                            CloseReason::SlowConsumer,
                        ),
                    ));
                }
                Pressure::SlowConsumer => {}
            }
        }
        metrics.bytes.fetch_add(tally.bytes, Ordering::Relaxed);
        metrics.writes.fetch_add(tally.writes, Ordering::Relaxed);
        for (token, verdict) in ended {
            self.settle(token, verdict);
        }
    }
}
