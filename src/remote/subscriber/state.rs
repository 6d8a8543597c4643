//! What a subscriber keeps of each topic, kept as docs/PROTOCOL.md says a
//! client should: a snapshot replaces the value, an update merges its
//! fields, `seq` moves by `conflated` (1 when absent) and any other step is
//! a gap; a book is replaced by `book` and changed by `book_update`, each
//! verified against its `checksum`.

use super::Event;
use crate::model::event::PROTOCOL_KEYS;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};

/// One topic's merged value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicValue {
    /// The `seq` of the last event applied.
    pub seq: u64,
    /// The numbering `seq` belongs to.
    pub epoch: Option<String>,
    /// Its publisher went away or it has been quiet for `stale_after`.
    pub stale: bool,
    /// Every field published (price fields and extra fields, by name), each
    /// at its latest value.
    pub fields: BTreeMap<String, f64>,
}

/// One book topic's levels, best first: `(price, size)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookValue {
    /// The `seq` of the last event applied.
    pub seq: u64,
    /// Levels per side the subscription receives.
    pub depth: usize,
    /// Bids, highest first.
    pub bids: Vec<(f64, f64)>,
    /// Asks, lowest first.
    pub asks: Vec<(f64, f64)>,
}

/// Every topic's value and book.
#[derive(Debug, Default)]
pub(super) struct Held {
    pub values: HashMap<String, TopicValue>,
    pub books: HashMap<String, BookValue>,
}

impl Held {
    /// Applies one event and says what it was; `Event::Gap` when the
    /// copy can no longer be trusted (the caller resubscribes).
    pub fn apply(&mut self, ev: &Json) -> Event {
        let topic = ev["topic"].as_str().unwrap_or_default().to_string();
        let seq = ev["seq"].as_u64().unwrap_or(0);
        match ev["event"].as_str().unwrap_or_default() {
            "snapshot" => self.snapshot(topic, seq, ev),
            "update" => self.update(topic, seq, ev),
            "book" => self.book(topic, seq, ev),
            "book_update" => self.book_update(topic, seq, ev),
            "status" => {
                let stale = ev["state"] == "stale";
                if let Some(v) = self.values.get_mut(&topic) {
                    v.stale = stale;
                }
                Event::Status { topic, stale }
            }
            "cleared" => {
                self.values.remove(&topic);
                self.books.remove(&topic);
                Event::Cleared { topic }
            }
            _ => Event::Other,
        }
    }

    fn snapshot(&mut self, topic: String, seq: u64, ev: &Json) -> Event {
        let value = TopicValue {
            seq,
            epoch: ev["epoch"].as_str().map(str::to_string),
            stale: ev["stale"].as_bool().unwrap_or(false),
            fields: fields_of(ev),
        };
        self.values.insert(topic.clone(), value);
        Event::Snapshot { topic, seq }
    }

    fn update(&mut self, topic: String, seq: u64, ev: &Json) -> Event {
        let conflated = ev["conflated"].as_u64().unwrap_or(1);
        let epoch = ev["epoch"].as_str();
        let Some(v) = self.values.get_mut(&topic) else {
            // The first value of a topic subscribed before it had one.
            let fields = fields_of(ev);
            let epoch = epoch.map(str::to_string);
            let value = TopicValue {
                seq,
                epoch,
                stale: false,
                fields,
            };
            self.values.insert(topic.clone(), value);
            return Event::Update {
                topic,
                seq,
                conflated,
            };
        };
        let new_numbering = epoch.is_some_and(|e| v.epoch.as_deref() != Some(e));
        let expected = v.seq + conflated;
        if !new_numbering && seq != expected {
            return Event::Gap {
                topic,
                expected,
                got: seq,
            };
        }
        if new_numbering {
            v.epoch = epoch.map(str::to_string);
            v.fields.clear();
        }
        v.seq = seq;
        v.stale = false;
        v.fields.extend(fields_of(ev));
        Event::Update {
            topic,
            seq,
            conflated,
        }
    }

    fn book(&mut self, topic: String, seq: u64, ev: &Json) -> Event {
        let book = BookValue {
            seq,
            depth: ev["depth"].as_u64().unwrap_or(10) as usize,
            bids: levels(&ev["bids"]),
            asks: levels(&ev["asks"]),
        };
        let fine = checksum_matches(&book, ev);
        self.books.insert(topic.clone(), book);
        match fine {
            true => Event::Book { topic, seq },
            false => Event::Gap {
                topic,
                expected: seq,
                got: seq,
            },
        }
    }

