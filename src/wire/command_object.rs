//! Reading a command object without building a JSON tree of its topics.
//!
//! A command may name 1,024 topics, and a client may send such commands
//! without pause (issue 25). Read into a `serde_json::Value`, each topic
//! costs a `Value` in a growing array and a `String` that is then cloned
//! again; read here, it costs one `String` pushed into a `Vec` sized from
//! the array's length where the format gives it. The other keys are small
//! and stay `Value`s, so their checks (`command::operation`) are unchanged.
//!
//! Works for any self-describing serde format (JSON and MessagePack): the
//! visitors below accept every shape and report a wrong one as data, so the
//! caller words the error, never serde.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// What the top level of a command held.
pub(super) enum Read {
    /// An object: its `topics` read apart, every other key as a `Value`.
    Object {
        /// Every key but `topics`.
        rest: Map<String, Value>,
        /// `topics`, if the object had it.
        topics: Option<Topics>,
    },
    /// Anything else (an array, a string, a number, null).
    NotObject,
}

/// What a command's `topics` held.
pub(super) enum Topics {
    /// An array of strings (possibly empty).
    List(Vec<String>),
    /// Not an array.
    NotArray,
    /// An array with an entry that is not a string.
    BadEntry,
}

/// Reads one command's top level from `de`.
pub(super) fn read<'de, D: Deserializer<'de>>(de: D) -> Result<Read, D::Error> {
    de.deserialize_any(TopVisitor)
}

/// Reads only a command's `id` (a number or a string), skipping the rest
/// without building anything: what a refused command costs. `None` when the
/// bytes are not an object or the id is absent or of another kind.
pub(super) fn read_id<'de, D: Deserializer<'de>>(de: D) -> Option<Value> {
    de.deserialize_any(IdVisitor).ok().flatten()
}

struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "id" {
                id = match map.next_value::<Value>()? {
                    v @ (Value::Number(_) | Value::String(_)) => Some(v),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

/// The visits of every scalar a self-describing format can give (bytes
/// aside: where a visitor takes them it says so), each answering `$v`:
/// a value of the wrong shape is data for the caller to word, not an error
/// of serde's.
macro_rules! scalars_are {
    ($t:ty, $v:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
            Ok($v)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok($v)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok($v)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok($v)
        }
        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok($v)
        }
        fn visit_none<E>(self) -> Result<$t, E> {
            Ok($v)
        }
    };
}

/// Reads a sequence to its end, keeping nothing (the format needs it
/// consumed).
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Reads a map to its end, keeping nothing.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Most topics reserved ahead from a length the sender declares: a
/// MessagePack header can claim four billion entries in five bytes.
const MOST_RESERVED: usize = 4096;

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a command object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut rest = Map::new();
        let mut topics = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "topics" {
                // A repeated key keeps its last value, as serde_json's own
                // map does.
                topics = Some(map.next_value_seed(TopicsSeed)?);
            } else {
                let value = map.next_value::<Value>()?;
                rest.insert(key, value);
            }
        }
        Ok(Read::Object { rest, topics })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Read, A::Error> {
        skip_seq(seq)?;
        Ok(Read::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Read, E> {
        Ok(Read::NotObject)
    }
    scalars_are!(Read, Read::NotObject);
}

struct TopicsSeed;

impl<'de> DeserializeSeed<'de> for TopicsSeed {
    type Value = Topics;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Topics, D::Error> {
        de.deserialize_any(TopicsVisitor)
    }
}

struct TopicsVisitor;

impl<'de> Visitor<'de> for TopicsVisitor {
    type Value = Topics;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of topics")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Topics, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MOST_RESERVED));
        let mut bad = false;
        // Read to the end even past a bad entry: the format needs the whole
        // array consumed, and the error names no entry.
        while let Some(entry) = seq.next_element::<Entry>()? {
            match entry {
                Entry::Str(s) if !bad => list.push(s),
                _ => bad = true,
            }
        }
        Ok(if bad {
            Topics::BadEntry
        } else {
            Topics::List(list)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Topics, A::Error> {
        skip_map(map)?;
        Ok(Topics::NotArray)
    }
    fn visit_str<E>(self, _: &str) -> Result<Topics, E> {
        Ok(Topics::NotArray)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Topics, E> {
        Ok(Topics::NotArray)
    }
    scalars_are!(Topics, Topics::NotArray);
}

/// One entry of `topics`: a string, or anything else (read and dropped).
enum Entry {
    Str(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Entry, D::Error> {
        de.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a topic")
    }

    fn visit_str<E>(self, s: &str) -> Result<Entry, E> {
        Ok(Entry::Str(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Entry, E> {
        Ok(Entry::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Entry, A::Error> {
        skip_seq(seq)?;
        Ok(Entry::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry, A::Error> {
        skip_map(map)?;
        Ok(Entry::Other)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Entry, E> {
        Ok(Entry::Other)
    }
    scalars_are!(Entry, Entry::Other);
}
