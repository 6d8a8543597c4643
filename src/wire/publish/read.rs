//! Reading a `/publish` frame straight from its MessagePack bytes, with no
//! intermediate tree: the keys are compared in place and each update is
//! built directly, so an update costs its own topic string and nothing
//! else (a book update also its levels). The general deserializer this
//! replaces buffered the whole frame (every key a `String`) to tell a map
//! from an array, then each update's unknown keys again, and cost more
//! per update than the router does.
//!
//! Accepted exactly as before (a test decodes random frames both ways):
//! one update (a map) or an array of them; numbers as any MessagePack
//! integer or float; `nil` for an absent optional key; every other key an
//! extra field of the server's, a number. Anything else refuses the frame.

use super::{Item, PublishError};
use crate::model::book::{Level, Levels, Side};
use crate::model::update::{Extra, Field, Prices, Update};

type Result<T> = std::result::Result<T, PublishError>;

fn bad(why: impl Into<String>) -> PublishError {
    PublishError::Undecodable(rmp_serde::decode::Error::Syntax(why.into()))
}

/// A cursor over the frame's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| bad("frame ends early"))?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(bad("frame ends early"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, b| (a << 8) | u64::from(*b)))
    }

    fn peek(&self) -> Option<u8> {
        self.buf.first().copied()
    }

    /// A map's length, if the next value is a map.
    fn map_len(&mut self, marker: u8) -> Option<Result<usize>> {
        Some(match marker {
            0x80..=0x8f => Ok(usize::from(marker & 0x0f)),
            0xde => self.be(2).map(|n| n as usize),
            0xdf => self.be(4).map(|n| n as usize),
            _ => return None,
        })
    }

    fn array_len(&mut self, marker: u8) -> Option<Result<usize>> {
        Some(match marker {
            0x90..=0x9f => Ok(usize::from(marker & 0x0f)),
            0xdc => self.be(2).map(|n| n as usize),
            0xdd => self.be(4).map(|n| n as usize),
            _ => return None,
        })
    }

    /// A string's bytes, if `marker` starts a string (not checked as
    /// UTF-8: keys are compared as bytes).
    fn bytes_after(&mut self, marker: u8) -> Option<Result<&'a [u8]>> {
        let len = match marker {
            0xa0..=0xbf => Ok(usize::from(marker & 0x1f)),
            0xd9 => self.be(1).map(|n| n as usize),
            0xda => self.be(2).map(|n| n as usize),
            0xdb => self.be(4).map(|n| n as usize),
            _ => return None,
        };
        Some(len.and_then(|n| self.take(n)))
    }

    fn str_after(&mut self, marker: u8) -> Option<Result<&'a str>> {
        let bytes = self.bytes_after(marker)?;
        Some(bytes.and_then(|b| std::str::from_utf8(b).map_err(|_| bad("a string is not UTF-8"))))
    }

    /// A key's bytes: only an unknown one (an extra field's name) is then
    /// checked as UTF-8.
    fn raw_str(&mut self) -> Result<&'a [u8]> {
        let m = self.byte()?;
        self.bytes_after(m)
            .unwrap_or_else(|| Err(bad("a key must be a string")))
    }

    fn str(&mut self, what: &str) -> Result<&'a str> {
        let m = self.byte()?;
        self.str_after(m)
            .unwrap_or_else(|| Err(bad(format!("{what} must be a string"))))
    }

    /// Any MessagePack number as an `f64`, or None for another type (the
    /// marker is consumed; the value is not).
    fn number_after(&mut self, m: u8) -> Option<Result<f64>> {
        Some(match m {
            0x00..=0x7f => Ok(f64::from(m)),
            0xe0..=0xff => Ok(f64::from(m as i8)),
            0xcc => self.be(1).map(|v| v as f64),
            0xcd => self.be(2).map(|v| v as f64),
            0xce => self.be(4).map(|v| v as f64),
            0xcf => self.be(8).map(|v| v as f64),
            0xd0 => self.be(1).map(|v| v as u8 as i8 as f64),
            0xd1 => self.be(2).map(|v| v as u16 as i16 as f64),
            0xd2 => self.be(4).map(|v| v as u32 as i32 as f64),
            0xd3 => self.be(8).map(|v| v as i64 as f64),
            0xca => self.be(4).map(|v| f64::from(f32::from_bits(v as u32))),
            0xcb => self.be(8).map(f64::from_bits),
            _ => return None,
        })
    }

    /// An optional number: `nil` is absent.
    fn opt_number(&mut self, key: &str) -> Result<Option<f64>> {
        match self.byte()? {
            0xc0 => Ok(None),
            m => self
                .number_after(m)
                .unwrap_or_else(|| Err(bad(format!("{key} must be a number"))))
                .map(Some),
        }
    }

    /// An optional unsigned integer (`ts`).
    fn opt_u64(&mut self, key: &str) -> Result<Option<u64>> {
        let v = match self.byte()? {
            0xc0 => return Ok(None),
            m @ 0x00..=0x7f => u64::from(m),
            0xcc => self.be(1)?,
            0xcd => self.be(2)?,
            0xce => self.be(4)?,
            0xcf => self.be(8)?,
            m @ (0xd0..=0xd3) => {
                let v = self.be(1 << (m - 0xd0))?;
                let bits = 8 << (m - 0xd0);
                // Signed on the wire but not negative is fine.
                if bits < 64 && v >> (bits - 1) & 1 == 1 || bits == 64 && (v as i64) < 0 {
                    return Err(bad(format!("{key} must not be negative")));
                }
                v
            }
            _ => return Err(bad(format!("{key} must be an unsigned integer"))),
        };
        Ok(Some(v))
    }

    fn opt_bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.byte()? {
            0xc0 => Ok(None),
            0xc2 => Ok(Some(false)),
            0xc3 => Ok(Some(true)),
            _ => Err(bad(format!("{key} must be true or false"))),
        }
    }

    /// `[[price, size], …]`, or `nil`.
    fn opt_levels(&mut self, key: &str, side: Side, into: &mut Vec<Level>) -> Result<bool> {
        let m = self.byte()?;
        if m == 0xc0 {
            return Ok(false);
        }
        let n = self
            .array_len(m)
            .unwrap_or_else(|| Err(bad(format!("{key} must be an array of [price, size]"))))?;
        into.reserve(n.min(self.buf.len()));
        for _ in 0..n {
            let m = self.byte()?;
            if self.array_len(m).transpose()? != Some(2) {
                return Err(bad(format!("each of {key} must be [price, size]")));
            }
            let price = self.number(key)?;
            let size = self.number(key)?;
            into.push(Level { side, price, size });
        }
        Ok(true)
    }

    fn number(&mut self, key: &str) -> Result<f64> {
        let m = self.byte()?;
        self.number_after(m)
            .unwrap_or_else(|| Err(bad(format!("{key} must be a number"))))
    }

    /// Passes over one value of any type (an extra field that is not a
    /// number, to name it in the error).
    fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > 64 {
            return Err(bad("nested too deep"));
        }
        let m = self.byte()?;
        if let Some(n) = self.map_len(m) {
            for _ in 0..n? * 2 {
                self.skip(depth + 1)?;
            }
            return Ok(());
        }
        if let Some(n) = self.array_len(m) {
            for _ in 0..n? {
                self.skip(depth + 1)?;
            }
            return Ok(());
        }
        if let Some(s) = self.str_after(m) {
            return s.map(|_| ());
        }
        if let Some(n) = self.number_after(m) {
            return n.map(|_| ());
        }
        let len = match m {
            0xc0 | 0xc2 | 0xc3 => 0,
            0xc4 | 0xc7 => self.be(1)? as usize + usize::from(m == 0xc7),
            0xc5 | 0xc8 => self.be(2)? as usize + usize::from(m == 0xc8),
            0xc6 | 0xc9 => self.be(4)? as usize + usize::from(m == 0xc9),
            0xd4 => 2,
            0xd5 => 3,
            0xd6 => 5,
            0xd7 => 9,
            0xd8 => 17,
            _ => return Err(bad("not a MessagePack value")),
        };
        self.take(len).map(|_| ())
    }
}

