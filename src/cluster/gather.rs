//! What the reader gathers from a message before it goes to a router: a
//! run's updates as one operation (`NumberedRun`), where one each cost a
//! topic name, a box and a trip through the router's channel.

use super::message::Entry;
use super::tail::Columns;
use crate::engine::epoch::Epoch;
use crate::engine::inbox::Inbox;
use crate::engine::op::{IngestOp, Ingested, NumberedRun};
use std::time::Instant;

/// The run the reader is gathering from a message's entries: consecutive
/// updates of one topic, sent to the router as one operation.
pub(super) struct Runs<'a> {
    open: Option<OpenRun<'a>>,
    router: &'a Inbox,
    /// When the message arrived (each operation's ingest stamp).
    at: Instant,
}

struct OpenRun<'a> {
    op: NumberedRun,
    /// The fields its tails give (as the message names them).
    fields: &'a str,
    columns: Columns,
}

impl<'a> Runs<'a> {
    pub fn new(router: &'a Inbox, at: Instant) -> Runs<'a> {
        Runs {
            open: None,
            router,
            at,
        }
    }

    /// Adds an entry to the run it belongs to, when it is an update of a
    /// positional run (`seq` of `topic` in `epoch`; its tail gives
    /// `fields`, read against `wall_ns`): `Some(true)`. `Some(false)` when
    /// it does not read here (a field this node does not know, a tail that
    /// does not parse): it is left out, and the run so far is sent, so the
    /// router sees the gap. Any other entry ends the open run (sent before
    /// whatever the caller makes of the entry, so each topic's order
    /// holds): `None`.
    pub fn add(&mut self, entry: &Entry<'a>, names: &[Box<str>]) -> Option<bool> {
        let Entry::Run {
            topic,
            epoch,
            seq,
            wall_ns,
            fields: Some(fields),
            tail,
        } = *entry
        else {
            self.close();
            return None;
        };
        let Some(run) = self.open(topic, epoch, seq, fields, names) else {
            return Some(false);
        };
        match run.columns.read(wall_ns, tail) {
            Some(update) => {
                run.op.updates.push(update);
                Some(true)
            }
            None => {
                self.close();
                Some(false)
            }
        }
    }

    /// The run an entry belongs to: the open one when it follows on, else
    /// a new one (the open one sent first). None when `fields` names a
    /// field this node does not know.
    fn open(
        &mut self,
        topic: &str,
        epoch: Epoch,
        seq: u64,
        fields: &'a str,
        names: &[Box<str>],
    ) -> Option<&mut OpenRun<'a>> {
        let follows = self.open.as_ref().is_some_and(|r| {
            r.op.topic == topic
                && r.op.epoch == epoch
                && r.op.first + r.op.updates.len() as u64 == seq
                && std::ptr::eq(r.fields, fields)
                && r.op.updates.len() < super::RUN_UPDATES
        });
        if !follows {
            self.close();
            self.open = Some(OpenRun {
                op: NumberedRun {
                    topic: topic.to_string(),
                    epoch,
                    first: seq,
                    updates: Vec::with_capacity(super::RUN_UPDATES),
                },
                fields,
                columns: Columns::of(fields, names)?,
            });
        }
        self.open.as_mut()
    }

    /// Sends the open run, if it holds any update.
    pub fn close(&mut self) {
        if let Some(r) = self.open.take().filter(|r| !r.op.updates.is_empty()) {
            let op = IngestOp::Run(Box::new(r.op));
            let _ = self.router.send(Ingested { op, at: self.at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::entries;

    /// The operations a message's runs become: (topic, first, count), and
    /// how many of its updates did not read.
    fn ops_of(text: &str) -> (Vec<(String, u64, usize)>, usize) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let inbox = Inbox::new(vec![tx]);
        let mut runs = Runs::new(&inbox, Instant::now());
        let mut unread = 0;
        for e in entries(text.as_bytes()) {
            if runs.add(&e, &[]) == Some(false) {
                unread += 1;
            }
        }
        runs.close();
        let ops = rx
            .try_iter()
            .map(|i| match i.op {
                IngestOp::Run(r) => (r.topic, r.first, r.updates.len()),
                _ => panic!("only runs"),
            })
            .collect();
        (ops, unread)
    }

    #[test]
    fn a_message_becomes_one_operation_per_run_of_at_most_run_updates() {
        let e = Epoch::new();
        let tails = |n: usize| "\n0 1".repeat(n);
        let text = format!(
            "R A {e} 3 2 9 bid{}\nR B {e} 1 1 9 bid{}\nC X\nR A {e} 5 2 9 bid{}\nR C {e} 40 40 9 bid{}",
            tails(2),
            tails(1),
            tails(2),
            tails(40)
        );
        let got = ops_of(&text);
        let want = [
            ("A", 2, 2),
            ("B", 1, 1),
            ("A", 4, 2),
            ("C", 1, 32),
            ("C", 33, 8),
        ];
        let want: Vec<_> = want.map(|(t, f, n)| (t.to_string(), f, n)).into();
        assert_eq!(got, (want, 0));
        // A tail that does not read is left out; the run is cut there.
        let text = format!("R A {e} 4 4 9 bid\n0 1\nx\n0 3\n0 4\nR B {e} 1 1 9 oi\n0 1");
        let want = vec![("A".to_string(), 1, 1), ("A".to_string(), 3, 2)];
        assert_eq!(ops_of(&text), (want, 2), "and a field not known here");
    }
}
