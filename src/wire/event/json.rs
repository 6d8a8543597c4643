//! `snapshot` and `update` events written as JSON directly, without a
//! general serializer: the router encodes one per update, so this is on
//! its hot path. The bytes are exactly what `serde_json` writes for the
//! same event (same key order, same number formatting, `serde_json`'s own
//! formatter for numbers); a test compares the two on random events.
//!
//! Topic names, field names and epochs are checked where they enter (a
//! topic is ASCII letters, digits and `._-:/`), so they need no escaping;
//! a string that would is escaped anyway by `serde_json`, never written raw.

use crate::model::event::{Price, PriceKind};
use serde_json::ser::{CompactFormatter, Formatter};

/// Writes the event into `out`. Trade snapshots (with their list of
/// trades) are not written here: `encode_price` sends those to serde.
pub(crate) fn write_price(out: &mut Vec<u8>, p: &Price<'_>, names: &[Box<str>]) {
    debug_assert!(p.trades.is_none());
    out.extend_from_slice(match p.kind {
        PriceKind::Snapshot => b"{\"event\":\"snapshot\",\"topic\":",
        PriceKind::Update => b"{\"event\":\"update\",\"topic\":",
    });
    string(out, p.topic);
    out.extend_from_slice(b",\"seq\":");
    uint(out, p.seq);
    out.extend_from_slice(b",\"ts\":");
    uint(out, p.ts);
    for (name, v) in p.prices.named(names) {
        out.push(b',');
        string(out, name);
        out.push(b':');
        float(out, v);
    }
    if let Some(e) = p.epoch {
        out.extend_from_slice(b",\"epoch\":");
        string(out, e);
    }
    if p.stale {
        out.extend_from_slice(b",\"stale\":true");
    }
    if p.conflated > 1 {
        out.extend_from_slice(b",\"conflated\":");
        uint(out, u64::from(p.conflated));
    }
    out.push(b'}');
}

/// A JSON string: raw when nothing in it needs escaping (always, for the
/// names this writer is given), else through `serde_json`.
#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[inline]
fn uint(out: &mut Vec<u8>, v: u64) {
    let _ = CompactFormatter.write_u64(out, v);
}

/// A number as `serde_json` writes an `f64`: `null` when not finite (never,
/// for checked prices).
#[inline]
fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let _ = CompactFormatter.write_f64(out, v);
    } else {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::super::PriceEvent;
    use super::*;
    use crate::model::update::Prices;

    use rand::{rngs::SmallRng, Rng as _, SeedableRng};

    /// A seeded generator: the test is random but repeatable.
    struct Rng(SmallRng);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.random()
        }

        /// Prices of every kind the formatter meets: integers, fractions,
        /// tiny and huge magnitudes, negatives, zero.
        fn number(&mut self) -> f64 {
            let mantissa = (self.next() % 10_000_000) as f64;
            let scale =
                [1.0, 0.01, 1e-9, 1e12, 1e21, -0.5, 0.0, 1e-300, 3.0][(self.next() % 9) as usize];
            mantissa * scale
        }

        fn maybe(&mut self) -> Option<f64> {
            (self.next() % 2 == 0).then(|| self.number())
        }
    }

    fn serde(p: &Price<'_>, names: &[Box<str>]) -> Vec<u8> {
        serde_json::to_vec(&PriceEvent { price: p, names }).unwrap()
    }

    #[test]
    fn writes_exactly_what_serde_json_writes_for_random_events() {
        let names: Vec<Box<str>> = vec!["open_interest".into(), "iv".into()];
        let mut rng = Rng(SmallRng::seed_from_u64(0x9e37_79b9_7f4a_7c15));
        for round in 0..5_000 {
            let mut prices = Prices::from_array(std::array::from_fn(|_| rng.maybe()));
            for i in 0..names.len() {
                if let Some(v) = rng.maybe() {
                    prices.extra.set(i, v);
                }
            }
            let topic = format!("T.{round}:x/y-z_{}", rng.next() % 1000);
            let price = Price {
                kind: match rng.next() % 2 {
                    0 => PriceKind::Update,
                    _ => PriceKind::Snapshot,
                },
                epoch: (rng.next() % 3 == 0).then_some("9f3a00c1"),
                stale: rng.next() % 4 == 0,
                conflated: (rng.next() % 4) as u32,
                ..Price::update(&topic, rng.next(), rng.next(), &prices)
            };
            let mut ours = Vec::new();
            write_price(&mut ours, &price, &names);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde(&price, &names)).unwrap()
            );
        }
    }

    #[test]
    fn a_string_that_needs_escaping_is_escaped() {
        let prices = Prices {
            bid: Some(1.0),
            ..Prices::default()
        };
        let price = Price::update("a\"b\\c\n", 1, 2, &prices);
        let mut ours = Vec::new();
        write_price(&mut ours, &price, &[]);
        assert_eq!(ours, serde(&price, &[]));
        let v: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        assert_eq!(v["topic"], "a\"b\\c\n");
    }

    #[test]
    fn a_number_that_is_not_finite_is_null_as_serde_writes_it() {
        let prices = Prices {
            bid: Some(f64::NAN),
            ask: Some(f64::INFINITY),
            ..Prices::default()
        };
        let price = Price::update("X", 1, 2, &prices);
        let mut ours = Vec::new();
        write_price(&mut ours, &price, &[]);
        assert_eq!(ours, serde(&price, &[]));
    }
}