/// What one entry of the frame said, before it becomes an `Item`.
#[derive(Default)]
struct Entry<'a> {
    topic: Option<&'a str>,
    ts: Option<u64>,
    fields: [Option<f64>; 7],
    clear: Option<bool>,
    /// `bids`, `asks` or `replace` was given (not nil): a book update.
    book: bool,
    /// `bids` or `asks` was given: fields, for the clear check.
    levels_given: bool,
    replace: Option<bool>,
    levels: Vec<Level>,
    /// Extra keys, as (key, the number or None): checked in key order, as
    /// a sorted map would give them.
    others: Vec<(&'a str, Option<f64>)>,
}

fn entry<'a>(r: &mut Reader<'a>) -> Result<Entry<'a>> {
    let m = r.byte()?;
    let n = r
        .map_len(m)
        .unwrap_or_else(|| Err(bad("an update must be a map")))?;
    let mut e = Entry::default();
    let (mut bids, mut asks) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let key = r.raw_str()?;
        match key {
            b"topic" => e.topic = Some(r.str("topic")?),
            b"ts" => e.ts = r.opt_u64("ts")?,
            b"clear" => e.clear = r.opt_bool("clear")?,
            b"replace" => {
                e.replace = r.opt_bool("replace")?;
                e.book |= e.replace.is_some();
            }
            b"bids" => {
                bids.clear();
                let given = r.opt_levels("bids", Side::Bid, &mut bids)?;
                e.book |= given;
                e.levels_given |= given;
            }
            b"asks" => {
                asks.clear();
                let given = r.opt_levels("asks", Side::Ask, &mut asks)?;
                e.book |= given;
                e.levels_given |= given;
            }
            _ => match Prices::NAMES.iter().position(|k| k.as_bytes() == key) {
                Some(i) => e.fields[i] = r.opt_number(Prices::NAMES[i])?,
                None => {
                    let key = std::str::from_utf8(key).map_err(|_| bad("a key is not UTF-8"))?;
                    // Not finite is not a number here, as the JSON value it
                    // was read into before could not hold one.
                    let v = match r.peek() {
                        Some(m) if is_number_marker(m) => Some(r.number(key)?),
                        _ => {
                            r.skip(0)?;
                            None
                        }
                    };
                    let v = v.filter(|v| v.is_finite());
                    e.others.push((key, v));
                }
            },
        }
    }
    if e.topic.is_none() {
        return Err(bad("missing field `topic`"));
    }
    bids.extend(asks);
    e.levels = bids;
    Ok(e)
}