    fn book_update(&mut self, topic: String, seq: u64, ev: &Json) -> Event {
        let conflated = ev["conflated"].as_u64().unwrap_or(1);
        let Some(book) = self.books.get_mut(&topic) else {
            return Event::Gap {
                topic,
                expected: 0,
                got: seq,
            };
        };
        let expected = book.seq + conflated;
        if seq != expected {
            return Event::Gap {
                topic,
                expected,
                got: seq,
            };
        }
        book.seq = seq;
        apply_levels(&mut book.bids, &levels(&ev["bids"]), |a, b| a > b);
        apply_levels(&mut book.asks, &levels(&ev["asks"]), |a, b| a < b);
        if !checksum_matches(book, ev) {
            return Event::Gap {
                topic,
                expected: seq,
                got: seq,
            };
        }
        Event::BookUpdate {
            topic,
            seq,
            conflated,
        }
    }
}

/// The numeric fields of an event, by name.
fn fields_of(ev: &Json) -> BTreeMap<String, f64> {
    let Some(map) = ev.as_object() else {
        return BTreeMap::new();
    };
    map.iter()
        .filter(|(k, _)| !PROTOCOL_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect()
}

fn levels(v: &Json) -> Vec<(f64, f64)> {
    let Some(items) = v.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|l| Some((l.get(0)?.as_f64()?, l.get(1)?.as_f64()?)))
        .collect()
}

/// Applies changed levels (size 0 removes) to a side kept best first
/// (`better(a, b)`: price a goes before price b).
fn apply_levels(side: &mut Vec<(f64, f64)>, changes: &[(f64, f64)], better: fn(f64, f64) -> bool) {
    for &(price, size) in changes {
        let at = side.iter().position(|&(p, _)| !better(p, price));
        match at {
            Some(i) if side[i].0 == price => {
                if size == 0.0 {
                    side.remove(i);
                } else {
                    side[i].1 = size;
                }
            }
            Some(i) if size != 0.0 => side.insert(i, (price, size)),
            None if size != 0.0 => side.push((price, size)),
            _ => {}
        }
    }
}

fn checksum_matches(book: &BookValue, ev: &Json) -> bool {
    match ev["checksum"].as_u64() {
        Some(sum) => crate::model::book::checksum(&book.bids, &book.asks) as u64 == sum,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn updates_merge_and_a_seq_step_that_conflated_does_not_explain_is_a_gap() {
        let mut h = Held::default();
        h.apply(&json!({"event":"snapshot","topic":"A","seq":3,"epoch":"e1","bid":1.0,"ask":2.0}));
        h.apply(&json!({"event":"update","topic":"A","seq":4,"bid":1.5}));
        h.apply(&json!({"event":"update","topic":"A","seq":7,"conflated":3,"last":9.0}));
        let v = &h.values["A"];
        assert_eq!(v.seq, 7);
        assert_eq!(v.fields["bid"], 1.5);
        assert_eq!(v.fields["ask"], 2.0);
        assert_eq!(v.fields["last"], 9.0);
        let gap = h.apply(&json!({"event":"update","topic":"A","seq":9,"bid":1.0}));
        assert_eq!(
            gap,
            Event::Gap {
                topic: "A".into(),
                expected: 8,
                got: 9
            }
        );
        // A new numbering (after a clear or a restart) is not a gap.
        let fresh = h.apply(&json!({"event":"update","topic":"A","seq":1,"epoch":"e2","bid":3.0}));
        assert!(matches!(fresh, Event::Update { seq: 1, .. }), "{fresh:?}");
        assert_eq!(
            h.values["A"].fields.len(),
            1,
            "the old numbering's fields are gone"
        );
    }

    #[test]
    fn a_book_is_kept_by_its_changes_and_checked_against_every_checksum() {
        let mut h = Held::default();
        let (bids, asks) = (vec![(10.0, 1.0), (9.0, 2.0)], vec![(11.0, 1.0)]);
        let sum = crate::model::book::checksum(&bids, &asks);
        let ev = h.apply(&json!({"event":"book","topic":"B.book","seq":1,"depth":10,
            "bids":[[10.0,1.0],[9.0,2.0]],"asks":[[11.0,1.0]],"checksum":sum}));
        assert_eq!(
            ev,
            Event::Book {
                topic: "B.book".into(),
                seq: 1
            }
        );
        let after = (vec![(9.5, 4.0), (9.0, 2.0)], vec![(11.0, 1.0)]);
        let sum = crate::model::book::checksum(&after.0, &after.1);
        let ev = h.apply(&json!({"event":"book_update","topic":"B.book","seq":2,
            "bids":[[10.0,0.0],[9.5,4.0]],"asks":[],"checksum":sum}));
        assert!(matches!(ev, Event::BookUpdate { seq: 2, .. }), "{ev:?}");
        assert_eq!(h.books["B.book"].bids, after.0);
        let bad = h.apply(&json!({"event":"book_update","topic":"B.book","seq":3,
            "bids":[[9.0,5.0]],"asks":[],"checksum":1}));
        assert!(
            matches!(bad, Event::Gap { .. }),
            "a wrong checksum: {bad:?}"
        );
    }
}
