//! Whether a subscribe's snapshots fit: what they would queue at once,
//! estimated before any is taken, against the connection's limit and the
//! server's budget for all connections (sans-IO: numbers in, a decision
//! out; the shard refuses the subscribe with the message).
//!
//! Counted at once: the snapshots of exact topics and of resumed ones. A
//! wildcard's other snapshots stream out as the client reads, a chunk at a
//! time (`ShardIndex::advance_joins`), so they are not.

use crate::engine::selector::Selector;
use crate::model::book::is_book;
use crate::wire::event::ErrorCode;

/// A snapshot event's size without its topic name, by estimate (JSON with a
/// few fields; MessagePack is smaller).
pub(crate) const SNAPSHOT_BYTES: usize = 96;

/// One `[price, size]` level of a book snapshot, by estimate.
pub(crate) const LEVEL_BYTES: usize = 40;

/// What a subscribe's snapshots would queue at once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SnapshotCost {
    /// Snapshots counted (exact topics and resume points).
    pub topics: usize,
    /// Their bytes, by estimate.
    pub bytes: usize,
}

/// The cost of subscribing to `sels`, resuming `resumed` (topic names),
/// with books at `depth` levels a side.
pub(crate) fn snapshot_cost<'a>(
    sels: &'a [Selector],
    resumed: impl Iterator<Item = &'a str>,
    depth: usize,
) -> SnapshotCost {
    let exact = sels.iter().filter_map(|sel| match sel {
        Selector::Exact(t) => Some(&**t),
        Selector::Prefix(_) => None,
    });
    let mut cost = SnapshotCost {
        topics: 0,
        bytes: 0,
    };
    for name in exact.clone().chain(resumed) {
        cost.topics += 1;
        cost.bytes += SNAPSHOT_BYTES + name.len();
    }
    // A book's snapshot lists up to `depth` levels a side.
    let books = exact.filter(|t| is_book(t)).count();
    cost.bytes += books * depth * 2 * LEVEL_BYTES;
    cost
}

/// Where the snapshots would go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    /// What the connection holds now.
    pub held_by_conn: usize,
    /// Its limit (`max_outbound_bytes`).
    pub conn_limit: usize,
    /// What all connections hold now.
    pub held_by_all: usize,
    /// The server's budget (`max_total_outbound_bytes`).
    pub budget: usize,
}

/// Ok when the snapshots fit both the connection's limit and the server's
/// budget; else the error code and a message that says what to do.
pub(crate) fn check_room(cost: &SnapshotCost, room: Room) -> Result<(), (ErrorCode, String)> {
    let SnapshotCost { topics, bytes } = *cost;
    let estimate = room.held_by_conn + bytes;
    if estimate > room.conn_limit {
        let hard = room.conn_limit;
        let message = format!(
            "the snapshots of {topics} topics (about {estimate} bytes with what is queued) \
             would pass the per-connection limit of {hard} bytes; subscribe to narrower patterns"
        );
        return Err((ErrorCode::SnapshotTooLarge, message));
    }
    if room.held_by_all + bytes > room.budget {
        let (held, budget) = (room.held_by_all, room.budget);
        let message = format!(
            "the server holds {held} bytes for its connections; the snapshots of {topics} \
             topics (about {bytes} bytes) would pass its budget of {budget} bytes: try again later"
        );
        return Err((ErrorCode::SnapshotTooLarge, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(t: &str) -> Selector {
        Selector::Exact(t.into())
    }

    const ROOMY: Room = Room {
        held_by_conn: 0,
        conn_limit: 1 << 20,
        held_by_all: 0,
        budget: 1 << 30,
    };

    #[test]
    fn exact_topics_and_resume_points_count_wildcards_do_not() {
        let sels = [exact("AAPL"), Selector::Prefix("FX.".into())];
        let cost = snapshot_cost(&sels, ["MSFT"].into_iter(), 10);
        assert_eq!(cost.topics, 2);
        assert_eq!(cost.bytes, 2 * SNAPSHOT_BYTES + 4 + 4);
    }

    #[test]
    fn a_book_costs_its_levels_on_both_sides() {
        let plain = snapshot_cost(&[exact("BTC-USD")], std::iter::empty(), 100);
        let book = snapshot_cost(&[exact("BTC-USD.book")], std::iter::empty(), 100);
        assert_eq!(book.bytes - plain.bytes, 5 + 100 * 2 * LEVEL_BYTES);
    }

    #[test]
    fn snapshots_within_both_limits_are_let_through() {
        let cost = snapshot_cost(&[exact("A")], std::iter::empty(), 10);
        assert_eq!(check_room(&cost, ROOMY), Ok(()));
    }

    #[test]
    fn snapshots_past_the_connections_limit_are_refused_with_what_to_do() {
        let cost = SnapshotCost {
            topics: 3,
            bytes: 600,
        };
        let room = Room {
            held_by_conn: 500,
            conn_limit: 1_000,
            ..ROOMY
        };
        let (code, message) = check_room(&cost, room).unwrap_err();
        assert_eq!(code, ErrorCode::SnapshotTooLarge);
        assert!(message.contains("about 1100 bytes"), "{message}");
        assert!(message.contains("narrower patterns"), "{message}");
    }

    #[test]
    fn snapshots_past_the_servers_budget_are_refused_until_later() {
        let cost = SnapshotCost {
            topics: 1,
            bytes: 200,
        };
        let room = Room {
            held_by_all: 900,
            budget: 1_000,
            ..ROOMY
        };
        let (_, message) = check_room(&cost, room).unwrap_err();
        assert!(message.contains("try again later"), "{message}");
        let room = Room {
            held_by_all: 800,
            ..room
        };
        assert_eq!(
            check_room(&cost, room),
            Ok(()),
            "exactly at the budget fits"
        );
    }
}
