//! Numbering in Redis, a batch at a time: the script calls that carry a
//! writer's batch (one per partition it touches) to `script::SCRIPT`,
//! which numbers every operation of one partition in it.
//!
//! Exactly once: each writer has an id (random, per process) and numbers
//! its batches 1, 2, 3, ... A script call first compares the batch's number
//! with the last one this writer had applied in the partition
//! (`store::applied_key`, kept `REMEMBER_SECS`), and does nothing when it
//! is not newer. A batch sent again after a lost connection (the writer
//! cannot know which of its calls Redis ran before the loss) therefore
//! numbers only what was not numbered yet. Batches of one writer reach
//! Redis in order (one pipeline at a time), so "not newer" can only mean
//! "already applied".

use super::store::{self, PARTITIONS};
use super::tail::Record;
use crate::engine::op::{IngestOp, Ingested};
use crate::model::book::Side;
use crate::model::update::{Prices, Update, MAX_EXTRA};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write;

/// How long Redis remembers a writer's last batch per partition. A batch
/// cut off by a lost connection is sent again within seconds of
/// reconnecting, so an hour covers any outage a node rides out with its
/// batch in hand; past it, a resend could number its updates again.
pub(crate) const REMEMBER_SECS: u64 = 3600;

/// Most updates in one run. A topic's history in Redis keeps at least
/// `cap` runs, so at least `cap` updates and at most `BLOCK` times as many:
/// bounded memory for a topic whose updates come in bursts, while a run
/// still pays for its three Redis calls. 32 since the tails carry values
/// by position: 328 runs of 32 four-price updates took 386 KB in Redis
/// (`MEMORY USAGE`), what 16 took with named fields, and a busy writer's
/// runs cost Redis 71-77 ms per 100,000 updates instead of 92-100 (runs of
/// 18.6 updates on average instead of 11.9). With binary records, 257 such
/// runs take 348 KB (docs/CLUSTER.md, "What to size").
pub(crate) const BLOCK: usize = 32;

/// What a writer needs to turn a batch into script calls.
pub(crate) struct Numbering<'a> {
    /// The loaded script's SHA1.
    pub sha: &'a str,
    /// This writer's id (`store::applied_key`).
    pub writer: &'a str,
    pub history_len: usize,
    pub trades_snapshot: usize,
    /// The server's extra fields: stored in Redis by name.
    pub fields: &'a [Box<str>],
    /// The publish wall time (ns) written into each entry.
    pub wall_ns: u64,
}

/// One operation of a script call: a run of one topic's updates, or a
/// clear or stale mark.
enum Step<'a> {
    Run(&'a str, Vec<&'a Update>),
    /// An order-book change: one at a time (each is checked on its own).
    Book(&'a Update),
    Other(&'a IngestOp),
}

impl Step<'_> {
    /// How many updates it carries.
    fn len(&self) -> usize {
        match self {
            Step::Run(_, updates) => updates.len(),
            _ => 1,
        }
    }
}

