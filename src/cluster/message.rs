//! The form of what travels between nodes through Redis: the entries of a
//! partition's channel messages, which are also what a topic's history
//! list holds.
//!
//! A message is entries, one after another, separated by newlines. A run
//! of one topic's updates is a header line `R topic epoch last count wall
//! fields nbytes`, a newline, and `nbytes` of binary records, one per
//! update (`tail` has their form), the updates numbered `last - count + 1`
//! to `last` (`wall`: when the writer sent them, ns, for the lag metric;
//! `fields`: the run's fields, comma-separated, whose values the records
//! carry by position). Records are binary, so the header says their length
//! rather than a newline ending each. The numbering script writes the
//! header up to `wall`, ends it with the writer's `fields nbytes` and
//! passes the records through as the writer built them, so it makes no
//! string per update. A topic's history list holds each run as two
//! elements, its header line and its records, so read back and joined by
//! newlines it is a message like any other. Runs of the earlier forms are
//! still read (one element each, a block), so a node of this version loads
//! the histories an older one left in Redis: with text tails (no
//! `nbytes`; `count` lines `back value ...`), and with named fields (no
//! `fields` either; lines `ts name value ...`).
//! Other entries are one line each:
//! `B topic epoch seq ts wall replace side price size ... name value ...`
//! (an order-book change), `C topic` (a clear), `S topic 1|0` (stale or
//! live), `A topic ms|-` (its own `stale_after`). `U topic epoch seq ts
//! wall name value ...` (one update) is read too.

use super::tail::{self, Columns, Tail};
use crate::engine::epoch::Epoch;
use crate::model::book::{Level, Levels, Side};
use crate::model::liveness::Liveness;
use crate::model::update::Update;
use std::time::Duration;

/// A message on a partition's channel, parsed.
#[derive(Debug, Clone, PartialEq)]
// A message lives for one step of the reader: boxing its update would
// only add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Message {
    /// A numbered update, with the wall time (ns) it was numbered at.
    Update {
        update: Update,
        epoch: Epoch,
        seq: u64,
        wall_ns: u64,
    },
    /// The topic was cleared.
    Clear(String),
    /// The topic went stale (true) or live.
    Stale(String, Liveness),
    /// The topic's own `stale_after` (None: the server's).
    StaleAfter(String, Option<Duration>),
}

/// One entry of a message or a history block, its topic known before the
/// rest is parsed: a node drops the entries of topics it does not follow
/// unparsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Entry<'a> {
    /// An update of a run: its epoch, `seq`, the run's wall time and
    /// fields (None: a run of the previous form) and its tail.
    Run {
        topic: &'a str,
        epoch: Epoch,
        seq: u64,
        wall_ns: u64,
        fields: Option<&'a str>,
        tail: Tail<'a>,
    },
    /// A line of its own (`B`, `C`, `S`, `A`, `U`); its topic is empty
    /// when the line has none.
    Line { topic: &'a str, text: &'a str },
}

impl<'a> Entry<'a> {
    pub fn topic(&self) -> &'a str {
        match *self {
            Entry::Run { topic, .. } | Entry::Line { topic, .. } => topic,
        }
    }

    /// The entry parsed; None when it is not tickcast's or names a field
    /// this node does not know (`names`: its extra fields).
    pub fn parse(&self, names: &[Box<str>]) -> Option<Message> {
        match *self {
            Entry::Run {
                topic,
                epoch,
                seq,
                wall_ns,
                fields,
                tail,
            } => {
                let update = match (fields, tail) {
                    (Some(fields), tail) => {
                        let (ts, prices) = Columns::of(fields, names)?.read(wall_ns, tail)?;
                        let mut update = Update::new(topic).timestamp_ns(ts);
                        update.prices = prices;
                        update
                    }
                    (None, Tail::Text(t)) => update_of(topic, false, t.split(' '), names)?,
                    (None, Tail::Binary(_)) => return None,
                };
                Some(Message::Update {
                    update,
                    epoch,
                    seq,
                    wall_ns,
                })
            }
            Entry::Line { text, .. } => parse(text, names),
        }
    }
}

