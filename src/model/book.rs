//! Order books: a topic whose name ends with `.book` (`BTC-USD.book`) holds
//! price levels, not a price to merge. Publishers send level changes (side,
//! price, size; size 0 removes the level) or a full replacement; the router
//! applies them to the topic's book and sends each subscriber only what
//! changed inside the top `depth` levels it asked for, with a checksum of the
//! top levels so it can verify its copy.
//!
//! Depth is one of a few classes ([`DEPTHS`]): the router encodes an update
//! once per class and format in use, never per subscriber.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// The depths a subscriber may ask for; 10 when it names none.
pub const DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];

/// The depth of a subscription that names none.
pub const DEFAULT_DEPTH: usize = 10;

/// Levels a checksum covers per side (best first).
pub const CHECKSUM_LEVELS: usize = 10;

/// Levels a book keeps per side; a change that would pass it is refused.
pub const MAX_LEVELS_PER_SIDE: usize = 5_000;

/// Is `topic` an order-book topic?
pub fn is_book(topic: &str) -> bool {
    topic.ends_with(".book")
}

/// The class (index in [`DEPTHS`]) of a depth, if it is one.
pub fn class_of(depth: usize) -> Option<usize> {
    DEPTHS.iter().position(|d| *d == depth)
}

/// Which side of the book a level is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buyers: best is the highest price.
    Bid,
    /// Sellers: best is the lowest price.
    Ask,
}

/// One price level as a publisher sends it: size 0 removes the level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Bid or ask.
    pub side: Side,
    /// The level's price.
    pub price: f64,
    /// The quantity at that price, absolute (not a delta); 0 removes it.
    pub size: f64,
}

/// A change to a book: levels to set, applied in order, or with `replace`
/// the whole book (levels of size 0 are then ignored; none empties it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Levels {
    /// The levels, in the order they apply.
    pub levels: Vec<Level>,
    /// The levels are the whole book: every other level is removed.
    pub replace: bool,
}

/// Why a book change is refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BookError {
    /// Levels for a topic whose name does not end with `.book`.
    NotABook,
    /// Price fields for a `.book` topic, which takes levels only.
    PricesOnBook,
    /// A level's price is NaN or infinite.
    BadPrice {
        /// Its position in the change.
        index: usize,
    },
    /// A level's size is negative, NaN or infinite.
    BadSize {
        /// Its position in the change.
        index: usize,
    },
    /// After the change the best bid would be at or above the best ask.
    Crossed {
        /// The best bid it would leave.
        bid: f64,
        /// The best ask it would leave.
        ask: f64,
    },
    /// A side would hold more than [`MAX_LEVELS_PER_SIDE`] levels.
    TooDeep,
}

impl fmt::Display for BookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BookError::NotABook => {
                f.write_str("levels are for order-book topics, whose names end with \".book\"")
            }
            BookError::PricesOnBook => f.write_str(
                "an order-book topic (name ending with \".book\") takes levels, not price fields",
            ),
            BookError::BadPrice { index } => {
                write!(f, "level {index}: the price must be a finite number")
            }
            BookError::BadSize { index } => write!(
                f,
                "level {index}: the size must be a finite number, 0 or more (0 removes the level)"
            ),
            BookError::Crossed { bid, ask } => write!(
                f,
                "the change would cross the book (best bid {bid} at or above best ask {ask}); \
                 the book is unchanged"
            ),
            BookError::TooDeep => write!(
                f,
                "a side of the book would hold more than {MAX_LEVELS_PER_SIDE} levels"
            ),
        }
    }
}

impl Levels {
    /// Checks what can be checked without the book: every price finite,
    /// every size finite and not negative.
    pub fn check(&self) -> Result<(), BookError> {
        for (index, l) in self.levels.iter().enumerate() {
            if !l.price.is_finite() {
                return Err(BookError::BadPrice { index });
            }
            if !l.size.is_finite() || l.size < 0.0 {
                return Err(BookError::BadSize { index });
            }
        }
        Ok(())
    }

    /// Sets nothing and replaces nothing.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty() && !self.replace
    }
}

/// A price as a map key, ordered like the number (total order over finite
/// values; -0.0 is stored as 0.0 so one price is one level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key(i64);

impl Key {
    fn of(price: f64) -> Key {
        let price = if price == 0.0 { 0.0 } else { price };
        let bits = price.to_bits() as i64;
        // Negative floats order backwards as integers: flip their magnitude bits.
        Key(bits ^ (((bits >> 63) as u64) >> 1) as i64)
    }

    fn price(self) -> f64 {
        let bits = self.0 ^ ((((self.0 >> 63) as u64) >> 1) as i64);
        f64::from_bits(bits as u64)
    }
}

/// Levels of one side, best first: (price, size).
pub type Ladder = Vec<(f64, f64)>;

/// A topic's book: both sides, sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    bids: BTreeMap<Key, f64>,
    asks: BTreeMap<Key, f64>,
}

