//! The server-wide outbound memory budget (`max_total_outbound_bytes`):
//! which of a shard's connections to close when all connections together
//! hold more than the budget (sans-IO; the shard closes them).
//!
//! Each shard frees its share of the excess, in proportion to what it
//! holds, from the connections that hold the most, so the shards together
//! free the excess and no more, without talking to each other.

/// The slab keys of the connections to close, largest holders first.
/// `holders` is (bytes held, slab key) of the shard's open connections;
/// `total` is what every shard's connections hold, `mine` this shard's.
pub(crate) fn over_budget(
    mut holders: Vec<(usize, usize)>,
    total: i64,
    budget: i64,
    mine: i64,
) -> Vec<usize> {
    if total <= budget || mine <= 0 {
        return Vec::new();
    }
    let share = ((total - budget) as i128 * mine as i128 / total as i128) as usize + 1;
    holders.sort_unstable_by(|a, b| b.cmp(a));
    let mut freed = 0;
    let mut close = Vec::new();
    for (holds, token) in holders {
        if freed >= share {
            break;
        }
        freed += holds;
        close.push(token);
    }
    close
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_budget_nobody_is_closed() {
        let holders = vec![(500, 1), (400, 2)];
        assert!(over_budget(holders.clone(), 900, 1_000, 900).is_empty());
        assert!(over_budget(holders, 1_000, 1_000, 900).is_empty());
    }

    #[test]
    fn the_largest_holders_go_first_until_the_excess_is_freed() {
        let holders = vec![(100, 1), (700, 2), (300, 3), (50, 4)];
        // 1,150 held against 800: 350 over, all of it this shard's.
        assert_eq!(over_budget(holders, 1_150, 800, 1_150), vec![2]);
        let holders = vec![(100, 1), (300, 2), (300, 3), (50, 4)];
        // 650 over: the two 300s and then the 100 (ties by key, highest first).
        assert_eq!(over_budget(holders, 750, 100, 750), vec![3, 2, 1]);
    }

    #[test]
    fn a_shard_frees_only_its_share_of_the_excess() {
        // The server holds 2,000 against 1,000; this shard holds a quarter,
        // so it frees about 250: its one 300-byte holder is enough.
        let holders = vec![(300, 7), (200, 8)];
        assert_eq!(over_budget(holders, 2_000, 1_000, 500), vec![7]);
    }

    #[test]
    fn a_shard_that_holds_nothing_closes_nothing() {
        assert!(over_budget(Vec::new(), 5_000, 1_000, 0).is_empty());
    }
}
