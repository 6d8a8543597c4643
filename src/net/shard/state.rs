//! What the shard loop carries between iterations: pending work and timers.

use crate::net::timer::DeadlineQueue;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work left over from an iteration whose budget ran out, or found by events.
#[derive(Default)]
pub(super) struct Pending {
    pub accept: bool,
    /// The mailbox has messages (the waker fired, or a budget left some).
    pub mail: bool,
    /// Connections with more to read than one iteration's budget.
    pub reread: Vec<usize>,
    /// Connections with bytes to write this iteration, each listed once.
    pub dirty: Vec<usize>,
    /// Publisher connections waiting for room in the ingest queue.
    pub blocked: Vec<usize>,
    /// Topics of publishers gone away, to mark stale once the queue has room.
    pub stale_marks: Vec<Arc<str>>,
    /// Wildcard joins of connections that can take more, or withdrawals,
    /// left for the next turn.
    pub index_work: bool,
    /// Operator requests waiting for the shards' answers.
    pub admin: Vec<AdminWait>,
    /// Cluster mode: subscribes waiting for the node to follow their topics.
    pub follows: Vec<super::cluster::FollowWait>,
    /// A router batch the mail slice cut short, and where it stopped: the
    /// rest is delivered first next turn (before any later mail, so each
    /// router's order holds). `mail` stays set while it is here.
    pub rest: Option<(Vec<Arc<crate::engine::link::Encoded>>, usize)>,
}

impl Pending {
    /// Work that waits on other threads (the router, other shards): the
    /// loop looks again within a millisecond.
    pub fn waits(&self) -> bool {
        !self.blocked.is_empty()
            || !self.stale_marks.is_empty()
            || self.index_work
            || !self.admin.is_empty()
            || !self.follows.is_empty()
    }
}

/// An operator request (`/admin/…`) on connection `token`, waiting for the
/// answers of `expected` shards until `deadline`.
pub(super) struct AdminWait {
    pub token: usize,
    pub conn_id: u64,
    pub request: crate::net::http::AdminRequest,
    pub rx: crossbeam_channel::Receiver<crate::admin::AdminReply>,
    pub expected: usize,
    pub replies: Vec<crate::admin::AdminReply>,
    pub deadline: Instant,
}

/// A rate-capped update's slot: (when, slab key, connection id, topic).
pub(super) type PaceTimer = Reverse<(Instant, usize, u64, Arc<str>)>;

/// A rate-cap group's slot: (when, the group's interval, topic).
pub(super) type GroupTimer = Reverse<(Instant, u32, Arc<str>)>;

/// Rate-cap groups' slots, and how many groups hold an update back (each a
/// boxed merged update the shard counts in its queued-bytes gauge, since
/// no connection holds it).
#[derive(Default)]
pub(super) struct GroupTimers {
    pub heap: BinaryHeap<GroupTimer>,
    pub held: u64,
    /// Bytes last added to the gauge for them.
    reported: i64,
}

impl GroupTimers {
    /// A group started holding an update back, due `at`.
    pub fn held_until(&mut self, at: Instant, every: u32, topic: Arc<str>) {
        self.heap.push(Reverse((at, every, topic)));
        self.held += 1;
    }