/// The entries of a message or of a history block, in order. A run header
/// that does not parse, or a run cut short, ends with a `Line` that does
/// not parse either (so the reader says so).
pub(crate) fn entries(bytes: &[u8]) -> Entries<'_> {
    Entries {
        rest: Some(bytes),
        run: None,
    }
}

pub(crate) struct Entries<'a> {
    /// What is left to read; None past the end.
    rest: Option<&'a [u8]>,
    /// Within a run: its topic, epoch, wall time, the next `seq` and how
    /// many are left.
    run: Option<Run<'a>>,
}

/// An entry that does not parse (a line that is not text, a run whose
/// records do not add up).
const NOT_OURS: Entry<'static> = Entry::Line {
    topic: "",
    text: "",
};

impl<'a> Entries<'a> {
    /// The next line, without its newline.
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }

    /// The `n` bytes of a binary run after its header, and the newline
    /// after them, if any; None when the message is shorter.
    fn block(&mut self, n: usize) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let block = rest.get(..n)?;
        self.rest = match rest.get(n) {
            None => None,
            Some(b'\n') => Some(&rest[n + 1..]),
            Some(_) => return None,
        };
        Some(block)
    }

    /// The next entry of the run being read.
    fn in_run(&mut self) -> Option<Entry<'a>> {
        let run = self.run.as_mut()?;
        if run.left == 0 {
            // Its records went past its count: the run is not ours.
            self.run = None;
            return Some(NOT_OURS);
        }
        let tail = match &mut run.binary {
            Some((bytes, fields)) => {
                let Some(len) = tail::record_len(bytes, *fields) else {
                    self.run = None;
                    return Some(NOT_OURS);
                };
                let (record, rest) = bytes.split_at(len);
                *bytes = rest;
                Tail::Binary(record)
            }
            None => {
                let line = self.line()?;
                let run = self.run.as_mut()?;
                match std::str::from_utf8(line) {
                    Ok(text) => Tail::Text(text),
                    Err(_) => {
                        run.left = 1;
                        Tail::Text("")
                    }
                }
            }
        };
        let run = self.run.as_mut()?;
        let entry = Entry::Run {
            topic: run.topic,
            epoch: run.epoch,
            seq: run.seq,
            wall_ns: run.wall_ns,
            fields: run.fields,
            tail,
        };
        run.seq += 1;
        run.left -= 1;
        // Bytes left past the count: said as the next entry.
        if run.left == 0 && run.binary.is_none_or(|(bytes, _)| bytes.is_empty()) {
            self.run = None;
        }
        Some(entry)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            if self.run.is_some() {
                return self.in_run();
            }
            let Ok(line) = std::str::from_utf8(self.line()?) else {
                return Some(NOT_OURS);
            };
            let mut words = line.split(' ');
            let (kind, topic) = (words.next(), words.next().unwrap_or(""));
            if kind != Some("R") {
                return Some(Entry::Line { topic, text: line });
            }
            let Some((mut run, bytes)) = run_header(topic, words) else {
                return Some(Entry::Line { topic, text: line });
            };
            if let Some(n) = bytes {
                let fields = tail::field_names(run.fields.unwrap_or_default()).count();
                match self.block(n) {
                    Some(block) => run.binary = Some((block, fields)),
                    None => return Some(Entry::Line { topic, text: line }),
                }
            }
            self.run = Some(run);
        }
    }
}

/// A run being read: its topic, epoch, wall time, fields, the next `seq`
/// and how many entries are left.
struct Run<'a> {
    topic: &'a str,
    epoch: Epoch,
    wall_ns: u64,
    fields: Option<&'a str>,
    /// Of a binary run: its records not read yet, and how many fields it
    /// names.
    binary: Option<(&'a [u8], usize)>,
    seq: u64,
    left: u64,
}

