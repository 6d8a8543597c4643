//! The router in cluster mode: updates come numbered by the cluster's
//! store, and topics that missed some are loaded from it (see
//! `table::cluster`). The cluster link (`crate::cluster`) feeds both in
//! through the ingest channel, in the order the store gave them.

use super::{RouterWork, Slot};
use crate::engine::epoch::Epoch;
use crate::engine::link::Event;
use crate::engine::op::{Loaded, Numbered, NumberedRun};
use crate::engine::table::Fit;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// What `RouterWork::place` found for a numbered update.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Apply,
    /// Applied already.
    Skip,
    Gap,
}

impl RouterWork {
    /// Asks the cluster link to load topics past a gap (cluster mode).
    pub(crate) fn set_loads(&mut self, loads: crossbeam_channel::Sender<Arc<str>>) {
        self.loads = Some(loads);
    }

    /// An update the store numbered: applied when it is the next one of
    /// the topic's numbering, dropped when already applied; past a gap, the
    /// topic is loaded instead (its subscribers then get a snapshot, never
    /// a silent jump).
    pub(super) fn numbered(&mut self, n: Numbered, at: Instant) {
        let Some(id) = self.admit_numbered(&n.update.topic, 1) else {
            return;
        };
        if self.place(id, n.epoch, n.seq, at) == Place::Apply {
            self.apply_update(id, &n.update, at);
        }
    }

    /// A run of a topic's numbered updates: each as `numbered` takes one,
    /// the topic looked up once. Past a gap the rest of the run is past it
    /// too, so the run stops there (the topic is loaded).
    pub(super) fn numbered_run(&mut self, run: NumberedRun, at: Instant) {
        let Some(id) = self.admit_numbered(&run.topic, run.updates.len()) else {
            return;
        };
        for (seq, (ts, prices)) in (run.first..).zip(&run.updates) {
            match self.place(id, run.epoch, seq, at) {
                Place::Apply => self.apply_prices(id, *ts, prices, at),
                Place::Skip => {}
                Place::Gap => break,
            }
        }
    }

    /// The topic's slot for `n` numbered updates; None (they are
    /// counted as refused) past `max_topics`.
    fn admit_numbered(&mut self, topic: &str, n: usize) -> Option<u32> {
        let id = self.admit(topic);
        if id.is_none() {
            self.metrics
                .router
                .refused_topics
                .fetch_add(n as u64, Relaxed);
        }
        id
    }

    /// Where update `seq` of `epoch` falls in the topic's numbering: the
    /// next (the slot made ready for it: a new epoch adopted, a restarted
    /// one cleared first), one applied already, or past a gap (a load
    /// asked for).
    fn place(&mut self, id: u32, epoch: Epoch, seq: u64, at: Instant) -> Place {
        let slot = self.list[id as usize].clone();
        match slot.fit(epoch, seq) {
            Fit::Duplicate => Place::Skip,
            Fit::Next => Place::Apply,
            Fit::First => {
                slot.adopt_epoch(epoch);
                Place::Apply
            }
            Fit::Restart => {
                self.clear_slot(id, at);
                slot.adopt_epoch(epoch);
                Place::Apply
            }
            Fit::Gap => {
                if let Some(loads) = &self.loads {
                    // Full: the link is behind on loads already, and the
                    // next update of this topic asks again.
                    let _ = loads.try_send(slot.name.clone());
                }
                Place::Gap
            }
        }
    }