impl Numbering<'_> {
    /// The script calls of batch number `batch_no`: one per partition the
    /// batch touches. Within a call, each topic's operations keep their
    /// order, and consecutive updates of a topic travel as one run.
    /// Operations that are not for Redis are skipped.
    ///
    /// Also returns the topics the batch updates, each once: the writer
    /// lists the new ones in `tc:topics` (found here by the one lookup per
    /// operation grouping makes anyway).
    pub fn calls<'b>(
        &self,
        batch_no: u64,
        batch: &'b [Ingested],
    ) -> (Vec<redis::Cmd>, Vec<&'b str>) {
        let grouped = Grouped::new(batch.iter().map(|i| &i.op));
        let base = rand::random::<u32>();
        let calls = (0..PARTITIONS as usize)
            .filter(|&p| !grouped.by_partition[p].is_empty())
            .map(|p| self.call(p as u32, batch_no, base, &grouped.steps(p)))
            .collect();
        let updated = grouped.topics.iter().filter(|c| c.updated).map(|c| c.topic);
        (calls, updated.collect())
    }

    fn call(&self, partition: u32, batch_no: u64, base: u32, steps: &[Step]) -> redis::Cmd {
        let keys: usize = (0..steps.len())
            .map(|i| match &steps[i] {
                Step::Book(_) if same_book(steps, i) => 0,
                Step::Book(_) | Step::Other(IngestOp::Clear(_)) => 5,
                _ => 2,
            })
            .sum();
        // Sized up front: a call carries up to thousands of updates, and
        // growing its buffer step by step copied it over and over.
        let updates: usize = steps.iter().map(Step::len).sum();
        let mut cmd = redis::Cmd::with_capacity(12 * steps.len(), 64 * updates + 4096);
        cmd.arg("EVALSHA")
            .arg(self.sha)
            .arg(1 + keys)
            .arg(store::applied_key(partition, self.writer));
        for (i, step) in steps.iter().enumerate() {
            if same_book(steps, i) {
                continue;
            }
            let (topic, book) = match step {
                Step::Run(t, _) => (*t, false),
                Step::Book(u) => (u.topic.as_str(), true),
                Step::Other(op) => (
                    for_redis(op).unwrap_or_default(),
                    matches!(op, IngestOp::Clear(_)),
                ),
            };
            cmd.arg(store::value_key(topic))
                .arg(store::history_key(topic));
            if book {
                // A clear deletes a book too, whatever the topic.
                for k in store::book_keys(topic) {
                    cmd.arg(k);
                }
            }
        }
        cmd.arg(batch_no)
            .arg(REMEMBER_SECS)
            .arg(base)
            .arg(store::channel(partition))
            .arg(self.wall_ns);
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Run(topic, updates) => self.run_args(&mut cmd, topic, updates),
                Step::Book(u) => self.book_args(&mut cmd, u, same_book(steps, i)),
                Step::Other(IngestOp::Clear(t)) => {
                    cmd.arg("C").arg(t.as_str());
                }
                Step::Other(IngestOp::Stale(t, stale)) => {
                    cmd.arg("S").arg(t.as_str()).arg(u8::from(stale.is_stale()));
                }
                Step::Other(IngestOp::StaleAfter(t, after)) => {
                    let ms = after.map_or("-".to_string(), |d| d.as_millis().to_string());
                    cmd.arg("A").arg(t.as_str()).arg(ms);
                }
                Step::Other(_) => {}
            }
        }
        cmd
    }

    /// A run's arguments: its merged fields (the last value of each), its
    /// last `ts` and `stale` 0 as the topic's value-field pairs, then the
    /// end of the run's header (its fields, comma-separated, and the byte
    /// count of its records) and the records (`tail` has the form).
    fn run_args(&self, cmd: &mut redis::Cmd, topic: &str, updates: &[&Update]) {
        let mut merged = Prices::default();
        for u in updates {
            merged.merge(&u.prices);
        }
        // The run's fields: each one some update carries, in `Prices`
        // column order, with its name (an extra field's from the server's
        // list, which every update's come from).
        let mut columns = [0u8; Prices::NAMES.len() + MAX_EXTRA];
        let mut named = Vec::with_capacity(columns.len());
        for c in 0..columns.len() {
            let (Some(v), Some(name)) = (merged.column_value(c), self.column_name(c)) else {
                continue;
            };
            columns[named.len()] = c as u8;
            named.push((name, v));
        }
        let columns = &columns[..named.len()];
        let last_ts = updates.last().map_or(0, |u| u.timestamp_ns);
        let cap = store::history_cap(topic, self.history_len, self.trades_snapshot);
        cmd.arg("R")
            .arg(topic)
            .arg(updates.len())
            .arg(cap)
            .arg(named.len() + 2);
        let mut float = ryu::Buffer::new();
        for &(name, v) in &named {
            cmd.arg(name).arg(float.format(v));
        }
        cmd.arg("ts").arg(last_ts).arg("stale").arg(0);
        let record = Record {
            columns,
            wall_ns: self.wall_ns,
        };
        let mut records = Vec::with_capacity(updates.len() * (5 + 8 * columns.len()));
        for u in updates {
            record.write(&mut records, u.timestamp_ns, &u.prices);
        }
        let mut header = String::with_capacity(16 * named.len() + 24);
        for (i, (name, _)) in named.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(name);
        }
        header.push(' ');
        header.push_str(itoa::Buffer::new().format(records.len()));
        cmd.arg(header).arg(records);
    }

    /// The name of `Prices` column `c`: a price field's, or the server's
    /// extra field's (None past the list).
    fn column_name(&self, c: usize) -> Option<&str> {
        match Prices::NAMES.get(c) {
            Some(name) => Some(name),
            None => self.fields.get(c - Prices::NAMES.len()).map(|n| &**n),
        }
    }
}