/// `epoch last count wall [fields [nbytes]]` after `R topic` (count at
/// least one): the run, and a binary run's byte count.
fn run_header<'a>(
    topic: &'a str,
    mut words: impl Iterator<Item = &'a str>,
) -> Option<(Run<'a>, Option<usize>)> {
    // Parsed once for the run, not once per update.
    let epoch = Epoch::parse(words.next()?)?;
    let last: u64 = words.next()?.parse().ok()?;
    let count: u64 = words.next()?.parse().ok()?;
    let wall_ns: u64 = words.next()?.parse().ok()?;
    let fields = words.next();
    let bytes = match words.next() {
        Some(n) => Some(n.parse().ok()?),
        None => None,
    };
    // (`then`, not `then_some`: the first `seq` is worked out only for a
    // count that fits.)
    let run = (count >= 1 && count <= last && words.next().is_none()).then(|| Run {
        topic,
        epoch,
        wall_ns,
        fields,
        binary: None,
        seq: last - count + 1,
        left: count,
    })?;
    Some((run, bytes))
}

/// Parses one line of its own (`Entry::Line`).
pub(crate) fn parse(text: &str, names: &[Box<str>]) -> Option<Message> {
    let mut it = text.split(' ');
    match it.next()? {
        kind @ ("U" | "B") => {
            let topic = it.next()?;
            let epoch = Epoch::parse(it.next()?)?;
            let seq = it.next()?.parse().ok()?;
            let ts = it.next()?;
            let wall_ns = it.next()?.parse().ok()?;
            let rest = std::iter::once(ts).chain(it);
            let update = update_of(topic, kind == "B", rest, names)?;
            Some(Message::Update {
                update,
                epoch,
                seq,
                wall_ns,
            })
        }
        "C" => Some(Message::Clear(it.next()?.to_string())),
        "S" => {
            let topic = it.next()?.to_string();
            Some(Message::Stale(
                topic,
                Liveness::from_stale(it.next()? == "1"),
            ))
        }
        "A" => {
            let topic = it.next()?.to_string();
            Some(Message::StaleAfter(topic, millis(it.next()?)?))
        }
        _ => None,
    }
}

/// An update from its tail: `ts`, a book change's levels, then name and
/// value pairs.
fn update_of<'a>(
    topic: &str,
    book: bool,
    mut it: impl Iterator<Item = &'a str>,
    names: &[Box<str>],
) -> Option<Update> {
    let ts = it.next()?.parse().ok()?;
    let mut update = Update::new(topic).timestamp_ns(ts);
    if book {
        update.levels = Some(Box::new(levels_of(&mut it)?));
    }
    while let Some(name) = it.next() {
        let v: f64 = it.next()?.parse().ok()?;
        // A field this node does not know (another node's extra field)
        // makes the message not ours to apply.
        if !update.prices.set_named(name, v, names) {
            return None;
        }
    }
    Some(update)
}

/// A book change's levels in an entry: replace (`1`/`0`), then side
/// (`b`/`a`), price and size for each.
fn levels_of<'a>(it: &mut impl Iterator<Item = &'a str>) -> Option<Levels> {
    let replace = it.next()? == "1";
    let mut levels = Vec::new();
    while let Some(side) = it.next() {
        let side = match side {
            "b" => Side::Bid,
            "a" => Side::Ask,
            _ => return None,
        };
        let price = it.next()?.parse().ok()?;
        let size = it.next()?.parse().ok()?;
        levels.push(Level { side, price, size });
    }
    Some(Levels { levels, replace })
}

/// A `stale_after` as stored: milliseconds, or `-` for the server's.
pub(crate) fn millis(text: &str) -> Option<Option<Duration>> {
    match text {
        "-" => Some(None),
        ms => Some(Some(Duration::from_millis(ms.parse().ok()?))),
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
