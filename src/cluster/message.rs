//! The text form of what travels between nodes through Redis: the entries
//! of a partition's channel messages, which are also what a topic's
//! history list holds.
//!
//! A message is lines. A run of one topic's updates is a header line
//! `R topic epoch last count wall fields` followed by `count` tail lines
//! `back value ...`, the updates numbered `last - count + 1` to `last`
//! (`wall`: when the writer sent them, ns, for the lag metric). `fields`
//! names the run's fields, comma-separated, and each tail gives one value
//! per field in that order, `-` for a field that update does not carry;
//! `back` is `wall` minus the update's `ts` (signed). So a tail carries no
//! field name and a short number where the `ts` was: about 25 bytes for
//! four prices instead of about 70, which is what Redis's Lua hashes and
//! copies per update (BENCHMARKS.md, "Issue 24", session 20). The
//! numbering script writes the header up to `wall` and passes the rest
//! through as the writer built it, so it makes no string per update. A
//! history list element is one such run (a block). Runs of the previous
//! form (no `fields`; tails `ts name value ...`) are still read, so a
//! node of this version loads the histories an older one left in Redis.
//! Other entries are one line each:
//! `B topic epoch seq ts wall replace side price size ... name value ...`
//! (an order-book change), `C topic` (a clear), `S topic 1|0` (stale or
//! live), `A topic ms|-` (its own `stale_after`). `U topic epoch seq ts
//! wall name value ...` (one update) is read too.

use crate::engine::epoch::Epoch;
use crate::model::book::{Level, Levels, Side};
use crate::model::liveness::Liveness;
use crate::model::update::{Prices, Update};
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
        tail: &'a str,
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
                let update = match fields {
                    Some(fields) => positional(topic, wall_ns, fields, tail, names)?,
                    None => update_of(topic, false, tail.split(' '), names)?,
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
pub(crate) fn entries(text: &str) -> Entries<'_> {
    Entries {
        lines: text.split('\n'),
        run: None,
    }
}

pub(crate) struct Entries<'a> {
    lines: std::str::Split<'a, char>,
    /// Within a run: its topic, epoch, wall time, the next `seq` and how
    /// many are left.
    run: Option<Run<'a>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            let line = self.lines.next()?;
            if let Some(run) = &mut self.run {
                let entry = Entry::Run {
                    topic: run.topic,
                    epoch: run.epoch,
                    seq: run.seq,
                    wall_ns: run.wall_ns,
                    fields: run.fields,
                    tail: line,
                };
                run.seq += 1;
                run.left -= 1;
                if run.left == 0 {
                    self.run = None;
                }
                return Some(entry);
            }
            let mut words = line.split(' ');
            let (kind, topic) = (words.next(), words.next().unwrap_or(""));
            if kind != Some("R") {
                return Some(Entry::Line { topic, text: line });
            }
            match run_header(topic, words) {
                Some(run) => self.run = Some(run),
                None => return Some(Entry::Line { topic, text: line }),
            }
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
    seq: u64,
    left: u64,
}

/// `epoch last count wall [fields]` after `R topic` (count at least one).
fn run_header<'a>(topic: &'a str, mut words: impl Iterator<Item = &'a str>) -> Option<Run<'a>> {
    // Parsed once for the run, not once per update.
    let epoch = Epoch::parse(words.next()?)?;
    let last: u64 = words.next()?.parse().ok()?;
    let count: u64 = words.next()?.parse().ok()?;
    let wall_ns: u64 = words.next()?.parse().ok()?;
    let fields = words.next();
    // (`then`, not `then_some`: the first `seq` is worked out only for a
    // count that fits.)
    (count >= 1 && count <= last && words.next().is_none()).then(|| Run {
        topic,
        epoch,
        wall_ns,
        fields,
        seq: last - count + 1,
        left: count,
    })
}

/// An update from a positional tail (`back value ...`) of a run with
/// `fields`: `-` skips a field; a value short or over, or a field this
/// node does not know, and it is not ours.
fn positional(
    topic: &str,
    wall_ns: u64,
    fields: &str,
    tail: &str,
    names: &[Box<str>],
) -> Option<Update> {
    let (ts, prices) = Columns::of(fields, names)?.read(wall_ns, tail)?;
    let mut update = Update::new(topic).timestamp_ns(ts);
    update.prices = prices;
    Some(update)
}

