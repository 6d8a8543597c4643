//! What network publishers send on `/publish`, and what they get back.
//!
//! A publish frame is a binary WebSocket message holding MessagePack: either
//! one update (a map) or a batch (an array of maps). Map keys are those of the
//! subscriber protocol's `update` event: `topic` (required), `ts` (ns since the
//! epoch; 0 or absent = when the server receives it) and any of `bid`, `ask`,
//! `last`, `bid_size`, `ask_size`, `last_size`, `volume`. Each update is
//! checked on its own with [`check_item`], the one validation the server and
//! the Rust and C remote publishers share: a bad update is refused and named
//! by its index in an `error` event, and the others of its frame are
//! published, so a bad update never takes good ones with it. A frame that
//! cannot be decoded is refused whole. The connection stays open.
//!
//! The server's `101` response carries `Tickcast-Max-Topic-Len`, so a remote
//! publisher checks topics against the very limit the server applies.
//!
//! The server answers with `{"event":"ack","count":N}` (MessagePack), N being
//! the number of updates from this connection accepted into the ingest queue so
//! far, after each burst of frames it has read.

use crate::model::topic_name::validate_topic;
use crate::model::update::Update;
use serde::{Deserialize, Serialize};
use std::fmt;

mod code;
mod out;
pub use code::PublishCode;

mod read;
#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod serde_reference;

/// One entry of a publish frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An update.
    Update(Update),
    /// `{"topic":…,"clear":true}`: clear the topic.
    Clear(String),
}

impl Item {
    /// The topic it is for.
    pub fn topic(&self) -> &str {
        match self {
            Item::Update(u) => &u.topic,
            Item::Clear(t) => t,
        }
    }
}

/// Why a publish frame is refused, whole: the publisher's `error` event
/// carries its [`code`](PublishError::code), its text and how many updates
/// it held.
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// A text frame: publish frames are binary MessagePack.
    TextFrame,
    /// Not a MessagePack update or array of updates.
    Undecodable(rmp_serde::decode::Error),
    /// An entry has a key that is neither the protocol's nor one of the
    /// server's extra fields.
    UnknownKey {
        /// Its position in the frame.
        index: usize,
        /// The key (cut to 40 characters).
        key: String,
    },
    /// An extra field's value is not a number.
    NotANumber {
        /// Its position in the frame.
        index: usize,
        /// The field.
        key: String,
    },
    /// An entry has `"clear": true` and price fields too.
    ClearWithFields {
        /// Its position in the frame.
        index: usize,
        /// How many updates the frame held (all refused).
        count: usize,
    },
}

impl PublishError {
    /// The stable code of the `error` event: `bad_frame` or `bad_update`.
    pub fn code(&self) -> PublishCode {
        match self {
            PublishError::TextFrame
            | PublishError::Undecodable(_)
            | PublishError::UnknownKey { .. }
            | PublishError::NotANumber { .. } => PublishCode::BadFrame,
            PublishError::ClearWithFields { .. } => PublishCode::BadUpdate,
        }
    }

    /// How many updates the refused frame held (0 when it could not be decoded).
    pub fn refused(&self) -> u64 {
        match self {
            PublishError::ClearWithFields { count, .. } => *count as u64,
            _ => 0,
        }
    }

