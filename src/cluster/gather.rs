//! What the reader gathers from a message before it goes to a router: a
//! run's updates as one operation (`NumberedRun`), where one each cost a
//! topic name, a box and a trip through the router's channel.

use super::tail::Columns;
use crate::engine::epoch::Epoch;
use crate::engine::inbox::Inbox;
use crate::engine::op::{IngestOp, Ingested, NumberedRun};
use std::time::Instant;

/// The run the reader is gathering from a message's entries: consecutive
/// updates of one topic, sent to the router as one operation.
#[derive(Default)]
pub(super) struct Runs<'a> {
    open: Option<OpenRun<'a>>,
}

pub(super) struct OpenRun<'a> {
    pub op: NumberedRun,
    /// The fields its tails give (as the message names them).
    fields: &'a str,
    pub columns: Columns,
}

impl<'a> Runs<'a> {
    /// The run an entry (`seq` of `topic` in `epoch`, tails giving
    /// `fields`) belongs to: the open one when it follows on, else a new
    /// one (the open one sent first). None when `fields` names a field
    /// this node does not know.
    pub fn open(
        &mut self,
        (topic, epoch, seq): (&str, Epoch, u64),
        fields: &'a str,
        names: &[Box<str>],
        router: &Inbox,
        at: Instant,
    ) -> Option<&mut OpenRun<'a>> {
        let follows = self.open.as_ref().is_some_and(|r| {
            r.op.topic == topic
                && r.op.epoch == epoch
                && r.op.first + r.op.updates.len() as u64 == seq
                && std::ptr::eq(r.fields, fields)
                && r.op.updates.len() < super::RUN_UPDATES
        });
        if !follows {
            self.close(router, at);
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
    pub fn close(&mut self, router: &Inbox, at: Instant) {
        if let Some(r) = self.open.take().filter(|r| !r.op.updates.is_empty()) {
            let op = IngestOp::Run(Box::new(r.op));
            let _ = router.send(Ingested { op, at });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::{entries, Entry};

    /// The operations a message's runs become: (topic, first, count).
    fn ops_of(text: &str) -> Vec<(String, u64, usize)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let inbox = Inbox::new(vec![tx]);
        let mut runs = Runs::default();
        let at = Instant::now();
        for e in entries(text.as_bytes()) {
            let Entry::Run {
                topic,
                epoch,
                seq,
                wall_ns,
                fields: Some(fields),
                tail,
            } = e
            else {
                runs.close(&inbox, at);
                continue;
            };
            let run = runs.open((topic, epoch, seq), fields, &[], &inbox, at);
            let update = run.expect("known fields").columns.read(wall_ns, tail);
            run_push(&mut runs, update.expect("a tail"));
        }
        runs.close(&inbox, at);
        rx.try_iter()
            .map(|i| match i.op {
                IngestOp::Run(r) => (r.topic, r.first, r.updates.len()),
                _ => panic!("only runs"),
            })
            .collect()
    }

    fn run_push(runs: &mut Runs, update: (u64, crate::model::update::Prices)) {
        runs.open.as_mut().expect("open").op.updates.push(update);
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
        assert_eq!(got, want);
    }
}