/// A run's fields, looked up once for all its tails (`Prices::column`):
/// the reader reads a run's tails with one lookup per field, not one per
/// value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Columns {
    at: [u8; Columns::MOST],
    len: u8,
}

impl Columns {
    /// Every price and extra field once.
    const MOST: usize = Prices::NAMES.len() + crate::model::update::MAX_EXTRA;

    /// None when a field is not known here (another node's extra field:
    /// the run is not this node's to apply) or the list is too long.
    pub fn of(fields: &str, names: &[Box<str>]) -> Option<Columns> {
        let mut c = Columns {
            at: [0; Columns::MOST],
            len: 0,
        };
        for name in fields.split(',').filter(|f| !f.is_empty()) {
            *c.at.get_mut(usize::from(c.len))? = Prices::column(name, names)? as u8;
            c.len += 1;
        }
        Some(c)
    }

    /// A positional tail (`back value ...`): its `ts` and prices. None when
    /// a value is short, over or not a number, or the time is out of range.
    pub fn read(&self, wall_ns: u64, tail: &str) -> Option<(u64, Prices)> {
        let mut it = tail.split(' ');
        let back: i128 = it.next()?.parse().ok()?;
        let ts = u64::try_from(i128::from(wall_ns) - back).ok()?;
        let mut prices = Prices::default();
        for &c in &self.at[..usize::from(self.len)] {
            let v = it.next()?;
            if v != "-" {
                prices.set_column(usize::from(c), v.parse().ok()?);
            }
        }
        it.next().is_none().then_some((ts, prices))
    }
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
mod tests {
    use super::*;

    #[test]
    fn entries_parse_back_exactly() {
        let e = Epoch::new();
        let text = format!(
            "U FX.EURUSD {e} 42 1700 99 bid {:?} volume 1e300 iv 0.25",
            0.1 + 0.2
        );
        let names: Vec<Box<str>> = vec!["oi".into(), "iv".into()];
        let Some(Message::Update {
            update,
            epoch,
            seq,
            wall_ns,
        }) = parse(&text, &names)
        else {
            panic!("{text}");
        };
        assert_eq!((epoch, seq, wall_ns), (e, 42, 99));
        assert_eq!(update.topic, "FX.EURUSD");
        assert_eq!(update.timestamp_ns, 1700);
        assert_eq!(update.prices.bid, Some(0.1 + 0.2));
        assert_eq!(update.prices.volume, Some(1e300));
        assert_eq!(
            update.prices.extra.get(1),
            Some(0.25),
            "an extra field by name"
        );
        assert_eq!(parse(&text, &[]), None, "a field this node does not know");
        assert_eq!(parse("C X", &[]), Some(Message::Clear("X".into())));
        assert_eq!(
            parse("S X 1", &[]),
            Some(Message::Stale("X".into(), Liveness::Stale))
        );
        assert_eq!(
            parse("A X 250", &[]),
            Some(Message::StaleAfter(
                "X".into(),
                Some(Duration::from_millis(250))
            ))
        );
        assert_eq!(
            parse("A X -", &[]),
            Some(Message::StaleAfter("X".into(), None))
        );
        assert_eq!(parse("A X soon", &[]), None);
        for bad in ["", "U", "U X zz 1 1 1", "U X 00000000 1 1 1 nope 1", "Q X"] {
            assert_eq!(parse(bad, &[]), None, "{bad}");
        }
    }

