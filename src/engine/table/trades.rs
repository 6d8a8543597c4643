//! Trade topics: a topic whose name ends with `.trades` (`BTC-USD.trades`)
//! carries trades, not a price to merge. Every update is one trade and is
//! delivered as it is (never merged with the next when a subscriber falls
//! behind, never paced by `max_rate`); a subscription's snapshot lists the
//! last trades (`trades_snapshot`, default 50) beside the merged value; the
//! topic keeps at least that many in its history.

use super::TopicTable;
use std::sync::atomic::Ordering::Relaxed;

/// Trades a snapshot lists unless configured.
pub(crate) const DEFAULT_SNAPSHOT: usize = 50;

/// Is `topic` a trade topic?
pub(crate) fn is_trades(topic: &str) -> bool {
    topic.ends_with(".trades")
}

impl TopicTable {
    /// Sets how many trades a trade topic's snapshot lists (topics made
    /// from now on).
    pub(crate) fn set_trades_snapshot(&self, n: usize) {
        self.trades_snapshot.store(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::format::Format;
    use crate::model::update::Prices;
    use std::time::Instant;

    #[test]
    fn a_trade_topic_snapshot_lists_its_last_trades_oldest_first() {
        let table = TopicTable::default();
        table.set_trades_snapshot(3);
        let slot = table.get_or_create("X.trades");
        assert_eq!(slot.trades_keep, 3);
        assert_eq!(table.get_or_create("X").trades_keep, 0);
        for i in 1..=5u64 {
            let p = Prices {
                last: Some(i as f64),
                ..Prices::default()
            };
            slot.apply(i, &p, slot.trades_keep, Instant::now());
        }
        let j = slot.join(0, Format::Json, None);
        let seqs: Vec<u64> = j.trades.unwrap().iter().map(|t| t.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert!(is_trades("BTC-USD.trades") && !is_trades("BTC-USD.tradesX"));
    }
}