    /// A topic as the store holds it: a newer value replaces the one here
    /// (with its history) and goes to subscribers as a snapshot; no value
    /// in the store clears the topic here.
    pub(super) fn load(&mut self, l: Loaded, at: Instant) {
        let Some((id, slot)) = self.existing_slot(&l.topic, Slot::MakeIfRoom) else {
            return;
        };
        // Shared by every node (a node that loads the topic late included);
        // set after a clear, which drops it.
        let shared_stale_after = |router: &mut RouterWork| {
            slot.set_stale_after(l.stale_after);
            router.sweeping |= l.stale_after.is_some();
        };
        let Some(value) = l.value else {
            if slot.snapshot().seq > 0 {
                self.clear_slot(id, at);
            }
            shared_stale_after(self);
            return;
        };
        shared_stale_after(self);
        let cap = self.config.history_len.max(slot.trades_keep);
        let was_stale = slot.snapshot().stale;
        let stale = value.stale;
        match slot.load(value, &l.history, cap) {
            None => {
                // Current already; it may have been marked stale while the
                // link was down, or its publisher left meanwhile.
                if let Some(heard) = slot.set_stale(stale) {
                    self.emit(&slot, heard, Event::Status { stale }, at);
                }
            }
            Some((heard, freed, added)) => {
                self.set_valued(id, true);
                self.history_kept -= freed;
                for seq in value.seq + 1 - added as u64..=value.seq {
                    self.history_kept += 1;
                    let place = (id, heard.generation, seq);
                    self.budget.added(&self.list, place, &mut self.history_kept);
                }
                match &l.book {
                    Some(book) => {
                        let view = slot.load_book(book);
                        self.emit_book_snapshot(&slot, heard, &value, view, at);
                    }
                    None => {
                        let event = Event::Resync {
                            ts: value.ts,
                            prices: value.prices,
                            epoch: value.epoch,
                        };
                        self.emit(&slot, heard, event, at);
                    }
                }
                if was_stale != stale {
                    // Said in so many words to whoever saw it before.
                    self.emit(&slot, heard, Event::Status { stale }, at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::engine::epoch::Epoch;
    use crate::engine::op::{IngestOp, Ingested, NumberedRun};
    use crate::engine::router::{RouterConfig, RouterWork};
    use crate::engine::table::TopicTable;
    use crate::metrics::Metrics;
    use crate::model::update::Prices;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Instant;

    fn run(epoch: Epoch, first: u64, bids: &[f64]) -> Ingested {
        let updates = bids
            .iter()
            .enumerate()
            .map(|(i, &bid)| {
                let prices = Prices {
                    bid: Some(bid),
                    ..Prices::default()
                };
                (100 + first + i as u64, prices)
            })
            .collect();
        let op = NumberedRun {
            topic: "T".into(),
            epoch,
            first,
            updates,
        };
        Ingested {
            op: IngestOp::Run(Box::new(op)),
            at: Instant::now(),
        }
    }

    #[test]
    fn a_run_applies_what_follows_skips_what_was_applied_and_stops_at_a_gap() {
        let table = Arc::new(TopicTable::default());
        let metrics = Arc::new(Metrics::new(1));
        let config = RouterConfig::from(&Config::default());
        let enc = Box::new(crate::wire::event::Encoder::default());
        let mut work = RouterWork::new(table.clone(), 1, config, metrics.clone(), enc);
        let (loads, asked) = crossbeam_channel::unbounded();
        work.set_loads(loads);
        let state = |table: &TopicTable| {
            let s = table.snapshot("T").expect("the topic");
            (s.seq, s.ts, s.prices.bid)
        };
        let (e, later) = (Epoch::new(), Epoch::new());

        work.route(&mut vec![run(e, 1, &[1.0, 2.0, 3.0])], &[]);
        assert_eq!(state(&table), (3, 103, Some(3.0)), "a new topic's run");
        // 2 and 3 again (sent twice), then 4 and 5.
        work.route(&mut vec![run(e, 2, &[9.0, 9.0, 4.0, 5.0])], &[]);
        assert_eq!(state(&table), (5, 105, Some(5.0)), "duplicates skipped");
        assert!(asked.try_recv().is_err(), "no gap so far");
        // 6 and 7 missed: the topic is loaded, nothing of the run applied.
        work.route(&mut vec![run(e, 8, &[8.0, 9.0])], &[]);
        assert_eq!(state(&table), (5, 105, Some(5.0)), "past a gap");
        assert_eq!(
            asked.try_iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ["T"]
        );
        // A new epoch from 1: the topic restarts with it.
        work.route(&mut vec![run(later, 1, &[7.0, 7.5])], &[]);
        assert_eq!(state(&table), (2, 102, Some(7.5)), "a restarted numbering");
        assert_eq!(table.snapshot("T").unwrap().epoch, later);
        assert_eq!(
            metrics.router.ingested.load(Relaxed),
            11,
            "every update counted"
        );
    }
}
