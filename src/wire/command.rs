//! Client commands: parsing and validation of what a subscriber sends.

use super::command_object::{self, Read, Topics};
use super::event::ErrorCode;
use crate::model::format::Format;
use crate::model::resume::{ResumeFrom, SinceMap};
use serde_json::{Map, Value};

/// One parsed client command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The client's request id (a number or a string), echoed in the reply.
    pub id: Option<Value>,
    /// What the client asks for.
    pub op: Op,
}

/// A `subscribe` command.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    /// Topics and patterns.
    pub topics: Vec<String>,
    /// Most events per second per topic (absent: every update, or the server's cap).
    pub max_rate: Option<f64>,
    /// Where the client left each topic, to resume from history.
    pub since: SinceMap,
    /// Order-book topics: levels per side (one of `book::DEPTHS`; absent: 10).
    pub depth: Option<usize>,
}

/// The commands of the protocol (docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Start receiving these topics or patterns.
    Subscribe(Subscribe),
    /// Stop receiving these topics or patterns.
    Unsubscribe(Vec<String>),
    /// List known topics, optionally under a prefix.
    Topics {
        /// Only topics starting with this; empty for all.
        prefix: String,
    },
    /// Liveness check at the application level.
    Ping,
    /// A fresh token for this connection (before the old one expires).
    Auth {
        /// The token, as it would be presented on the upgrade request.
        token: String,
    },
}

/// Why a command was refused, with the id to echo when the client sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The request id, if it could be read.
    pub id: Option<Value>,
    /// Stable error code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Deepest nesting a MessagePack command may have: serde_json's own limit.
const MSGPACK_DEPTH: usize = 128;

/// Parses one command. Never panics, whatever the bytes.
/// `fmt` is how the frame came: a text frame is JSON, a binary frame
/// MessagePack (accepted only on `tickcast.msgpack` connections).
pub fn parse(payload: &[u8], fmt: Format) -> Result<Command, CommandError> {
    let anonymous = |code, message: String| CommandError {
        id: None,
        code,
        message,
    };
    let read = match fmt {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(payload);
            command_object::read(&mut de)
                .and_then(|read| de.end().map(|()| read))
                .map_err(|e| anonymous(ErrorCode::BadJson, format!("not valid JSON: {e}")))?
        }
        Format::MsgPack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(payload);
            // A command nests three deep (`since`, a topic, its position);
            // rmp's own limit (1,024) lets a 1,024-deep array overflow a
            // thread's stack in a debug build.
            de.set_max_depth(MSGPACK_DEPTH);
            command_object::read(&mut de).map_err(|e| {
                anonymous(ErrorCode::BadMsgpack, format!("not valid MessagePack: {e}"))
            })?
        }
    };
    let Read::Object { rest: obj, topics } = read else {
        let message = "a command must be an object like {\"op\":\"subscribe\",\"id\":1,\"topics\":[\"AAPL\"]}";
        return Err(anonymous(ErrorCode::BadRequest, message.into()));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => Some(v.clone()),
        Some(_) => {
            let message = "\"id\" must be a number or a string";
            return Err(anonymous(ErrorCode::BadRequest, message.into()));
        }
    };
    match operation(&obj, topics) {
        Ok(op) => Ok(Command { id, op }),
        Err((code, message)) => Err(CommandError { id, code, message }),
    }
}

/// The `id` of a command that will not be run (over the connection's
/// command rate), read without parsing the rest: cheap whatever the
/// command's size. `None` when it has no readable id.
pub fn request_id(payload: &[u8], fmt: Format) -> Option<Value> {
    match fmt {
        Format::Json => command_object::read_id(&mut serde_json::Deserializer::from_slice(payload)),
        Format::MsgPack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(payload);
            de.set_max_depth(MSGPACK_DEPTH);
            command_object::read_id(&mut de)
        }
    }
}

