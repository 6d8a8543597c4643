//! What a publisher sends: a topic, a timestamp and the price fields it changes.

use super::book::{is_book, BookError, Level, Levels, Side};
use super::topic_name::validate_topic;
use super::topic_name::TopicError;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an update is refused before it is queued. `crate::error::Error` has
/// a variant for each; this type keeps the model free of the crate's
/// error type, which sits above it.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// The topic name breaks the syntax or the length limit.
    Topic(TopicError),
    /// A field (named) is NaN or infinite.
    Value(&'static str),
    /// The update sets no field.
    Empty,
    /// An order-book change is malformed or does not fit the topic.
    Book(BookError),
}

impl From<TopicError> for Invalid {
    fn from(e: TopicError) -> Self {
        Invalid::Topic(e)
    }
}

/// Price fields of a topic. `None` means "not carried by this update" (or, in a
/// last value, "never published"). Absent fields are not sent on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    /// Best bid price.
    pub bid: Option<f64>,
    /// Best ask price.
    pub ask: Option<f64>,
    /// Last traded price.
    pub last: Option<f64>,
    /// Quantity at the best bid.
    pub bid_size: Option<f64>,
    /// Quantity at the best ask.
    pub ask_size: Option<f64>,
    /// Quantity of the last trade.
    pub last_size: Option<f64>,
    /// Cumulative traded volume.
    pub volume: Option<f64>,
    /// The server's extra numeric fields (`[fields] extra`), by index.
    pub extra: Extra,
}

/// Most extra fields a server may declare (`[fields] extra`).
pub const MAX_EXTRA: usize = 8;

/// Values of a server's extra numeric fields, by their index in
/// `[fields] extra`: fixed-size, so an update carrying them needs no
/// allocation and merges field by field like the seven price fields.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Extra {
    /// Bit `i`: field `i` is set. Unset values stay 0.0, so `==` compares
    /// only what is set.
    set: u8,
    values: [f64; MAX_EXTRA],
}

impl Extra {
    /// Field `i`'s value, if set.
    pub fn get(&self, i: usize) -> Option<f64> {
        (i < MAX_EXTRA && self.set & (1 << i) != 0).then(|| self.values[i])
    }

    /// Sets field `i` (ignored past `MAX_EXTRA`; a `Field` is always below).
    pub fn set(&mut self, i: usize, v: f64) {
        if i < MAX_EXTRA {
            self.set |= 1 << i;
            self.values[i] = v;
        }
    }

    /// True when no extra field is set.
    pub fn is_empty(&self) -> bool {
        self.set == 0
    }

    /// The fields set, as (index, value), in index order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, f64)> + Clone + '_ {
        (0..MAX_EXTRA).filter_map(|i| Some((i, self.get(i)?)))
    }

    /// Takes every field `newer` sets, by its bits: most updates set none,
    /// and this runs for every update merged (the router's value, the
    /// cluster writer's runs).
    fn merge(&mut self, newer: &Extra) {
        let mut bits = newer.set;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            self.values[i] = newer.values[i];
            bits &= bits - 1;
        }
        self.set |= newer.set;
    }
}

/// An extra field of a server (`[fields] extra`), from `Server::field`,
/// `Publisher::field` or `RemotePublisher::field`: its index, so setting it
/// costs no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Field(pub(crate) u8);

impl Field {
    /// Its position in `[fields] extra` (the C ABI's index).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The field at `index` of `names`, if there is one.
    pub(crate) fn at(index: usize, names: &[Box<str>]) -> Option<Field> {
        (index < names.len() && index < MAX_EXTRA).then_some(Field(index as u8))
    }

    /// The field named `name` in `names`.
    pub(crate) fn named(name: &str, names: &[Box<str>]) -> Option<Field> {
        let i = names.iter().position(|n| &**n == name)?;
        Field::at(i, names)
    }
}

impl Prices {
    /// Overwrites every field that `newer` carries and keeps the others: this is
    /// how the last-value cache turns a stream of partial updates into a snapshot.
    pub fn merge(&mut self, newer: &Prices) {
        fn take(dst: &mut Option<f64>, src: Option<f64>) {
            if src.is_some() {
                *dst = src;
            }
        }
        take(&mut self.bid, newer.bid);
        take(&mut self.ask, newer.ask);
        take(&mut self.last, newer.last);
        take(&mut self.bid_size, newer.bid_size);
        take(&mut self.ask_size, newer.ask_size);
        take(&mut self.last_size, newer.last_size);
        take(&mut self.volume, newer.volume);
        self.extra.merge(&newer.extra);
    }

