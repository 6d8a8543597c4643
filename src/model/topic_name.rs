//! Topic names: what a publisher may name a topic and a client may ask for.

use std::fmt;

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
    // A byte at a time through a table: every allowed character is ASCII,
    // so a byte of a multi-byte character fails as its character would.
    // (Topics are checked on every publish and every subscribe entry; the
    // table made the check about ten times faster than decoding chars.)
    if !topic.bytes().all(|b| TOPIC_BYTES[usize::from(b)]) {
        let found = topic.chars().find(|c| !is_topic_char(*c));
        return Err(TopicError::BadCharacter {
            topic: shown(topic),
            found: found.expect("a byte outside the table is in a character outside it"),
        });
    }
    Ok(())
}

const fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')
}

/// `TOPIC_BYTES[b]`: may byte `b` appear in a topic name?
static TOPIC_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = is_topic_char(b as u8 as char);
        b += 1;
    }
    t
};

/// A name as quoted back in an error: at most 80 characters of it.
pub(crate) fn shown(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Why a topic name or subscription pattern is refused. The text is what a
/// client or publisher reads in its `error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty.
    Empty,
    /// The name is longer than `max_topic_len`.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character outside `A-Z a-z 0-9 . _ - : /`.
    BadCharacter {
        /// The name (cut to 80 characters).
        topic: String,
        /// The first character that is not allowed.
        found: char,
    },
    /// A pattern holds `*` somewhere other than at its end.
    StarNotAtEnd {
        /// The pattern (cut to 80 characters).
        pattern: String,
    },
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("topic is empty"),
            TopicError::TooLong { len, max } => {
                write!(f, "topic is {len} bytes, longer than the limit of {max}")
            }
            TopicError::BadCharacter { topic, found } => write!(
                f,
                "topic {topic:?} has character {found:?}; allowed are A-Z a-z 0-9 . _ - : /"
            ),
            TopicError::StarNotAtEnd { pattern } => {
                write!(f, "pattern {pattern:?} may hold '*' only at its end")
            }
        }
    }
}

impl std::error::Error for TopicError {}

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

    /// The byte table agrees with the character rule for every character
    /// up to U+0800 (one- and two-byte UTF-8), and the error names the
    /// first bad character, not a byte of it.
    #[test]
    fn the_byte_table_is_the_character_rule() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let name = format!("A{c}B");
            let ok = validate_topic(&name, 64).is_ok();
            assert_eq!(ok, is_topic_char(c), "{c:?}");
            if !ok {
                assert_eq!(
                    validate_topic(&name, 64),
                    Err(TopicError::BadCharacter {
                        topic: name.clone(),
                        found: c
                    })
                );
            }
        }
        let e = validate_topic("EUR/USD€x y", 64).unwrap_err();
        assert!(
            matches!(e, TopicError::BadCharacter { found: '€', .. }),
            "{e:?}"
        );
    }
}