/// The operation a command object names, with its arguments checked.
/// `topics` comes read apart from the other keys (`command_object`).
fn operation(obj: &Map<String, Value>, topics: Option<Topics>) -> Result<Op, (ErrorCode, String)> {
    let bad = |m: &str| (ErrorCode::BadRequest, m.to_string());
    let op = match obj.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err(bad("\"op\" must be a string")),
        None => return Err(bad("missing \"op\"")),
    };
    if let Some(keys) = keys_of(op) {
        // The first unknown key in name order, as a map of every key would
        // list them, so the message does not depend on how it was read.
        let unknown_topics = topics.as_ref().map(|_| "topics");
        let unknown_rest = obj.keys().map(String::as_str);
        let unknown = unknown_rest.chain(unknown_topics);
        if let Some(unknown) = unknown.filter(|k| !keys.contains(k)).min() {
            let shown: String = unknown.chars().take(40).collect();
            let known = keys.join(", ");
            let message = format!("unknown key {shown:?} in {op}; its keys are {known}");
            return Err((ErrorCode::BadRequest, message));
        }
    }
    Ok(match op {
        "subscribe" => Op::Subscribe(Subscribe {
            topics: topic_list(topics).map_err(bad)?,
            max_rate: max_rate(obj).map_err(bad)?,
            since: since(obj).map_err(bad)?,
            depth: depth(obj).map_err(bad)?,
        }),
        "unsubscribe" => Op::Unsubscribe(topic_list(topics).map_err(bad)?),
        "topics" => Op::Topics {
            prefix: match obj.get("prefix") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(p)) => p.clone(),
                Some(_) => return Err(bad("\"prefix\" must be a string")),
            },
        },
        "ping" => Op::Ping,
        "auth" => match obj.get("token") {
            Some(Value::String(t)) => Op::Auth { token: t.clone() },
            _ => return Err(bad("\"token\" must be a string")),
        },
        other => {
            let shown: String = other.chars().take(40).collect();
            let message = format!(
                "unknown op {shown:?}; expected subscribe, unsubscribe, topics, ping or auth"
            );
            return Err((ErrorCode::UnknownOp, message));
        }
    })
}

/// The keys each command may carry. A key outside them is refused rather
/// than ignored: `"maxRate": 4` silently subscribing at full rate is the
/// kind of mistake a client author must hear about at once.
fn keys_of(op: &str) -> Option<&'static [&'static str]> {
    Some(match op {
        "subscribe" => &["op", "id", "topics", "max_rate", "since", "depth"],
        "unsubscribe" => &["op", "id", "topics"],
        "topics" => &["op", "id", "prefix"],
        "ping" => &["op", "id"],
        "auth" => &["op", "id", "token"],
        _ => return None,
    })
}

fn max_rate(obj: &Map<String, Value>) -> Result<Option<f64>, &'static str> {
    match obj.get("max_rate") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) if r.is_finite() && r > 0.0 => Ok(Some(r)),
            _ => Err("\"max_rate\" must be a positive number of events per second"),
        },
        Some(_) => Err("\"max_rate\" must be a positive number of events per second"),
    }
}

fn depth(obj: &Map<String, Value>) -> Result<Option<usize>, &'static str> {
    const WHICH: &str = "\"depth\" must be one of 10, 25, 100, 500 or 1000 levels per side";
    match obj.get("depth") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().map(|d| d as usize) {
            Some(d) if crate::model::book::class_of(d).is_some() => Ok(Some(d)),
            _ => Err(WHICH),
        },
        Some(_) => Err(WHICH),
    }
}

fn since(obj: &Map<String, Value>) -> Result<SinceMap, &'static str> {
    const SHAPE: &str =
        "\"since\" must map topics to {\"seq\": N, \"epoch\": \"…\"} as the server sent them";
    let entries = match obj.get("since") {
        None | Some(Value::Null) => return Ok(SinceMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(SHAPE),
    };
    let mut out = SinceMap::with_capacity(entries.len());
    for (topic, v) in entries {
        let seq = v.get("seq").and_then(Value::as_u64).ok_or(SHAPE)?;
        let epoch = v.get("epoch").and_then(Value::as_str).ok_or(SHAPE)?;
        out.insert(
            topic.clone(),
            ResumeFrom {
                seq,
                epoch: epoch.to_string(),
            },
        );
    }
    Ok(out)
}

fn topic_list(topics: Option<Topics>) -> Result<Vec<String>, &'static str> {
    match topics {
        Some(Topics::List(list)) if list.is_empty() => Err("\"topics\" is empty"),
        Some(Topics::List(list)) => Ok(list),
        Some(Topics::BadEntry) => Err("every entry of \"topics\" must be a string"),
        Some(Topics::NotArray) | None => {
            Err("\"topics\" must be an array of topic names or patterns")
        }
    }
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