    /// The event that tells the publisher.
    pub fn to_event(&self) -> PublisherEvent {
        PublisherEvent::Error {
            code: self.code(),
            message: self.to_string(),
            refused: self.refused(),
            indexes: Vec::new(),
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::TextFrame => f.write_str("publish frames are MessagePack binary frames"),
            PublishError::Undecodable(e) => {
                write!(f, "not a MessagePack update or array of updates: {e}")
            }
            PublishError::UnknownKey { index, key } => write!(
                f,
                "update {index} of the frame has key {key:?}, which is not a field of this \
                 server (see [fields] extra); nothing in this frame was published"
            ),
            PublishError::NotANumber { index, key } => write!(
                f,
                "update {index} of the frame: {key:?} must be a number; nothing in this \
                 frame was published"
            ),
            PublishError::ClearWithFields { index, .. } => write!(
                f,
                "update {index} of the frame clears its topic and sets fields too; \
                 nothing in this frame was published"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// Decodes one publish frame into its updates and clears (not yet
/// validated: see [`check_item`]), for a server with no extra fields.
pub fn decode(payload: &[u8]) -> Result<Vec<Item>, PublishError> {
    decode_with(payload, &[])
}

/// Decodes one publish frame for a server whose extra fields are `names`
/// (`[fields] extra`): those keys set them, any other unknown key refuses
/// the frame.
pub fn decode_with(payload: &[u8], names: &[Box<str>]) -> Result<Vec<Item>, PublishError> {
    read::read_frame(payload, names)
}

/// The response header that tells a publisher the server's topic length limit.
pub const MAX_TOPIC_LEN_HEADER: &str = "Tickcast-Max-Topic-Len";

/// The response header that names the server's extra fields
/// (`[fields] extra`, comma-separated, in index order).
pub const FIELDS_HEADER: &str = "Tickcast-Fields";

/// Request header (or `?on_leave=` parameter) on `/publish`: `keep` leaves
/// the publisher's topics live when it disconnects; `stale` (the default)
/// marks them stale.
pub const ON_LEAVE_HEADER: &str = "Tickcast-On-Leave";

/// The response header that tells a publisher whose token has a `publish`
/// claim which topics it may write (the patterns, comma-separated).
pub const PUBLISH_SCOPE_HEADER: &str = "Tickcast-Publish-Scope";

/// Checks one entry the way the server does: the topic against the server's
/// length limit and syntax, and for an update at least one field, every one
/// finite. Remote publishers call it before queueing, so the server never
/// refuses what they accepted.
pub fn check_item(item: &Item, max_topic_len: usize) -> crate::error::Result<()> {
    match item {
        Item::Update(u) => u.validate(max_topic_len).map_err(Into::into),
        Item::Clear(t) => validate_topic(t, max_topic_len).map_err(Into::into),
    }
}

/// The stable code of a refused update: `too_many_topics` when the server
/// is at `max_topics`, `unavailable` when the cluster's Redis is away, else
/// `bad_update`.
pub fn refusal_code(why: &crate::error::Error) -> PublishCode {
    match why {
        crate::error::Error::TooManyTopics { .. } => PublishCode::TooManyTopics,
        crate::error::Error::Unavailable => PublishCode::Unavailable,
        _ => PublishCode::BadUpdate,
    }
}

/// The event for the updates of one frame that were refused (by their index
/// in the frame, with the reason), when the rest of it was published.
pub fn refused_event(refused: &[(usize, crate::error::Error)], count: usize) -> PublisherEvent {
    let (first, why) = &refused[0];
    let others = match refused.len() {
        1 => String::new(),
        n => format!(" (and {} more, listed in indexes)", n - 1),
    };
    PublisherEvent::Error {
        code: refusal_code(why),
        message: format!(
            "update {first} of the frame: {why}{others}; the other {} updates of the frame were published",
            count - refused.len()
        ),
        refused: refused.len() as u64,
        indexes: refused.iter().map(|(i, _)| *i as u32).collect(),
    }
}

/// Encodes updates as one publish frame payload (a batch, or a single
/// map), for a server with no extra fields.
pub fn encode(updates: &[Update]) -> Vec<u8> {
    let items: Vec<Item> = updates.iter().cloned().map(Item::Update).collect();
    encode_items(&items, &[])
}

/// Encodes updates and clears as one publish frame payload, extra fields
/// by their names in `names` (the server's `[fields] extra`).
pub fn encode_items(items: &[Item], names: &[Box<str>]) -> Vec<u8> {
    out::frame(items, names)
}

/// What a publisher receives.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PublisherEvent {
    /// `count` updates from this connection are in the ingest queue so far.
    Ack {
        /// Running total for this connection.
        count: u64,
    },
    /// Updates were refused: a whole frame that could not be decoded
    /// (`bad_frame`), or single updates of a frame whose others were
    /// published (`bad_update`, `too_many_topics`; their `indexes`).
    Error {
        /// `bad_frame`, `bad_update` (invalid topic or value),
        /// `too_many_topics` (the server is at `max_topics`), `unavailable`
        /// or `forbidden`.
        code: PublishCode,
        /// Readable explanation.
        message: String,
        /// How many updates were refused (0 if the frame could not be decoded).
        #[serde(default)]
        refused: u64,
        /// Positions in the frame of the refused updates (empty for a frame
        /// refused whole).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        indexes: Vec<u32>,
    },
    /// A topic or pattern gained its first subscriber on the server
    /// (`active`) or lost its last; on connecting, one per selector
    /// wanted then. Each event is the selector's new state (the same state
    /// may come twice).
    Interest {
        /// The topic, or the pattern (`FX.*`).
        selector: String,
        /// A pattern, not one topic.
        pattern: bool,
        /// Wanted now, or no longer.
        active: bool,
    },
}

impl PublisherEvent {
    /// The MessagePack bytes of this event.
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_batch_round_trip() {
        let a = Update::new("A").bid(1.0).timestamp_ns(5);
        let b = Update::new("B").ask(2.0);
        assert_eq!(
            decode(&encode(std::slice::from_ref(&a))).unwrap(),
            vec![Item::Update(a.clone())]
        );
        assert_eq!(
            decode(&encode(&[a.clone(), b.clone()])).unwrap(),
            vec![Item::Update(a), Item::Update(b)]
        );
        let clear =
            rmp_serde::to_vec_named(&serde_json::json!({"topic":"A","clear":true})).unwrap();
        assert_eq!(decode(&clear).unwrap(), vec![Item::Clear("A".into())]);
        let both =
            rmp_serde::to_vec_named(&serde_json::json!({"topic":"A","clear":true,"bid":1.0}))
                .unwrap();
        assert_eq!(decode(&both).unwrap_err().code(), "bad_update");
    }

    #[test]
    fn garbage_and_unknown_fields_are_refused() {
        assert!(decode(&[0xc1]).is_err());
        assert!(decode(b"hello").is_err());
        let extra = rmp_serde::to_vec_named(&serde_json::json!({"topic":"A","bd":1.0})).unwrap();
        assert!(decode(&extra).is_err());
        let no_topic = rmp_serde::to_vec_named(&serde_json::json!({"bid":1.0})).unwrap();
        assert!(decode(&no_topic).is_err());
    }

    #[test]
    fn publisher_error_codes_round_trip_and_an_unknown_one_reads_as_other() {
        for code in [
            PublishCode::BadFrame,
            PublishCode::BadUpdate,
            PublishCode::TooManyTopics,
            PublishCode::Unavailable,
            PublishCode::Forbidden,
        ] {
            let ev = PublisherEvent::Error {
                code,
                message: String::new(),
                refused: 0,
                indexes: Vec::new(),
            };
            let back: PublisherEvent = rmp_serde::from_slice(&ev.to_msgpack()).unwrap();
            assert_eq!(back, ev);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let newer: PublishCode = serde_json::from_str("\"a_code_from_the_future\"").unwrap();
        assert_eq!(newer, PublishCode::Other);
    }
}
