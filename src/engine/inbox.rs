//! The routers' ingest channels. With `routers = N` there are N routers,
//! each with its own bounded channel, and every topic belongs to exactly
//! one of them (a fixed hash of its name), so a topic's updates keep their
//! order and one router alone numbers, merges and keeps them. Everything
//! that sends operations (publishers, the shards for `/publish`, the
//! cluster link) sends through an `Inbox`.

use super::op::{IngestOp, Ingested};
use crossbeam_channel::Sender;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router a topic belongs to, of `n`. The same on every node and in
/// every run (a fixed seed), so it can be reasoned about and tested.
pub(crate) fn router_of(topic: &str, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut h = foldhash::fast::FixedState::with_seed(0x7469_636b_6361_7374).build_hasher();
    h.write(topic.as_bytes());
    (h.finish() % n as u64) as usize
}

/// One channel per router.
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    routers: Arc<[Sender<Ingested>]>,
}

impl Inbox {
    pub fn new(routers: Vec<Sender<Ingested>>) -> Inbox {
        assert!(!routers.is_empty(), "an inbox needs a router");
        Inbox {
            routers: routers.into(),
        }
    }

    /// The channel `op` goes to: its topic's router (a barrier, which has
    /// no topic, is sent to every router with [`Inbox::barrier`]).
    pub fn for_op(&self, op: &IngestOp) -> &Sender<Ingested> {
        let n = self.routers.len();
        let i = op.topic().map_or(0, |t| router_of(t, n));
        &self.routers[i]
    }

    /// Sends to its topic's router, waiting while that channel is full.
    /// False when the routers are gone (the operation is dropped).
    pub fn send(&self, item: Ingested) -> bool {
        self.for_op(&item.op).send(item).is_ok()
    }

    /// Operations waiting in all the channels.
    pub fn len(&self) -> usize {
        self.routers.iter().map(|r| r.len()).sum()
    }

    /// Waits until every router has applied what was sent to it before
    /// (at most `timeout`); false when one did not answer in time.
    pub fn barrier(&self, timeout: Duration) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(self.routers.len());
        for r in self.routers.iter() {
            let at = Instant::now();
            let _ = r.send(Ingested {
                op: IngestOp::Barrier(tx.clone()),
                at,
            });
        }
        let deadline = Instant::now() + timeout;
        (0..self.routers.len()).all(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            rx.recv_timeout(left).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_always_goes_to_the_same_router() {
        for n in 1..8 {
            for t in ["AAPL", "BTC-USD.book", "FX.EURUSD", ""] {
                let r = router_of(t, n);
                assert!(r < n);
                assert_eq!(r, router_of(t, n));
            }
        }
    }

    #[test]
    fn topics_spread_over_the_routers() {
        let n = 4;
        let mut counts = [0usize; 4];
        for i in 0..10_000 {
            counts[router_of(&format!("B.{i:05}"), n)] += 1;
        }
        for c in counts {
            assert!((2_000..3_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn operations_on_one_topic_go_to_one_channel_in_order() {
        let (channels, receivers): (Vec<_>, Vec<_>) =
            (0..3).map(|_| crossbeam_channel::unbounded()).unzip();
        let inbox = Inbox::new(channels);
        for seq in 0..50 {
            let u = crate::model::update::Update::new("X.1").bid(seq as f64);
            assert!(inbox.send(Ingested::update(u)));
            let y = crate::model::update::Update::new("Y.2").bid(1.0);
            assert!(inbox.send(Ingested::update(y)));
        }
        let x = router_of("X.1", 3);
        let bids: Vec<f64> = receivers[x]
            .try_iter()
            .filter_map(|i| match i.op {
                IngestOp::Update(u) if u.topic == "X.1" => u.prices.bid,
                _ => None,
            })
            .collect();
        assert_eq!(bids, (0..50).map(|s| s as f64).collect::<Vec<_>>());
        assert_eq!(
            inbox.len(),
            receivers.iter().map(|r| r.len()).sum::<usize>()
        );
    }
}