impl Book {
    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Key, f64> {
        match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        }
    }

    /// Applies a checked change; a change that would cross the book or make
    /// it too deep is refused and leaves it as it was.
    pub fn apply(&mut self, change: &Levels) -> Result<(), BookError> {
        if change.replace {
            let mut fresh = Book::default();
            for l in &change.levels {
                fresh.set(l.side, l.price, l.size);
            }
            fresh.sound()?;
            *self = fresh;
            return Ok(());
        }
        // The old size of every level touched, to put back on refusal.
        let mut undo: Vec<(Side, Key, Option<f64>)> = Vec::with_capacity(change.levels.len());
        for l in &change.levels {
            let key = Key::of(l.price);
            let old = self.set(l.side, l.price, l.size);
            undo.push((l.side, key, old));
        }
        if let Err(e) = self.sound() {
            for (side, key, old) in undo.into_iter().rev() {
                let map = self.side_mut(side);
                match old {
                    Some(size) => map.insert(key, size),
                    None => map.remove(&key),
                };
            }
            return Err(e);
        }
        Ok(())
    }

    /// Sets one level (0 removes it); returns its old size.
    fn set(&mut self, side: Side, price: f64, size: f64) -> Option<f64> {
        let map = self.side_mut(side);
        let key = Key::of(price);
        if size == 0.0 {
            map.remove(&key)
        } else {
            map.insert(key, size)
        }
    }

    /// Not crossed, not too deep.
    fn sound(&self) -> Result<(), BookError> {
        if self.bids.len() > MAX_LEVELS_PER_SIDE || self.asks.len() > MAX_LEVELS_PER_SIDE {
            return Err(BookError::TooDeep);
        }
        if let (Some(bid), Some(ask)) = (self.bids.keys().next_back(), self.asks.keys().next()) {
            if bid >= ask {
                return Err(BookError::Crossed {
                    bid: bid.price(),
                    ask: ask.price(),
                });
            }
        }
        Ok(())
    }

    /// The best `n` levels of a side, best first.
    pub fn top(&self, side: Side, n: usize) -> Ladder {
        let to_pair = |(k, s): (&Key, &f64)| (k.price(), *s);
        match side {
            Side::Bid => self.bids.iter().rev().take(n).map(to_pair).collect(),
            Side::Ask => self.asks.iter().take(n).map(to_pair).collect(),
        }
    }

    /// The checksum of the book's top levels (see [`checksum`]).
    pub fn checksum(&self) -> u32 {
        checksum(
            &self.top(Side::Bid, CHECKSUM_LEVELS),
            &self.top(Side::Ask, CHECKSUM_LEVELS),
        )
    }
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`) over the best
/// [`CHECKSUM_LEVELS`] asks, best first, then the best bids, best first;
/// each level as its price then its size, each the 8 bytes of an IEEE-754
/// double, little-endian. Ladders longer than that count only their top.
pub fn checksum(bids: &[(f64, f64)], asks: &[(f64, f64)]) -> u32 {
    let mut crc = Crc32::default();
    for (p, s) in asks.iter().take(CHECKSUM_LEVELS) {
        crc.update8(p.to_le_bytes());
        crc.update8(s.to_le_bytes());
    }
    for (p, s) in bids.iter().take(CHECKSUM_LEVELS) {
        crc.update8(p.to_le_bytes());
        crc.update8(s.to_le_bytes());
    }
    crc.finish()
}

/// CRC-32 with the reflected polynomial 0xEDB88320, eight bytes at a time
/// ("slicing by 8": eight tables built at compile time, one lookup per byte
/// but no dependency between the eight lookups of a step). A checksum runs
/// once per book change on the router's hot path, over 20 levels of 16
/// bytes, so this is about six times faster than a byte at a time.
struct Crc32(u32);

const CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    // Table k: the CRC of a byte followed by k zero bytes.
    let mut k = 1;
    while k < 8 {
        let mut n = 0;
        while n < 256 {
            let prev = t[k - 1][n];
            t[k][n] = t[0][(prev & 0xFF) as usize] ^ (prev >> 8);
            n += 1;
        }
        k += 1;
    }
    t
};

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xFFFF_FFFF)
    }
}

impl Crc32 {
    /// Eight bytes (one price or one size, little-endian) in one step.
    #[inline]
    fn update8(&mut self, bytes: [u8; 8]) {
        let t = &CRC_TABLES;
        let lo = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) ^ self.0;
        let hi = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        self.0 = t[7][(lo & 0xFF) as usize]
            ^ t[6][((lo >> 8) & 0xFF) as usize]
            ^ t[5][((lo >> 16) & 0xFF) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xFF) as usize]
            ^ t[2][((hi >> 8) & 0xFF) as usize]
            ^ t[1][((hi >> 16) & 0xFF) as usize]
            ^ t[0][(hi >> 24) as usize];
    }

    /// Any bytes, one at a time (the reference the fast path is tested against).
    #[cfg(test)]
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = CRC_TABLES[0][((self.0 ^ u32::from(*b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

/// What a subscriber whose window was `before` must apply to hold `after`
/// (both the top levels of one side, best first, cut to its depth): every
/// level that is new or changed in `after`, and every level of `before` gone
/// from `after` with size 0, whether it was removed or pushed out of the
/// window. Levels that move into the window as others leave it are in
/// `after` and not `before`, so they are sent too. Best first.
pub fn window_diff(side: Side, before: &[(f64, f64)], after: &[(f64, f64)]) -> Ladder {
    // Better = earlier in the ladder.
    let order = |a: f64, b: f64| match side {
        Side::Bid => Key::of(b).cmp(&Key::of(a)),
        Side::Ask => Key::of(a).cmp(&Key::of(b)),
    };
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < before.len() || j < after.len() {
        let cmp = match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) => order(b.0, a.0),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match cmp {
            Ordering::Less => {
                out.push((before[i].0, 0.0));
                i += 1;
            }
            Ordering::Greater => {
                out.push(after[j]);
                j += 1;
            }
            Ordering::Equal => {
                if before[i].1 != after[j].1 {
                    out.push(after[j]);
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(side: Side, price: f64, size: f64) -> Level {
        Level { side, price, size }
    }

    #[test]
    fn keys_order_like_the_numbers() {
        let prices = [-5.5, -1.0, -0.0, 0.0, 1e-9, 1.0, 2.5, 1e12];
        for w in prices.windows(2) {
            assert!(Key::of(w[0]) <= Key::of(w[1]), "{w:?}");
            assert_eq!(Key::of(w[0]).price(), if w[0] == 0.0 { 0.0 } else { w[0] });
        }
        assert_eq!(Key::of(-0.0), Key::of(0.0));
    }

    #[test]
    fn eight_bytes_at_a_time_match_one_at_a_time() {
        use rand::{rngs::SmallRng, Rng, SeedableRng};
        let mut rng = SmallRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
        for _ in 0..1_000 {
            let x: u64 = rng.random();
            let (mut fast, mut slow) = (Crc32(x as u32), Crc32(x as u32));
            let words = [x, x.rotate_left(17), (x as f64).to_bits()];
            for w in words {
                fast.update8(w.to_le_bytes());
                slow.update(&w.to_le_bytes());
            }
            assert_eq!(fast.finish(), slow.finish());
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        let mut c = Crc32::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        // docs/PROTOCOL.md's example, as Python's zlib.crc32 computes it.
        let asks = [(64001.0, 0.7), (64002.5, 2.0)];
        assert_eq!(
            checksum(&[(64000.5, 1.2), (64000.0, 3.0)], &asks),
            936_822_193
        );
    }

    #[test]
    fn levels_set_remove_and_refuse_a_cross() {
        let mut b = Book::default();
        let change = Levels {
            levels: vec![
                lv(Side::Bid, 99.0, 1.0),
                lv(Side::Bid, 100.0, 2.0),
                lv(Side::Ask, 101.0, 3.0),
            ],
            replace: false,
        };
        b.apply(&change).unwrap();
        assert_eq!(b.top(Side::Bid, 10), vec![(100.0, 2.0), (99.0, 1.0)]);
        let before = b.clone();
        let cross = Levels {
            levels: vec![lv(Side::Bid, 100.0, 0.0), lv(Side::Bid, 101.0, 1.0)],
            replace: false,
        };
        assert!(matches!(b.apply(&cross), Err(BookError::Crossed { .. })));
        assert_eq!(b, before, "a refused change leaves the book as it was");
        let replace = Levels {
            levels: vec![lv(Side::Ask, 200.0, 1.0), lv(Side::Ask, 201.0, 0.0)],
            replace: true,
        };
        b.apply(&replace).unwrap();
        assert_eq!(b.top(Side::Bid, 10).len(), 0);
        assert_eq!(b.top(Side::Ask, 10), vec![(200.0, 1.0)]);
    }

    #[test]
    fn a_window_diff_sends_changes_leavers_and_entrants() {
        let before = [(100.0, 1.0), (99.0, 1.0), (98.0, 1.0)];
        // 101 arrives and pushes 98 out; 99 changes size.
        let after = [(101.0, 5.0), (100.0, 1.0), (99.0, 2.0)];
        assert_eq!(
            window_diff(Side::Bid, &before, &after),
            vec![(101.0, 5.0), (99.0, 2.0), (98.0, 0.0)]
        );
        // 100 is removed and 97 enters from below.
        let after = [(99.0, 1.0), (98.0, 1.0), (97.0, 4.0)];
        assert_eq!(
            window_diff(Side::Bid, &before, &after),
            vec![(100.0, 0.0), (97.0, 4.0)]
        );
        let asks_before = [(1.0, 1.0), (2.0, 1.0)];
        let asks_after = [(1.5, 1.0), (2.0, 1.0)];
        assert_eq!(
            window_diff(Side::Ask, &asks_before, &asks_after),
            vec![(1.0, 0.0), (1.5, 1.0)]
        );
    }
}
