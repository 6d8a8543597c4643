//! What a client subscribes to: one topic, or every topic under a prefix.

use crate::error::TopicError;
use crate::model::topic_name::{shown, validate_topic};
use std::sync::Arc;

/// One topic, or every topic under a prefix (`FX.*`, or `*` for all),
/// including topics that appear later.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// Exactly this topic.
    Exact(Arc<str>),
    /// Every topic starting with this prefix (the text before the `*`).
    Prefix(Arc<str>),
}

impl Selector {
    /// Parses `AAPL` or `FX.*`. A `*` is allowed only as the last character.
    pub fn parse(s: &str, max_len: usize) -> Result<Selector, TopicError> {
        let star_inside = || TopicError::StarNotAtEnd { pattern: shown(s) };
        if let Some(prefix) = s.strip_suffix('*') {
            if prefix.contains('*') {
                return Err(star_inside());
            }
            if !prefix.is_empty() {
                validate_topic(prefix, max_len)?;
            }
            Ok(Selector::Prefix(prefix.into()))
        } else {
            if s.contains('*') {
                return Err(star_inside());
            }
            validate_topic(s, max_len)?;
            Ok(Selector::Exact(s.into()))
        }
    }

    /// Does this selector cover `topic`? (The index answers this for the
    /// shard; kept for the tests that pin the pattern semantics.)
    #[cfg(test)]
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Exact(t) => &**t == topic,
            Selector::Prefix(p) => topic.starts_with(&**p),
        }
    }

    /// The text a client sent for it: `AAPL` or `FX.*`.
    pub fn text(&self) -> String {
        match self {
            Selector::Exact(t) => t.to_string(),
            Selector::Prefix(p) => format!("{p}*"),
        }
    }
}

/// Serialized as its text, written straight into the frame: an
/// acknowledgement of 1,024 topics builds no `String` per topic.
impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Selector::Exact(t) => s.serialize_str(t),
            Selector::Prefix(p) => s.collect_str(&format_args!("{p}*")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_allow_star_only_at_the_end() {
        assert_eq!(
            Selector::parse("FX.*", 64),
            Ok(Selector::Prefix("FX.".into()))
        );
        assert_eq!(Selector::parse("*", 64), Ok(Selector::Prefix("".into())));
        assert_eq!(
            Selector::parse("AAPL", 64),
            Ok(Selector::Exact("AAPL".into()))
        );
        assert!(Selector::parse("F*X", 64).is_err());
        assert!(Selector::parse("**", 64).is_err());
        assert!(Selector::Prefix("FX.".into()).matches("FX.EURUSD"));
        assert!(!Selector::Prefix("FX.".into()).matches("FXX"));
    }
}