    #[test]
    fn a_message_holds_runs_and_lines_each_entry_naming_its_topic() {
        let e = Epoch::new();
        let msg = format!(
            "R A {e} 7 3 9 bid,ask\n8 1.5 -\n7 1.6 -\n6 - 2\nC B\nR D {e} 1 1 9 last\n5 3\nS C 1"
        );
        let got: Vec<Entry> = entries(&msg).collect();
        let topics: Vec<&str> = got.iter().map(Entry::topic).collect();
        assert_eq!(topics, ["A", "A", "A", "B", "D", "C"]);
        let seqs: Vec<u64> = got
            .iter()
            .filter_map(|x| match x.parse(&[])? {
                Message::Update { seq, update, .. } => Some(seq * 10 + update.timestamp_ns),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, [51, 62, 73, 14], "a run is numbered up to its last");
        let Some(Message::Update {
            update,
            epoch,
            wall_ns,
            ..
        }) = got[1].parse(&[])
        else {
            panic!("{:?}", got[1]);
        };
        assert_eq!((update.topic.as_str(), epoch, wall_ns), ("A", e, 9));
        assert_eq!(update.prices.bid, Some(1.6));
        assert_eq!(got[3].parse(&[]), Some(Message::Clear("B".into())));
    }

    #[test]
    fn a_run_with_fields_reads_its_tails_by_position() {
        let e = Epoch::new();
        let names: Vec<Box<str>> = vec!["iv".into()];
        // wall 1000: back 10 is ts 990, back -5 is ts 1005.
        let msg = format!("R A {e} 9 3 1000 bid,ask,iv\n10 1.5 2.5 -\n0 - 2.75 0.25\n-5 1.25 - -");
        let got: Vec<Message> = entries(&msg).filter_map(|x| x.parse(&names)).collect();
        let Message::Update { update, seq, .. } = &got[0] else {
            panic!("{got:?}");
        };
        assert_eq!((*seq, update.timestamp_ns), (7, 990));
        assert_eq!(
            (update.prices.bid, update.prices.ask),
            (Some(1.5), Some(2.5))
        );
        assert!(update.prices.extra.is_empty(), "`-`: not carried");
        let Message::Update { update, seq, .. } = &got[1] else {
            panic!("{got:?}");
        };
        assert_eq!(
            (*seq, update.timestamp_ns, update.prices.bid),
            (8, 1000, None)
        );
        assert_eq!(update.prices.extra.get(0), Some(0.25), "an extra field");
        let Message::Update { update, seq, .. } = &got[2] else {
            panic!("{got:?}");
        };
        assert_eq!((*seq, update.timestamp_ns), (9, 1005));
        assert_eq!((update.prices.bid, update.prices.ask), (Some(1.25), None));
        // A value short or over, a field unknown here, a time out of range:
        // not ours.
        for (fields, tail) in [
            ("bid,ask", "0 1"),
            ("bid", "0 1 2"),
            ("bid,oi", "0 1 2"),
            ("bid", "1001 1"),
            ("bid", "x 1"),
            ("bid", "0 one"),
        ] {
            let text = format!("R A {e} 1 1 1000 {fields}\n{tail}");
            let got: Vec<Entry> = entries(&text).collect();
            assert_eq!(got.len(), 1, "{fields} / {tail}");
            assert_eq!(got[0].parse(&names), None, "{fields} / {tail}");
        }
        // The previous form (names in each tail, no fields in the header)
        // is still read.
        let old = format!("R A {e} 1 1 1000\n990 bid 1.5");
        let got: Vec<Message> = entries(&old).filter_map(|x| x.parse(&[])).collect();
        let Some(Message::Update { update, .. }) = got.first() else {
            panic!("{got:?}");
        };
        assert_eq!((update.timestamp_ns, update.prices.bid), (990, Some(1.5)));
    }

    #[test]
    fn a_run_header_that_does_not_add_up_is_not_taken_for_a_run() {
        let e = Epoch::new();
        for bad in [
            format!("R A {e} 2 3 9"),
            format!("R A {e} 5 0 9"),
            format!("R A {e} x 1 9"),
            "R A zz 5 1 9".to_string(),
            format!("R A {e} 5 1"),
            format!("R A {e} 5 1 9 bid 9"),
            "R".to_string(),
        ] {
            let text = format!("{bad}\n1 bid 1");
            let got: Vec<Entry> = entries(&text).collect();
            assert_eq!(got.len(), 2, "{bad}: the header and the line after it");
            assert_eq!(got[0].parse(&[]), None, "{bad}");
            assert_eq!(got[1].parse(&[]), None, "a tail outside a run: {bad}");
        }
        // A run cut short ends with the message.
        let short = format!("R A {e} 9 3 9\n1 bid 1");
        assert_eq!(entries(&short).count(), 1);
    }
}