impl Numbering<'_> {
    /// A book change's arguments: its entry's tail, then its levels, each
    /// as its field in the book's sizes hash (`b<price>`, `a<price>`), its
    /// price and size. `b` instead of `B` when the step before was a change
    /// of the same book: the script reuses its keys (`same_book`).
    fn book_args(&self, cmd: &mut redis::Cmd, u: &Update, same: bool) {
        let Some(change) = u.levels.as_deref() else {
            return;
        };
        let side = |s: Side| if s == Side::Bid { "b" } else { "a" };
        let replace = u8::from(change.replace);
        let mut tail = format!("{} {} {replace}", u.timestamp_ns, self.wall_ns);
        for l in &change.levels {
            let _ = write!(tail, " {} {:?} {:?}", side(l.side), l.price, l.size);
        }
        cmd.arg(if same { "b" } else { "B" })
            .arg(u.topic.as_str())
            .arg(u.timestamp_ns)
            .arg(tail)
            .arg(replace)
            .arg(change.levels.len());
        for l in &change.levels {
            cmd.arg(format!("{}{:?}", side(l.side), l.price))
                .arg(format!("{:?}", l.price))
                .arg(format!("{:?}", l.size));
        }
    }
}

/// Step `i` is a book change of the same book as the step before it: it
/// sends no keys (5 per change before, hashed by Redis's Lua each time).
fn same_book(steps: &[Step], i: usize) -> bool {
    match (i.checked_sub(1).map(|p| &steps[p]), &steps[i]) {
        (Some(Step::Book(before)), Step::Book(u)) => before.topic == u.topic,
        _ => false,
    }
}

/// A batch's operations for Redis, grouped without a list per topic: each
/// topic's operations chained in batch order (`next`), its topics listed
/// per partition in order of first appearance. One hash lookup per
/// operation; building a vector per topic per partition, as before, was
/// most of the writer's grouping time in perf.
struct Grouped<'a> {
    ops: Vec<&'a IngestOp>,
    /// For each of `ops`, the index of its topic's next one (`END`: none).
    next: Vec<u32>,
    topics: Vec<Chain<'a>>,
    /// Per partition, its topics (indices into `topics`).
    by_partition: Vec<Vec<u32>>,
}

/// One topic's operations in a batch: the first and last of its chain.
struct Chain<'a> {
    topic: &'a str,
    first: u32,
    last: u32,
    /// Some of its operations are updates (not only clears or marks).
    updated: bool,
}

const END: u32 = u32::MAX;

