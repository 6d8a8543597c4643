//! A run's tails: how each update of a run (`message`) carries its time
//! and values after the run's header, which names the run's fields once.
//! Both sides live here: the writer's `Record` and the reader's `Columns`.
//!
//! **Binary** (written by this version): the header ends `fields nbytes`,
//! and the `nbytes` after its newline are the records, one per update:
//! - `wall - ts` (signed: how far the update's time lies back from the
//!   run's wall time), zigzag-mapped, as an LEB128 varint: a few bytes
//!   where the `ts` took nineteen digits;
//! - a presence mask of `ceil(fields / 8)` bytes, least significant bit
//!   first: bit `i` set when the update carries the run's `i`-th field;
//! - each carried value as 8 bytes, IEEE 754 little-endian, in field
//!   order.
//!
//! Binary, because shortest-decimal formatting (`ryu`) was a fifth of the
//! writer's time and parsing it back an eighth of the reader's, and a
//! value that is not short in decimal (`100.38000000000001`) took 18
//! bytes, each of which Redis's Lua hashes three times, against 8
//! (BENCHMARKS.md, "Issue 24", session 22). The bytes cannot hold a
//! newline-free guarantee, hence the length in the header.
//!
//! **Text** (the previous form, still read): one line per update,
//! `back value ...`, `-` for a field the update does not carry.

use crate::model::update::{Prices, MAX_EXTRA};

/// Most fields a run names: every price field and every extra field once.
const MOST: usize = Prices::NAMES.len() + MAX_EXTRA;
/// Longest varint of a 128-bit number.
const MOST_VARINT: usize = 19;

/// A run's tail for one update, as `message::Entries` cut it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tail<'a> {
    /// `back value ...` (the previous form).
    Text(&'a str),
    /// One binary record.
    Binary(&'a [u8]),
}

/// A run's fields, looked up once for all its tails (`Prices::column`):
/// the reader reads a run's tails with one lookup per field, not one per
/// value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Columns {
    at: [u8; MOST],
    len: u8,
}

impl Columns {
    /// None when a field is not known here (another node's extra field:
    /// the run is not this node's to apply) or the list is too long.
    pub fn of(fields: &str, names: &[Box<str>]) -> Option<Columns> {
        let mut c = Columns {
            at: [0; MOST],
            len: 0,
        };
        for name in field_names(fields) {
            *c.at.get_mut(usize::from(c.len))? = Prices::column(name, names)? as u8;
            c.len += 1;
        }
        Some(c)
    }

    fn columns(&self) -> &[u8] {
        &self.at[..usize::from(self.len)]
    }

    /// An update's tail: its `ts` and prices. None when it does not read
    /// (a value short, over or not a number, the time out of range).
    pub fn read(&self, wall_ns: u64, tail: Tail) -> Option<(u64, Prices)> {
        match tail {
            Tail::Text(text) => self.read_text(wall_ns, text),
            Tail::Binary(record) => self.read_binary(wall_ns, record),
        }
    }

    fn read_text(&self, wall_ns: u64, tail: &str) -> Option<(u64, Prices)> {
        let mut it = tail.split(' ');
        let back: i128 = it.next()?.parse().ok()?;
        let mut prices = Prices::default();
        for &c in self.columns() {
            let v = it.next()?;
            if v != "-" {
                prices.set_column(usize::from(c), v.parse().ok()?);
            }
        }
        it.next()
            .is_none()
            .then_some((ts_of(wall_ns, back)?, prices))
    }

    fn read_binary(&self, wall_ns: u64, record: &[u8]) -> Option<(u64, Prices)> {
        let (back, mut at) = varint(record)?;
        let mask_len = usize::from(self.len).div_ceil(8);
        let mask = record.get(at..at + mask_len)?;
        at += mask_len;
        let mut prices = Prices::default();
        for (i, &c) in self.columns().iter().enumerate() {
            if mask[i / 8] & (1 << (i % 8)) != 0 {
                let bytes = record.get(at..at + 8)?;
                at += 8;
                let v = f64::from_le_bytes(bytes.try_into().ok()?);
                prices.set_column(usize::from(c), v);
            }
        }
        (at == record.len()).then_some((ts_of(wall_ns, unzigzag(back))?, prices))
    }
}

/// The names of a header's `fields` (comma-separated; none when empty).
pub(crate) fn field_names(fields: &str) -> impl Iterator<Item = &str> {
    fields.split(',').filter(|f| !f.is_empty())
}