    /// Fails on the first NaN or infinite field: JSON has no way to carry them and
    /// a dashboard would show garbage.
    pub fn check_finite(&self) -> Result<(), Invalid> {
        for (name, v) in Prices::NAMES.into_iter().zip(self.fields()) {
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(Invalid::Value(name));
                }
            }
        }
        if self.extra.iter().any(|(_, v)| !v.is_finite()) {
            return Err(Invalid::Value("an extra field"));
        }
        Ok(())
    }

    /// The fields' names on the wire, in the order of `fields`.
    pub const NAMES: [&'static str; 7] = [
        "bid",
        "ask",
        "last",
        "bid_size",
        "ask_size",
        "last_size",
        "volume",
    ];

    /// The fields in `NAMES` order.
    pub(crate) fn fields(&self) -> [Option<f64>; 7] {
        [
            self.bid,
            self.ask,
            self.last,
            self.bid_size,
            self.ask_size,
            self.last_size,
            self.volume,
        ]
    }

    /// The inverse of `fields`.
    pub(crate) fn from_array(
        [bid, ask, last, bid_size, ask_size, last_size, volume]: [Option<f64>; 7],
    ) -> Prices {
        Prices {
            bid,
            ask,
            last,
            bid_size,
            ask_size,
            last_size,
            volume,
            extra: Extra::default(),
        }
    }

    /// Every field set, by name: the price fields (`NAMES` order), then the
    /// extra fields that `names` (the server's `[fields] extra`) names.
    /// What every encoder of an update writes, in that order.
    pub fn named<'a>(
        &'a self,
        names: &'a [Box<str>],
    ) -> impl Iterator<Item = (&'a str, f64)> + Clone + 'a {
        let base = Prices::NAMES.into_iter().zip(self.fields());
        let base = base.filter_map(|(n, v)| Some((n, v?)));
        let extra = self
            .extra
            .iter()
            .filter_map(move |(i, v)| Some((names.get(i)?.as_ref(), v)));
        base.chain(extra)
    }

    /// Sets the field called `name`, a price field or one of the extra
    /// fields `names` lists: the inverse of `named`. False when it is
    /// neither.
    pub(crate) fn set_named(&mut self, name: &str, v: f64, names: &[Box<str>]) -> bool {
        match Prices::column(name, names) {
            Some(c) => {
                self.set_column(c, v);
                true
            }
            None => false,
        }
    }

    /// Where the field called `name` is (a price field, or one of the
    /// extra fields `names` lists) for `set_column`: looked up once for
    /// many values, as a cluster run's tails give them by position.
    pub(crate) fn column(name: &str, names: &[Box<str>]) -> Option<usize> {
        match Prices::NAMES.iter().position(|n| *n == name) {
            Some(i) => Some(i),
            None => Some(Prices::NAMES.len() + Field::named(name, names)?.index()),
        }
    }

    /// The field at `column` (from `Prices::column`), if set.
    pub(crate) fn column_value(&self, column: usize) -> Option<f64> {
        match column {
            0 => self.bid,
            1 => self.ask,
            2 => self.last,
            3 => self.bid_size,
            4 => self.ask_size,
            5 => self.last_size,
            6 => self.volume,
            extra => self.extra.get(extra - Prices::NAMES.len()),
        }
    }

    /// Sets the field at `column` (from `Prices::column`), in place:
    /// rebuilding the whole struct from `fields` copied its 184 bytes per
    /// field set, the largest item of the cluster reader's parsing in perf.
    pub(crate) fn set_column(&mut self, column: usize, v: f64) {
        let slot = match column {
            0 => &mut self.bid,
            1 => &mut self.ask,
            2 => &mut self.last,
            3 => &mut self.bid_size,
            4 => &mut self.ask_size,
            5 => &mut self.last_size,
            6 => &mut self.volume,
            extra => return self.extra.set(extra - Prices::NAMES.len(), v),
        };
        *slot = Some(v);
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Prices::default()
    }
}

/// One price update for one topic.
///
/// ```
/// let u = tickcast::Update::new("BTC-USD").bid(64000.5).ask(64001.0);
/// assert_eq!(u.prices.bid, Some(64000.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// Topic name, e.g. `BTC-USD`, `AAPL`, `FX.EURUSD`.
    pub topic: String,
    /// Publisher timestamp in nanoseconds since the Unix epoch; 0 means "stamp it
    /// when it is published".
    pub timestamp_ns: u64,
    /// The fields this update changes.
    pub prices: Prices,
    /// Of an order-book topic (`….book`): the levels it changes, instead of
    /// price fields.
    pub levels: Option<Box<Levels>>,
}

macro_rules! setter {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(mut self, value: f64) -> Self {
            self.prices.$name = Some(value);
            self
        }
    };
}