impl<'a> Grouped<'a> {
    /// Groups the operations for Redis (the others are left out).
    fn new(all: impl Iterator<Item = &'a IngestOp>) -> Grouped<'a> {
        let mut g = Grouped {
            ops: Vec::with_capacity(all.size_hint().0),
            next: Vec::with_capacity(all.size_hint().0),
            topics: Vec::new(),
            by_partition: vec![Vec::new(); PARTITIONS as usize],
        };
        let mut index: HashMap<&'a str, u32, foldhash::fast::RandomState> = HashMap::default();
        for op in all {
            let Some(topic) = for_redis(op) else {
                continue;
            };
            let i = g.ops.len() as u32;
            g.ops.push(op);
            g.next.push(END);
            match index.entry(topic) {
                Entry::Occupied(t) => {
                    let chain = &mut g.topics[*t.get() as usize];
                    g.next[chain.last as usize] = i;
                    chain.last = i;
                    chain.updated |= matches!(op, IngestOp::Update(_));
                }
                Entry::Vacant(t) => {
                    let id = g.topics.len() as u32;
                    t.insert(id);
                    g.by_partition[store::partition(topic) as usize].push(id);
                    g.topics.push(Chain {
                        topic,
                        first: i,
                        last: i,
                        updated: matches!(op, IngestOp::Update(_)),
                    });
                }
            }
        }
        g
    }

    /// A partition's operations as script steps: its topics in order of
    /// first appearance, each topic's operations in order, consecutive
    /// updates of a topic merged into runs of at most `BLOCK`.
    fn steps(&self, partition: usize) -> Vec<Step<'a>> {
        let mut steps = Vec::new();
        for &id in &self.by_partition[partition] {
            let chain = &self.topics[id as usize];
            let topic = chain.topic;
            let mut run: Vec<&'a Update> = Vec::new();
            let mut at = chain.first;
            while at != END {
                let op = self.ops[at as usize];
                at = self.next[at as usize];
                match op {
                    IngestOp::Update(u) if u.levels.is_none() => {
                        if run.is_empty() {
                            run.reserve_exact(BLOCK);
                        }
                        run.push(u);
                        if run.len() == BLOCK {
                            steps.push(Step::Run(topic, std::mem::take(&mut run)));
                        }
                        continue;
                    }
                    _ if !run.is_empty() => steps.push(Step::Run(topic, std::mem::take(&mut run))),
                    _ => {}
                }
                steps.push(match op {
                    IngestOp::Update(u) => Step::Book(u),
                    other => Step::Other(other),
                });
            }
            if !run.is_empty() {
                steps.push(Step::Run(topic, run));
            }
        }
        steps
    }
}

/// The topic of an operation Redis numbers or keeps (updates, clears,
/// stale marks, a topic's own `stale_after`); None for the rest.
fn for_redis(op: &IngestOp) -> Option<&str> {
    match op {
        IngestOp::Update(u) => Some(u.topic.as_str()),
        IngestOp::Clear(t) | IngestOp::Stale(t, _) | IngestOp::StaleAfter(t, _) => Some(t),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::liveness::Liveness;

    fn describe(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Run(t, us) => format!("R {t} {}", us.len()),
                Step::Book(u) => format!("B {}", u.topic),
                Step::Other(IngestOp::Clear(t)) => format!("C {t}"),
                Step::Other(IngestOp::Stale(t, _)) => format!("S {t}"),
                Step::Other(_) => "?".into(),
            })
            .collect()
    }

    #[test]
    fn a_topics_updates_run_together_and_its_clears_and_marks_keep_their_place() {
        let u = |t: &str| IngestOp::Update(Update::new(t).bid(1.0));
        // A second topic in A's partition, so one call holds both.
        let b = (0..)
            .map(|i| format!("B{i}"))
            .find(|t| store::partition(t) == store::partition("A"))
            .unwrap();
        let ops = [
            u("A"),
            u(&b),
            u("A"),
            IngestOp::Clear("A".into()),
            u(&b),
            u("A"),
            IngestOp::Stale(b.clone(), Liveness::Stale),
            u("A"),
            IngestOp::Clear("C".into()),
        ];
        let grouped = Grouped::new(ops.iter());
        let updated: Vec<&str> = grouped
            .topics
            .iter()
            .filter(|c| c.updated)
            .map(|c| c.topic)
            .collect();
        assert_eq!(
            updated,
            ["A", b.as_str()],
            "each topic updated once; a clear alone lists nothing"
        );
        assert_eq!(
            describe(&grouped.steps(store::partition("A") as usize)),
            [
                "R A 2".to_string(),
                "C A".into(),
                "R A 2".into(),
                format!("R {b} 2"),
                format!("S {b}")
            ],
            "topics in order of first appearance, each topic's operations in \
             order; runs cut by a clear or a mark"
        );
        // Runs are cut at `BLOCK` updates.
        let many: Vec<IngestOp> = (0..BLOCK + 3).map(|_| u("A")).collect();
        let p = store::partition("A") as usize;
        assert_eq!(
            describe(&Grouped::new(many.iter()).steps(p)),
            [format!("R A {BLOCK}"), "R A 3".to_string()]
        );
    }
}
