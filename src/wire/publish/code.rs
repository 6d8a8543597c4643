//! The stable codes of a publisher's `error` event.

use serde::{Deserialize, Serialize};

/// The stable codes of a publisher's `error` event (docs/PROTOCOL.md).
/// Serialized in snake case; a code this client does not know reads as
/// `Other`, so a newer server never breaks an older publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PublishCode {
    /// The frame could not be decoded; nothing of it was published.
    BadFrame,
    /// An update has an invalid topic or value.
    BadUpdate,
    /// The server holds `max_topics` topics; an update of a new one is refused.
    TooManyTopics,
    /// Cluster mode: Redis is unreachable and the queue for it is full.
    Unavailable,
    /// The publisher's token does not allow a topic of the frame.
    Forbidden,
    /// A code this version does not know.
    #[serde(other)]
    Other,
}

impl PublishCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishCode::BadFrame => "bad_frame",
            PublishCode::BadUpdate => "bad_update",
            PublishCode::TooManyTopics => "too_many_topics",
            PublishCode::Unavailable => "unavailable",
            PublishCode::Forbidden => "forbidden",
            PublishCode::Other => "other",
        }
    }
}

impl std::fmt::Display for PublishCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for PublishCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