    /// A group's held update was taken (released, or dropped).
    pub fn taken(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// `n` held updates went with their topics' entries.
    pub fn dropped(&mut self, n: u64) {
        self.held = self.held.saturating_sub(n);
    }

    /// What to add to the shard's queued-bytes gauge for what the groups
    /// hold now (counted against `max_total_outbound_bytes` with what
    /// connections hold).
    pub fn report(&mut self) -> i64 {
        let now = (self.held as usize * crate::net::pace_group::HELD_BYTES) as i64;
        now - std::mem::replace(&mut self.reported, now)
    }
}

/// Deadlines the loop wakes up for.
pub(super) struct Timers {
    pub handshakes: DeadlineQueue,
    pub closings: DeadlineQueue,
    /// When the heartbeat sweep runs next.
    pub next_sweep: Instant,
    pub shutdown: Option<Instant>,
    /// Out of descriptors with no spare to answer with: accept again then.
    pub accept_retry: Option<Instant>,
    /// When the server-wide memory budget is next checked.
    pub next_budget_check: Instant,
    /// Rate-capped updates waiting for their slot, earliest first.
    pub pace: BinaryHeap<PaceTimer>,
    /// Rate-cap groups' held-back updates waiting for their slot.
    pub groups: GroupTimers,
    /// Connections that do not read what they are sent, with more input
    /// than their per-turn share: read again at `slow_read_at`.
    pub slow_reads: Vec<usize>,
    pub slow_read_at: Option<Instant>,
    /// Connections whose byte budget holds updates back: when it has room
    /// again, (when, slab key, connection id), earliest first.
    pub budget: BinaryHeap<Reverse<(Instant, usize, u64)>>,
}

impl Timers {
    /// The earliest of the rate-capped updates' slots, the byte budgets'
    /// and the slow reads.
    pub fn next_due(&self) -> Option<Instant> {
        let pace = self.pace.peek().map(|Reverse((at, ..))| *at);
        let budget = self.budget.peek().map(|Reverse((at, ..))| *at);
        let groups = self.groups.heap.peek().map(|Reverse((at, ..))| *at);
        pace.into_iter()
            .chain(budget)
            .chain(groups)
            .chain(self.slow_read_at)
            .min()
    }
}

/// How long the loop may sleep in `poll`: not at all with work pending,
/// a millisecond while it waits on other threads, else until the earliest
/// deadline, and at most a second.
pub(super) fn poll_timeout(p: &Pending, t: &Timers, now: Instant) -> Duration {
    if p.accept || p.mail || !p.reread.is_empty() || !p.dirty.is_empty() {
        // Dirty here means the timers queued something (a ping, a
        // close): write it now, not at the next event.
        return Duration::ZERO;
    }
    if p.waits() {
        // Waiting on the router or other shards: look again soon.
        return Duration::from_millis(1);
    }
    let next = [
        t.handshakes.next(),
        t.closings.next(),
        t.shutdown,
        t.accept_retry,
        Some(t.next_sweep),
        t.next_due(),
    ]
    .into_iter()
    .flatten()
    .min();
    next.map_or(Duration::from_secs(1), |at| {
        at.saturating_duration_since(now)
            .min(Duration::from_secs(1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_groups_hold_is_reported_as_it_changes() {
        let mut g = GroupTimers::default();
        let at = Instant::now();
        assert_eq!(g.report(), 0);
        g.held_until(at, 100, "a".into());
        g.held_until(at, 100, "b".into());
        let two = 2 * crate::net::pace_group::HELD_BYTES as i64;
        assert_eq!(g.report(), two);
        assert_eq!(g.report(), 0, "nothing changed since");
        g.taken();
        g.taken();
        g.taken();
        assert_eq!(g.report(), -two, "back to nothing, never below");
    }

    fn timers(now: Instant) -> Timers {
        Timers {
            handshakes: DeadlineQueue::new(Duration::from_secs(5)),
            closings: DeadlineQueue::new(Duration::from_secs(2)),
            next_sweep: now + Duration::from_secs(1),
            shutdown: None,
            accept_retry: None,
            next_budget_check: now,
            pace: BinaryHeap::new(),
            groups: GroupTimers::default(),
            slow_reads: Vec::new(),
            slow_read_at: None,
            budget: BinaryHeap::new(),
        }
    }

    #[test]
    fn pending_work_means_no_sleep() {
        let now = Instant::now();
        let t = timers(now);
        let mut p = Pending::default();
        p.dirty.push(3);
        assert_eq!(poll_timeout(&p, &t, now), Duration::ZERO);
        let p = Pending {
            accept: true,
            ..Pending::default()
        };
        assert_eq!(poll_timeout(&p, &t, now), Duration::ZERO);
    }

    #[test]
    fn waiting_on_other_threads_polls_every_millisecond() {
        let now = Instant::now();
        let mut p = Pending::default();
        p.stale_marks.push("a".into());
        assert_eq!(
            poll_timeout(&p, &timers(now), now),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn an_idle_loop_sleeps_until_the_earliest_deadline() {
        let now = Instant::now();
        let mut t = timers(now);
        t.handshakes.push(now - Duration::from_millis(4_700), 1, 1);
        assert_eq!(
            poll_timeout(&Pending::default(), &t, now),
            Duration::from_millis(300)
        );
        t.slow_read_at = Some(now + Duration::from_millis(10));
        assert_eq!(
            poll_timeout(&Pending::default(), &t, now),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn an_idle_loop_sleeps_at_most_a_second() {
        let now = Instant::now();
        let mut t = timers(now);
        t.next_sweep = now + Duration::from_secs(60);
        assert_eq!(
            poll_timeout(&Pending::default(), &t, now),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_next_paced_update_or_slow_read_is_due_first() {
        let now = Instant::now();
        let mut t = timers(now);
        assert_eq!(t.next_due(), None);
        let later = now + Duration::from_millis(50);
        t.pace.push(Reverse((later, 1, 1, "x".into())));
        t.pace
            .push(Reverse((now + Duration::from_millis(80), 2, 2, "y".into())));
        assert_eq!(t.next_due(), Some(later));
        t.slow_read_at = Some(now + Duration::from_millis(5));
        assert_eq!(t.next_due(), Some(now + Duration::from_millis(5)));
    }
}