/// True when marker `m` starts a number.
fn is_number_marker(m: u8) -> bool {
    matches!(m, 0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 | 0xca | 0xcb)
}

impl Entry<'_> {
    fn has_fields(&self) -> bool {
        self.fields.iter().any(Option::is_some) || self.levels_given || !self.others.is_empty()
    }

    fn into_item(mut self, index: usize, names: &[Box<str>]) -> Result<Item> {
        let topic = self.topic.ok_or_else(|| bad("missing field `topic`"))?;
        if self.clear == Some(true) {
            return Ok(Item::Clear(topic.to_string()));
        }
        let mut extra = Extra::default();
        // A later duplicate wins, as in a map; checked in key order.
        self.others.sort_by(|a, b| a.0.cmp(b.0));
        self.others.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        for (key, v) in &self.others {
            let Some(field) = Field::named(key, names) else {
                let key = key.chars().take(40).collect();
                return Err(PublishError::UnknownKey { index, key });
            };
            match v {
                Some(v) => extra.set(field.index(), *v),
                None => {
                    let key = key.to_string();
                    return Err(PublishError::NotANumber { index, key });
                }
            }
        }
        let mut prices = Prices::from_array(self.fields);
        prices.extra = extra;
        let mut update = Update::new(topic);
        update.prices = prices;
        if let Some(ts) = self.ts {
            update.timestamp_ns = ts;
        }
        if self.book {
            update.levels = Some(Box::new(Levels {
                levels: self.levels,
                replace: self.replace == Some(true),
            }));
        }
        Ok(Item::Update(update))
    }
}

/// Decodes one frame (see the module's doc). Each entry becomes its item
/// as it is read (no list of entries in between); the refusals keep their
/// order of precedence: a frame that cannot be read at all, then a clear
/// with fields, then the first entry that names an unknown key.
pub(super) fn read_frame(payload: &[u8], names: &[Box<str>]) -> Result<Vec<Item>> {
    let mut r = Reader { buf: payload };
    let first = r.peek().ok_or_else(|| bad("empty frame"))?;
    let count = match first {
        0x80..=0x8f | 0xde | 0xdf => None,
        _ => {
            let m = r.byte()?;
            let n = r
                .array_len(m)
                .unwrap_or_else(|| Err(bad("a frame is an update or an array of updates")))?;
            Some(n)
        }
    };
    let n = count.unwrap_or(1);
    let mut items = Vec::with_capacity(n.min(payload.len()));
    let mut clear_with_fields = None;
    let mut refused = None;
    for index in 0..n {
        let e = entry(&mut r)?;
        if e.clear == Some(true) && e.has_fields() {
            clear_with_fields.get_or_insert(index);
        }
        if clear_with_fields.is_some() || refused.is_some() {
            continue;
        }
        match e.into_item(index, names) {
            Ok(item) => items.push(item),
            Err(why) => refused = Some(why),
        }
    }
    if !r.buf.is_empty() {
        return Err(bad("bytes after the frame's value"));
    }
    if let Some(index) = clear_with_fields {
        return Err(PublishError::ClearWithFields { index, count: n });
    }
    match refused {
        Some(why) => Err(why),
        None => Ok(items),
    }
}