fn ts_of(wall_ns: u64, back: i128) -> Option<u64> {
    u64::try_from(i128::from(wall_ns) - back).ok()
}

/// The length of the binary record at the start of `bytes`, of a run with
/// `fields` fields; None when it is cut short.
pub(crate) fn record_len(bytes: &[u8], fields: usize) -> Option<usize> {
    let (_, at) = varint(bytes)?;
    let mask = bytes.get(at..at + fields.div_ceil(8))?;
    // Bits past the run's fields are ignored, as `read_binary` does.
    let carried = (0..fields)
        .filter(|&i| mask[i / 8] & (1 << (i % 8)) != 0)
        .count();
    let len = at + mask.len() + 8 * carried;
    (len <= bytes.len()).then_some(len)
}

/// A varint at the start of `bytes`, and the bytes it took.
fn varint(bytes: &[u8]) -> Option<(u128, usize)> {
    let mut n: u128 = 0;
    for (i, &b) in bytes.iter().take(MOST_VARINT).enumerate() {
        n |= u128::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

fn unzigzag(n: u128) -> i128 {
    (n >> 1) as i128 ^ -((n & 1) as i128)
}

/// Writes a run's binary records (the writer's side of `Columns`).
pub(crate) struct Record<'a> {
    /// The run's fields, as `Prices` columns, in header order.
    pub columns: &'a [u8],
    pub wall_ns: u64,
}

impl Record<'_> {
    /// Appends the record of an update (`ts`, `prices`) to `out`.
    pub fn write(&self, out: &mut Vec<u8>, ts: u64, prices: &Prices) {
        let back = i128::from(self.wall_ns) - i128::from(ts);
        let mut n = ((back << 1) ^ (back >> 127)) as u128;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
        let mask_at = out.len();
        out.resize(mask_at + self.columns.len().div_ceil(8), 0);
        for (i, &c) in self.columns.iter().enumerate() {
            if let Some(v) = prices.column_value(usize::from(c)) {
                out[mask_at + i / 8] |= 1 << (i % 8);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_record_reads_back_exactly_and_knows_its_length() {
        let names: Vec<Box<str>> = vec!["oi".into(), "iv".into()];
        let columns = Columns::of("bid,ask,volume,iv", &names).unwrap();
        let record = Record {
            columns: columns.columns(),
            wall_ns: 1_000,
        };
        let mut a = Prices {
            bid: Some(0.1 + 0.2),
            volume: Some(1e300),
            ..Prices::default()
        };
        a.extra.set(1, -0.25);
        let b = Prices {
            ask: Some(100.38000000000001),
            ..Prices::default()
        };
        let mut out = Vec::new();
        // A time after the wall time too (back is signed), and one far off.
        for (ts, p) in [(990, &a), (1_005, &b), (u64::MAX, &b), (0, &a)] {
            let start = out.len();
            record.write(&mut out, ts, p);
            let bytes = &out[start..];
            assert_eq!(record_len(bytes, 4), Some(bytes.len()));
            assert_eq!(
                columns.read(1_000, Tail::Binary(bytes)),
                Some((ts, *p)),
                "{ts}"
            );
        }
        // Records back to back: each one's length cuts the next out.
        let first = record_len(&out, 4).unwrap();
        assert_eq!(
            columns.read(
                1_000,
                Tail::Binary(&out[first..][..record_len(&out[first..], 4).unwrap()])
            ),
            Some((1_005, b))
        );
        // Cut short, or with bytes left over: not a record.
        let one = &out[..first];
        assert_eq!(record_len(&one[..one.len() - 1], 4), None);
        assert_eq!(
            columns.read(1_000, Tail::Binary(&one[..one.len() - 1])),
            None
        );
        assert_eq!(columns.read(1_000, Tail::Binary(&out[..first + 1])), None);
        assert_eq!(record_len(&[0x80; 30], 4), None, "a varint that never ends");
    }

    #[test]
    fn a_text_tail_reads_by_position() {
        let columns = Columns::of("bid,ask", &[]).unwrap();
        assert_eq!(
            columns.read(1_000, Tail::Text("10 1.5 -")),
            Some((
                990,
                Prices {
                    bid: Some(1.5),
                    ..Prices::default()
                }
            ))
        );
        for bad in ["0 1", "0 1 2 3", "x 1 2", "0 one 2", "1001 1 2"] {
            assert_eq!(columns.read(1_000, Tail::Text(bad)), None, "{bad}");
        }
        assert_eq!(Columns::of("bid,oi", &[]), None, "a field unknown here");
    }
}
