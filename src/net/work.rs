//! What reading connections may cost in one loop turn, and what handling one
//! message reports back. Sans-IO: plain counters, driven by the shard's read
//! path and by the unit tests below.
//!
//! A message costs one, plus the topics a command lists or the updates a
//! publish frame carries. Handlers return that cost in an [`Outcome`]; the
//! read path charges it here. Two budgets bound a turn: one connection's
//! share ([`WORK_BUDGET`]) and all connections' together ([`TURN_BUDGET`]),
//! so one client's flood or many clients subscribing at once cannot hold
//! deliveries back for longer than about one budget.

use super::conn::Verdict;

/// Messages a client may send in one go before the shard turns to others.
pub(crate) const READ_BUDGET: usize = 64;

/// The same for a client that does not read what it is sent (bytes were
/// left in its queue: its socket was full at the last write), per
/// [`SLOW_READ_PERIOD`]: its pings, or anything else it floods, are read at
/// most 400 a second, and the rest waits in its socket (TCP slows the
/// client down), so it cannot buy shard time while making the server hold
/// its backlog.
pub(crate) const READ_BUDGET_BEHIND: usize = 4;
pub(crate) const SLOW_READ_PERIOD: std::time::Duration = std::time::Duration::from_millis(10);

/// Work one connection's messages may cost per loop turn. With the
/// per-command limit, one turn for one client stays within a few
/// milliseconds, and the rest of its input waits for the next turn.
pub(crate) const WORK_BUDGET: usize = 2_048;

/// Work all connections' messages may cost per loop turn: past it, the
/// connections not read yet wait for the next turn, after the shard has
/// delivered and flushed.
pub(crate) const TURN_BUDGET: usize = 16_384;

/// Wall time a loop turn may spend on work other than delivering and
/// writing (reading clients, accepting, wildcard joins and withdrawals)
/// before what is left waits for the next turn. Work counts alone do not
/// bound time: on a busy machine a thread that is preempted mid-turn, or a
/// command that costs more than its count says, stretched turns to tens of
/// milliseconds of silence for every other client of the shard.
pub(crate) const TURN_SLICE: std::time::Duration = std::time::Duration::from_millis(4);

/// What handling one message decided and cost.
#[must_use]
#[derive(Debug)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    /// Work units: the topics, resume points or updates it carried. A
    /// message is charged at least one whatever this says.
    pub cost: usize,
}

impl Outcome {
    /// Keep serving; the work done was `cost`.
    pub fn go_on(cost: usize) -> Self {
        Outcome {
            verdict: Verdict::Continue,
            cost,
        }
    }

    pub fn with(verdict: Verdict, cost: usize) -> Self {
        Outcome { verdict, cost }
    }
}

/// The work counters of one shard's loop turn.
#[derive(Default, Debug)]
pub(crate) struct WorkBudget {
    /// Spent by the connection being read.
    conn: usize,
    /// Spent by every connection read this turn.
    turn: usize,
    /// When this turn's slice for reading and other client work ends.
    deadline: Option<std::time::Instant>,
}

impl WorkBudget {
    /// A new loop turn: every connection may be read again.
    pub fn new_turn(&mut self) {
        self.turn = 0;
        self.conn = 0;
        self.deadline = Some(std::time::Instant::now() + TURN_SLICE);
    }

    /// True once the turn's time slice is spent (one clock read, ~25 ns;
    /// asked per message or per chunk of work, never per update).
    pub fn out_of_time(&self) -> bool {
        self.deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
    }

    /// True while the turn has room for another connection's messages.
    pub fn turn_has_room(&self) -> bool {
        self.turn < TURN_BUDGET && !self.out_of_time()
    }

    /// Starts reading one connection: its share is whole again.
    pub fn start_conn(&mut self) {
        self.conn = 0;
    }

    /// True while the connection being read may have another message read:
    /// always its first one (so every connection makes progress), then while
    /// its share and the turn's time last.
    pub fn conn_has_room(&self) -> bool {
        self.conn == 0 || (self.conn < WORK_BUDGET && !self.out_of_time())
    }

    /// Charges one handled message: its cost, and at least one.
    pub fn charge(&mut self, cost: usize) {
        let cost = cost.max(1);
        self.conn += cost;
        self.turn += cost;
    }

    /// How many messages a connection may have read in one go: fewer for
    /// one whose queue the socket did not take (`behind`).
    pub fn messages_for(behind: bool) -> usize {
        if behind {
            READ_BUDGET_BEHIND
        } else {
            READ_BUDGET
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_time_slice_a_turn_reads_one_message_per_connection_and_no_more_connections() {
        let mut w = WorkBudget::default();
        w.new_turn();
        assert!(w.turn_has_room() && !w.out_of_time());
        // The slice is spent (a slow command, or the thread was preempted).
        w.deadline = Some(std::time::Instant::now() - std::time::Duration::from_millis(1));
        assert!(w.out_of_time());
        assert!(
            !w.turn_has_room(),
            "the next connections wait for the next turn"
        );
        w.start_conn();
        assert!(
            w.conn_has_room(),
            "a connection being read gets its first message"
        );
        w.charge(1);
        assert!(!w.conn_has_room(), "then waits");
        w.new_turn();
        assert!(w.turn_has_room(), "a new turn, a new slice");
    }

    #[test]
    fn a_message_costs_at_least_one_even_when_it_carries_nothing() {
        let mut w = WorkBudget::default();
        for _ in 0..WORK_BUDGET {
            assert!(w.conn_has_room());
            w.charge(0);
        }
        assert!(!w.conn_has_room());
    }

    #[test]
    fn a_large_command_spends_the_connections_share_at_once() {
        let mut w = WorkBudget::default();
        w.start_conn();
        w.charge(WORK_BUDGET - 1);
        assert!(w.conn_has_room());
        w.charge(1);
        assert!(!w.conn_has_room(), "the share is spent, the rest waits");
    }

    #[test]
    fn each_connection_starts_with_its_whole_share_but_the_turn_keeps_count() {
        let mut w = WorkBudget::default();
        let per_conn = WORK_BUDGET;
        let mut read = 0;
        while w.turn_has_room() {
            w.start_conn();
            assert!(w.conn_has_room(), "a new connection gets its share");
            w.charge(per_conn);
            read += 1;
        }
        assert_eq!(
            read,
            TURN_BUDGET / WORK_BUDGET,
            "the turn ends after its budget"
        );
    }

    #[test]
    fn a_new_turn_lets_everyone_be_read_again() {
        let mut w = WorkBudget::default();
        w.charge(TURN_BUDGET);
        assert!(!w.turn_has_room());
        assert!(!w.conn_has_room());
        w.new_turn();
        assert!(w.turn_has_room());
        assert!(w.conn_has_room());
    }

    #[test]
    fn a_client_behind_on_reading_gets_a_smaller_read_share() {
        assert!(WorkBudget::messages_for(true) < WorkBudget::messages_for(false));
        assert_eq!(WorkBudget::messages_for(true), READ_BUDGET_BEHIND);
    }

    #[test]
    fn outcomes_carry_the_verdict_and_the_cost() {
        let o = Outcome::go_on(7);
        assert!(matches!(o.verdict, Verdict::Continue));
        assert_eq!(o.cost, 7);
        let why = crate::metrics::CloseReason::Protocol;
        let o = Outcome::with(Verdict::Drop(why), 1);
        assert!(matches!(o.verdict, Verdict::Drop(_)));
    }
}
