//! Server events, serialized once into ready WebSocket frames.

pub mod book;
mod json;

use super::frame::FrameBuf;
use crate::model::event::{BookMsg, Encode, Price, PriceKind, Trade};
use crate::model::format::Format;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Stable error codes sent in `error` events. Clients may match on them;
/// they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not valid JSON.
    BadJson,
    /// The binary frame is not valid MessagePack.
    BadMsgpack,
    /// Valid JSON/MessagePack, but not a command object with the right field types.
    BadRequest,
    /// `op` names no command.
    UnknownOp,
    /// A topic or pattern breaks the topic syntax or length limit.
    BadTopic,
    /// The subscription would exceed the per-connection limit.
    TooManySubscriptions,
    /// One command lists more topics than `max_topics_per_command`.
    TooManyTopics,
    /// The snapshots a subscribe would send pass the connection's limit.
    SnapshotTooLarge,
    /// The connection's token does not allow it (a topic outside its scope).
    Forbidden,
    /// More commands per second than `max_commands_per_sec`.
    RateLimited,
    /// The token presented with `auth` is not valid.
    Unauthorized,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadMsgpack => "bad_msgpack",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadTopic => "bad_topic",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::TooManyTopics => "too_many_topics",
            ErrorCode::SnapshotTooLarge => "snapshot_too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

/// A `snapshot` or `update` event: a map of exactly the keys it carries
/// (absent fields are left out), the extra fields by their names.
struct PriceEvent<'a> {
    price: &'a Price<'a>,
    names: &'a [Box<str>],
}

impl Serialize for PriceEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.price;
        let fields = p.prices.named(self.names);
        let conflated = (p.conflated > 1).then_some(p.conflated);
        let count = 4
            + fields.clone().count()
            + usize::from(p.epoch.is_some())
            + usize::from(p.stale)
            + usize::from(conflated.is_some())
            + usize::from(p.trades.is_some());
        let mut m = s.serialize_map(Some(count))?;
        let event = match p.kind {
            PriceKind::Snapshot => "snapshot",
            PriceKind::Update => "update",
        };
        m.serialize_entry("event", event)?;
        m.serialize_entry("topic", p.topic)?;
        m.serialize_entry("seq", &p.seq)?;
        m.serialize_entry("ts", &p.ts)?;
        for (name, v) in fields {
            m.serialize_entry(name, &v)?;
        }
        if let Some(e) = p.epoch {
            m.serialize_entry("epoch", e)?;
        }
        if p.stale {
            m.serialize_entry("stale", &true)?;
        }
        if let Some(c) = conflated {
            m.serialize_entry("conflated", &c)?;
        }
        if let Some(list) = p.trades {
            let names = self.names;
            m.serialize_entry("trades", &Trades { list, names })?;
        }
        m.end()
    }
}

/// A trade topic snapshot's trades, oldest first, each a map: `seq`, `ts`
/// and the fields it carried, by name.
struct Trades<'a> {
    list: &'a [Trade],
    names: &'a [Box<str>],
}

impl Serialize for Trades<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.list.iter().map(|(seq, ts, prices)| {
            let trade = Price {
                kind: PriceKind::Update,
                ..Price::update("", *seq, *ts, prices)
            };
            TradeEvent(trade, self.names)
        }))
    }
}

/// One trade: its `seq`, `ts` and fields.
struct TradeEvent<'a>(Price<'a>, &'a [Box<str>]);

impl Serialize for TradeEvent<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = &self.0;
        let fields = p.prices.named(self.1);
        let mut map = s.serialize_map(Some(2 + fields.clone().count()))?;
        map.serialize_entry("seq", &p.seq)?;
        map.serialize_entry("ts", &p.ts)?;
        for (name, v) in fields {
            map.serialize_entry(name, &v)?;
        }
        map.end()
    }
}

/// The router's encoders ([`Encode`]): one frame buffer, reused for every
/// event, so encoding allocates nothing once the buffer has grown.
#[derive(Default)]
pub struct Encoder {
    fb: FrameBuf,
}

