//! Encoding publish frames (the remote publishers' side): each entry a
//! MessagePack map with exactly the keys it sets, extra fields by name.

use super::Item;
use crate::model::book::Side;
use crate::model::update::Update;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// One entry of a frame, with the names of the server's extra fields.
struct Out<'a> {
    item: &'a Item,
    names: &'a [Box<str>],
}

impl Serialize for Out<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.item {
            Item::Clear(topic) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("topic", topic)?;
                m.serialize_entry("clear", &true)?;
                m.end()
            }
            Item::Update(u) => update(u, self.names, s),
        }
    }
}

fn update<S: Serializer>(u: &Update, names: &[Box<str>], s: S) -> Result<S::Ok, S::Error> {
    // An extra field the server has no name for cannot be sent (a remote
    // publisher's fields come from the server's names: `RemotePublisher::field`).
    let fields = u.prices.named(names);
    let side = |side: Side| -> Option<Vec<(f64, f64)>> {
        let levels = u.levels.as_ref()?.levels.iter().filter(|l| l.side == side);
        Some(levels.map(|l| (l.price, l.size)).collect::<Vec<_>>()).filter(|v| !v.is_empty())
    };
    let (bids, asks) = (side(Side::Bid), side(Side::Ask));
    let replace = u.levels.as_ref().is_some_and(|l| l.replace);
    let count = 1
        + usize::from(u.timestamp_ns != 0)
        + fields.clone().count()
        + usize::from(bids.is_some())
        + usize::from(asks.is_some())
        + usize::from(replace);
    let mut m = s.serialize_map(Some(count))?;
    m.serialize_entry("topic", &u.topic)?;
    if u.timestamp_ns != 0 {
        m.serialize_entry("ts", &u.timestamp_ns)?;
    }
    for (name, v) in fields {
        m.serialize_entry(name, &v)?;
    }
    if let Some(b) = &bids {
        m.serialize_entry("bids", b)?;
    }
    if let Some(a) = &asks {
        m.serialize_entry("asks", a)?;
    }
    if replace {
        m.serialize_entry("replace", &true)?;
    }
    m.end()
}

/// One map for one entry, an array for a batch.
pub(super) fn frame(items: &[Item], names: &[Box<str>]) -> Vec<u8> {
    let out: Vec<Out> = items.iter().map(|item| Out { item, names }).collect();
    let res = if out.len() == 1 {
        rmp_serde::to_vec_named(&out[0])
    } else {
        rmp_serde::to_vec_named(&out)
    };
    res.unwrap_or_default()
}