impl Update {
    /// An update for `topic` with no fields set and timestamp "now".
    pub fn new(topic: impl Into<String>) -> Self {
        Update {
            topic: topic.into(),
            timestamp_ns: 0,
            prices: Prices::default(),
            levels: None,
        }
    }

    setter!(bid, "Sets the best bid.");
    setter!(ask, "Sets the best ask.");
    setter!(last, "Sets the last traded price.");
    setter!(bid_size, "Sets the quantity at the best bid.");
    setter!(ask_size, "Sets the quantity at the best ask.");
    setter!(last_size, "Sets the quantity of the last trade.");
    setter!(volume, "Sets the cumulative volume.");

    /// Sets one of the server's extra fields (`[fields] extra`; the
    /// `Field` comes from `Server::field` or a publisher's `field`).
    pub fn field(mut self, field: Field, value: f64) -> Self {
        self.prices.extra.set(field.index(), value);
        self
    }

    /// Sets one level of an order-book topic's book (size 0 removes it);
    /// levels apply in the order they are set.
    ///
    /// ```
    /// use tickcast::{Side, Update};
    /// let u = Update::new("BTC-USD.book")
    ///     .level(Side::Bid, 64000.0, 1.5)
    ///     .level(Side::Ask, 64001.0, 0.0);
    /// assert_eq!(u.levels.unwrap().levels.len(), 2);
    /// ```
    pub fn level(mut self, side: Side, price: f64, size: f64) -> Self {
        let l = self.levels.get_or_insert_with(Default::default);
        l.levels.push(Level { side, price, size });
        self
    }

    /// Makes this update's levels the whole book: every level it does not
    /// set is removed (with no levels: the book is emptied).
    pub fn replace_book(mut self) -> Self {
        self.levels.get_or_insert_with(Default::default).replace = true;
        self
    }

    /// Sets the publisher timestamp (nanoseconds since the Unix epoch).
    pub fn timestamp_ns(mut self, ts: u64) -> Self {
        self.timestamp_ns = ts;
        self
    }

    /// Checks the topic and the values; done on the publisher's thread so a bad
    /// update is refused to its sender instead of reaching the router.
    pub(crate) fn validate(&self, max_topic_len: usize) -> Result<(), Invalid> {
        validate_topic(&self.topic, max_topic_len)?;
        let book = is_book(&self.topic);
        if let Some(levels) = &self.levels {
            if !book {
                return Err(Invalid::Book(BookError::NotABook));
            }
            if levels.is_empty() {
                return Err(Invalid::Empty);
            }
            levels.check().map_err(Invalid::Book)?;
        } else if self.prices.is_empty() {
            return Err(Invalid::Empty);
        }
        if book && !self.prices.is_empty() {
            return Err(Invalid::Book(BookError::PricesOnBook));
        }
        self.prices.check_finite()
    }
}

/// Nanoseconds since the Unix epoch, by the system clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Prices;

    #[test]
    fn every_field_set_by_name_reads_back_under_that_name() {
        let extra: Vec<Box<str>> = vec!["oi".into(), "iv".into()];
        let names = Prices::NAMES.iter().copied().chain(["oi", "iv"]);
        for (i, name) in names.enumerate() {
            let mut p = Prices::default();
            assert!(p.set_named(name, i as f64 + 0.5, &extra), "{name}");
            let got: Vec<(&str, f64)> = p.named(&extra).collect();
            assert_eq!(got, [(name, i as f64 + 0.5)], "{name}");
        }
        assert!(!Prices::default().set_named("oi", 1.0, &[]), "not declared");
        assert!(!Prices::default().set_named("seq", 1.0, &extra));
    }

    #[test]
    fn a_merge_takes_what_the_newer_sets_and_keeps_the_rest() {
        let mut old = Prices::default();
        for (c, v) in [(0, 1.0), (1, 2.0), (7, 3.0), (9, 4.0), (14, 5.0)] {
            old.set_column(c, v);
        }
        let mut newer = Prices::default();
        for (c, v) in [(1, 20.0), (9, 40.0), (10, 50.0)] {
            newer.set_column(c, v);
        }
        old.merge(&newer);
        let got: Vec<Option<f64>> = (0..15).map(|c| old.column_value(c)).collect();
        let mut want = vec![None; 15];
        for (c, v) in [
            (0, 1.0),
            (1, 20.0),
            (7, 3.0),
            (9, 40.0),
            (10, 50.0),
            (14, 5.0),
        ] {
            want[c] = Some(v);
        }
        assert_eq!(got, want);
        let before = old;
        old.merge(&Prices::default());
        assert_eq!(old, before, "an update that sets nothing changes nothing");
    }
}