impl Encode for Encoder {
    fn price(&mut self, fmt: Format, price: &Price<'_>, names: &[Box<str>]) -> &[u8] {
        encode_price(&mut self.fb, fmt, price, names)
    }
    fn book(&mut self, fmt: Format, msg: &BookMsg<'_>) -> &[u8] {
        book::encode_book(&mut self.fb, fmt, msg)
    }
    fn status(&mut self, fmt: Format, topic: &str, stale: bool) -> &[u8] {
        encode_status(&mut self.fb, fmt, topic, stale)
    }
    fn cleared(&mut self, fmt: Format, topic: &str) -> &[u8] {
        encode_cleared(&mut self.fb, fmt, topic)
    }
}

/// Encodes a `snapshot` or `update` event as a complete frame in `fb`,
/// the server's extra fields (`names`, in index order) by name.
pub fn encode_price<'a>(
    fb: &'a mut FrameBuf,
    fmt: Format,
    price: &Price<'_>,
    names: &[Box<str>],
) -> &'a [u8] {
    if fmt == Format::Json && price.trades.is_none() {
        json::write_price(fb.payload(), price, names);
        return fb.finish(fmt.opcode());
    }
    encode(fb, fmt, &PriceEvent { price, names })
}

#[derive(Serialize)]
struct StatusEvent<'a> {
    event: &'static str,
    topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
}

/// Encodes `{"event":"status","topic":…,"state":"stale"|"live"}`.
pub fn encode_status<'a>(fb: &'a mut FrameBuf, fmt: Format, topic: &str, stale: bool) -> &'a [u8] {
    let state = Some(if stale { "stale" } else { "live" });
    encode(
        fb,
        fmt,
        &StatusEvent {
            event: "status",
            topic,
            state,
        },
    )
}

/// Encodes `{"event":"cleared","topic":…}`.
pub fn encode_cleared<'a>(fb: &'a mut FrameBuf, fmt: Format, topic: &str) -> &'a [u8] {
    encode(
        fb,
        fmt,
        &StatusEvent {
            event: "cleared",
            topic,
            state: None,
        },
    )
}

#[derive(Serialize)]
struct TopicsEvent<'a, T: Serialize> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    topics: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    epochs: Option<&'a BTreeMap<&'a str, &'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<&'a [&'a str]>,
}

/// Encodes `subscribed`, `unsubscribed` or `topics`: an acknowledgement carrying the
/// request id and a list of topic names or patterns.
pub fn encode_topics<'a, T: Serialize>(
    fb: &'a mut FrameBuf,
    fmt: Format,
    event: &'static str,
    id: Option<&Value>,
    topics: T,
) -> &'a [u8] {
    let ev = TopicsEvent {
        event,
        id,
        topics,
        epochs: None,
        recovered: None,
    };
    encode(fb, fmt, &ev)
}

/// Encodes `subscribed`: the patterns, the epochs of the exact topics it
/// covers that have a value, and the topics resumed from history.
/// `topics` serializes as a sequence of strings (the shard passes its
/// parsed selectors, each written as its text).
pub fn encode_subscribed<'a, T: Serialize>(
    fb: &'a mut FrameBuf,
    fmt: Format,
    id: Option<&Value>,
    topics: T,
    epochs: &BTreeMap<&str, &str>,
    recovered: &[&str],
) -> &'a [u8] {
    let ev = TopicsEvent {
        event: "subscribed",
        id,
        topics,
        epochs: Some(epochs),
        recovered: (!recovered.is_empty()).then_some(recovered),
    };
    encode(fb, fmt, &ev)
}

#[derive(Serialize)]
struct PongEvent<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    ts: u64,
}

