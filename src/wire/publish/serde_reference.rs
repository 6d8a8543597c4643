//! The general deserializer `read` replaced (serde, through an untagged
//! enum and a flattened map): kept, for tests only, as the reference the
//! direct reader is compared with.

use super::{Item, PublishError};
use crate::model::book::{Level, Levels, Side};
use crate::model::update::{Extra, Field, Prices, Update};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Default, Clone, PartialEq)]
struct WireUpdate {
    topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bid: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bid_size: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ask_size: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_size: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    volume: Option<f64>,
    /// `true`: clear the topic (no other field may be set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clear: Option<bool>,
    /// Order-book topics: bid levels to set, `[price, size]` (size 0 removes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bids: Option<Vec<(f64, f64)>>,
    /// Order-book topics: ask levels to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asks: Option<Vec<(f64, f64)>>,
    /// Order-book topics: the levels are the whole book.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replace: Option<bool>,
    /// Every other key: the server's extra fields by name (`[fields]
    /// extra`); any other key refuses the frame.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
// Decoded and taken apart at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Frame {
    One(WireUpdate),
    Batch(Vec<WireUpdate>),
}

impl WireUpdate {
    /// The entry, its extra fields looked up in `names`; `index` is its
    /// place in the frame, for the error.
    fn into_item(self, index: usize, names: &[Box<str>]) -> Result<Item, PublishError> {
        let mut extra = Extra::default();
        for (key, v) in &self.other {
            let Some(field) = Field::named(key, names) else {
                let key = key.chars().take(40).collect();
                return Err(PublishError::UnknownKey { index, key });
            };
            match v.as_f64() {
                Some(v) => extra.set(field.index(), v),
                None => {
                    let key = key.clone();
                    return Err(PublishError::NotANumber { index, key });
                }
            }
        }
        let mut item = Item::from(self);
        if let Item::Update(u) = &mut item {
            u.prices.extra = extra;
        }
        Ok(item)
    }
}

impl From<WireUpdate> for Item {
    fn from(w: WireUpdate) -> Item {
        if w.clear == Some(true) {
            // `check` refuses a clear that also carries fields.
            return Item::Clear(w.topic);
        }
        let is_book = w.bids.is_some() || w.asks.is_some() || w.replace.is_some();
        let levels = is_book.then(|| {
            let side = |side: Side, list: Option<Vec<(f64, f64)>>| {
                let list = list.unwrap_or_default().into_iter();
                list.map(move |(price, size)| Level { side, price, size })
            };
            let mut levels: Vec<Level> = side(Side::Bid, w.bids).collect();
            levels.extend(side(Side::Ask, w.asks));
            Box::new(Levels {
                levels,
                replace: w.replace == Some(true),
            })
        });
        Item::Update(Update {
            levels,
            topic: w.topic,
            timestamp_ns: w.ts.unwrap_or(0),
            prices: Prices {
                bid: w.bid,
                ask: w.ask,
                last: w.last,
                bid_size: w.bid_size,
                ask_size: w.ask_size,
                last_size: w.last_size,
                volume: w.volume,
                extra: Extra::default(),
            },
        })
    }
}

/// The general deserializer the direct reader replaced: the reference its
/// tests compare against.
pub(super) fn decode_serde(payload: &[u8], names: &[Box<str>]) -> Result<Vec<Item>, PublishError> {
    let frame: Frame = rmp_serde::from_slice(payload).map_err(PublishError::Undecodable)?;
    let wire = match frame {
        Frame::One(u) => vec![u],
        Frame::Batch(v) => v,
    };
    for (index, w) in wire.iter().enumerate() {
        let has_fields = [
            w.bid,
            w.ask,
            w.last,
            w.bid_size,
            w.ask_size,
            w.last_size,
            w.volume,
        ]
        .iter()
        .any(Option::is_some)
            || w.bids.is_some()
            || w.asks.is_some()
            || !w.other.is_empty();
        if w.clear == Some(true) && has_fields {
            return Err(PublishError::ClearWithFields {
                index,
                count: wire.len(),
            });
        }
    }
    let items = wire.into_iter().enumerate();
    items.map(|(i, w)| w.into_item(i, names)).collect()
}
