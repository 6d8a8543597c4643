//! Topic names: what a publisher may name a topic and a client may ask for.

use crate::error::TopicError;

/// Checks a topic name: 1..=`max_len` bytes of `A-Z a-z 0-9 . _ - : /`.
/// The error's text is what a client or publisher sees.
pub fn validate_topic(topic: &str, max_len: usize) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > max_len {
        return Err(TopicError::TooLong {
            len: topic.len(),
            max: max_len,
        });
    }
    if let Some(found) = topic.chars().find(|c| !is_topic_char(*c)) {
        return Err(TopicError::BadCharacter {
            topic: shown(topic),
            found,
        });
    }
    Ok(())
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

/// A name as quoted back in an error: at most 80 characters of it.
pub(crate) fn shown(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_documented_syntax() {
        assert!(validate_topic("BTC-USD", 64).is_ok());
        assert!(validate_topic("FX.EURUSD", 64).is_ok());
        assert!(validate_topic("a:b/c_d", 64).is_ok());
        assert!(validate_topic("", 64).is_err());
        assert!(validate_topic("has space", 64).is_err());
        assert!(validate_topic("ünï", 64).is_err());
        assert!(validate_topic(&"A".repeat(65), 64).is_err());
        assert!(validate_topic(&"A".repeat(64), 64).is_ok());
    }
}