/// Encodes the reply to a `ping` command, with the server's clock in ns.
pub fn encode_pong<'a>(fb: &'a mut FrameBuf, fmt: Format, id: Option<&Value>, ts: u64) -> &'a [u8] {
    encode(
        fb,
        fmt,
        &PongEvent {
            event: "pong",
            id,
            ts,
        },
    )
}

#[derive(Serialize)]
struct AuthEvent<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    /// The token's expiry, seconds since the Unix epoch (none: no expiry).
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<&'a [String]>,
}

/// Encodes `authenticated` (the reply to `auth`: the new token's expiry and
/// the subscriptions its scope no longer allows, which were dropped).
pub fn encode_authenticated<'a>(
    fb: &'a mut FrameBuf,
    fmt: Format,
    id: Option<&Value>,
    exp: Option<u64>,
    dropped: &[String],
) -> &'a [u8] {
    let ev = AuthEvent {
        event: "authenticated",
        id,
        exp,
        dropped: Some(dropped),
    };
    encode(fb, fmt, &ev)
}

/// Encodes `expired`: the token's `exp` has passed; the connection will be
/// closed after the grace period unless it presents a fresh token.
pub fn encode_expired(fb: &mut FrameBuf, fmt: Format, exp: Option<u64>) -> &[u8] {
    let ev = AuthEvent {
        event: "expired",
        id: None,
        exp,
        dropped: None,
    };
    encode(fb, fmt, &ev)
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    code: &'static str,
    message: &'a str,
}

/// Encodes an `error` event.
pub fn encode_error<'a>(
    fb: &'a mut FrameBuf,
    fmt: Format,
    id: Option<&Value>,
    code: ErrorCode,
    message: &str,
) -> &'a [u8] {
    encode(
        fb,
        fmt,
        &ErrorEvent {
            event: "error",
            id,
            code: code.as_str(),
            message,
        },
    )
}

pub(crate) fn encode<'a, T: Serialize>(fb: &'a mut FrameBuf, fmt: Format, value: &T) -> &'a [u8] {
    let out = fb.payload();
    // Serializing plain structs of numbers and strings into a Vec cannot fail;
    // if it ever did, an empty payload is safer than a panic in a shard.
    match fmt {
        Format::Json => {
            let _ = serde_json::to_writer(&mut *out, value);
        }
        Format::MsgPack => {
            let _ = rmp_serde::encode::write_named(&mut *out, value);
        }
    }
    fb.finish(fmt.opcode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::update::Prices;

    #[test]
    fn updates_carry_only_present_fields() {
        let mut fb = FrameBuf::default();
        let p = Prices {
            bid: Some(1.5),
            ..Prices::default()
        };
        let f = encode_price(&mut fb, Format::Json, &Price::update("AAPL", 7, 9, &p), &[]);
        assert_eq!(
            std::str::from_utf8(&f[2..]).unwrap(),
            r#"{"event":"update","topic":"AAPL","seq":7,"ts":9,"bid":1.5}"#
        );
        let snap = Price {
            kind: PriceKind::Snapshot,
            epoch: Some("9f3a0001"),
            ..Price::update("AAPL", 7, 9, &p)
        };
        let f = encode_price(&mut fb, Format::MsgPack, &snap, &[]).to_vec();
        assert_eq!(f[0], 0x82);
        let v: serde_json::Value = rmp_serde::from_slice(&f[2..]).unwrap();
        assert_eq!(v["event"], "snapshot");
        assert_eq!(v["bid"], 1.5);
        assert_eq!(v["epoch"], "9f3a0001");
        assert!(v.get("ask").is_none());
        assert!(v.get("stale").is_none() && v.get("conflated").is_none());
        let merged = Price {
            conflated: 3,
            ..Price::update("AAPL", 9, 9, &p)
        };
        let f = encode_price(&mut fb, Format::Json, &merged, &[]);
        assert_eq!(
            std::str::from_utf8(&f[2..]).unwrap(),
            r#"{"event":"update","topic":"AAPL","seq":9,"ts":9,"bid":1.5,"conflated":3}"#
        );
    }
}
