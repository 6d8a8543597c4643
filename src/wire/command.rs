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
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse(s.as_bytes(), Format::Json)
    }

    #[test]
    fn parses_every_op() {
        assert_eq!(
            p(r#"{"op":"subscribe","id":1,"topics":["A","FX.*"]}"#).unwrap(),
            Command {
                id: Some(json!(1)),
                op: Op::Subscribe(Subscribe {
                    topics: vec!["A".into(), "FX.*".into()],
                    ..Subscribe::default()
                })
            }
        );
        let resume = p(r#"{"op":"subscribe","topics":["A"],"max_rate":4,"since":{"A":{"seq":7,"epoch":"9f3a0001"}}}"#)
            .unwrap();
        let Op::Subscribe(sub) = resume.op else {
            panic!("not a subscribe")
        };
        assert_eq!(sub.max_rate, Some(4.0));
        assert_eq!(
            sub.since.get("A"),
            Some(&ResumeFrom {
                seq: 7,
                epoch: "9f3a0001".into()
            })
        );
        assert_eq!(
            p(r#"{"op":"unsubscribe","id":"x","topics":["A"]}"#)
                .unwrap()
                .id,
            Some(json!("x"))
        );
        assert_eq!(
            p(r#"{"op":"topics","prefix":"FX."}"#).unwrap().op,
            Op::Topics {
                prefix: "FX.".into()
            }
        );
        assert_eq!(p(r#"{"op":"ping"}"#).unwrap().op, Op::Ping);
    }

    #[test]
    fn refuses_bad_commands_with_codes_and_ids() {
        assert_eq!(p("{nope").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(p("[1]").unwrap_err().code, ErrorCode::BadRequest);
        let e = p(r#"{"op":"fly","id":5}"#).unwrap_err();
        assert_eq!((e.code, e.id), (ErrorCode::UnknownOp, Some(json!(5))));
        assert_eq!(
            p(r#"{"op":"subscribe","id":2}"#).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            p(r#"{"op":"subscribe","topics":[1]}"#).unwrap_err().code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            p(r#"{"op":"ping","id":{}}"#).unwrap_err().code,
            ErrorCode::BadRequest
        );
        for bad in [
            r#"{"op":"subscribe","topics":["A"],"max_rate":0}"#,
            r#"{"op":"subscribe","topics":["A.book"],"depth":11}"#,
            r#"{"op":"subscribe","topics":["A.book"],"depth":"deep"}"#,
            r#"{"op":"subscribe","topics":["A"],"max_rate":"fast"}"#,
            r#"{"op":"subscribe","topics":["A"],"since":[]}"#,
            r#"{"op":"subscribe","topics":["A"],"since":{"A":{"seq":-1,"epoch":"x"}}}"#,
            r#"{"op":"subscribe","topics":["A"],"since":{"A":{"seq":1}}}"#,
        ] {
            assert_eq!(p(bad).unwrap_err().code, ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            parse(&[0xc1], Format::MsgPack).unwrap_err().code,
            ErrorCode::BadMsgpack
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name_in_json_and_msgpack() {
        for (cmd, key) in [
            (
                json!({"op":"subscribe","id":7,"topics":["A"],"maxRate":4}),
                "maxRate",
            ),
            (
                json!({"op":"unsubscribe","topics":["A"],"depth":10}),
                "depth",
            ),
            (json!({"op":"topics","filter":"FX."}), "filter"),
            (json!({"op":"ping","id":1,"x":null}), "x"),
            (json!({"op":"auth","token":"t","exp":1}), "exp"),
        ] {
            let text = serde_json::to_vec(&cmd).unwrap();
            let packed = rmp_serde::to_vec_named(&cmd).unwrap();
            for e in [
                parse(&text, Format::Json).unwrap_err(),
                parse(&packed, Format::MsgPack).unwrap_err(),
            ] {
                assert_eq!(e.code, ErrorCode::BadRequest, "{cmd}");
                assert!(
                    e.message.contains(&format!("unknown key \"{key}\"")),
                    "{}",
                    e.message
                );
                assert_eq!(e.id, cmd.get("id").cloned(), "the id is still echoed");
            }
        }
        let e = p(r#"{"op":"subscribe","topics":["A"],"maxRate":4}"#).unwrap_err();
        assert!(
            e.message.contains("max_rate"),
            "names the valid keys: {}",
            e.message
        );
        // An unknown op is still reported as such, whatever its keys.
        assert_eq!(
            p(r#"{"op":"fly","wings":2}"#).unwrap_err().code,
            ErrorCode::UnknownOp
        );
    }

    #[test]
    fn msgpack_commands_parse_like_json() {
        // The same commands as JSON text and as MessagePack parse to the
        // same command, id included; and a bad one fails the same way.
        for cmd in [
            json!({"op":"subscribe","id":3,"topics":["A","FX.*"],"max_rate":5.0,"depth":25}),
            json!({"op":"unsubscribe","id":"u-1","topics":["A"]}),
            json!({"op":"topics","id":4,"prefix":"FX."}),
            json!({"op":"ping"}),
            json!({"op":"subscribe","id":5,"topics":["A"],"since":{"A":{"seq":7,"epoch":"e1"}}}),
        ] {
            let text = serde_json::to_vec(&cmd).unwrap();
            let packed = rmp_serde::to_vec_named(&cmd).unwrap();
            let from_json = parse(&text, Format::Json).unwrap();
            let from_msgpack = parse(&packed, Format::MsgPack).unwrap();
            assert_eq!(from_json, from_msgpack, "{cmd}");
            assert_eq!(from_json.id, cmd.get("id").cloned(), "{cmd}");
        }
        let first = parse(
            &rmp_serde::to_vec_named(&json!({"op":"subscribe","id":3,"topics":["A"]})).unwrap(),
            Format::MsgPack,
        )
        .unwrap();
        assert_eq!(
            first.op,
            Op::Subscribe(Subscribe {
                topics: vec!["A".into()],
                ..Subscribe::default()
            })
        );
        let bad = json!({"op":"fly","id":9});
        let (j, m) = (
            parse(&serde_json::to_vec(&bad).unwrap(), Format::Json).unwrap_err(),
            parse(&rmp_serde::to_vec_named(&bad).unwrap(), Format::MsgPack).unwrap_err(),
        );
        assert_eq!((j.code, j.id.clone()), (m.code, m.id.clone()));
        assert_eq!(j.id, Some(json!(9)));
    }

    /// `topics` is read apart from the other keys (`command_object`); every
    /// shape it can take must still get the message a tree of `Value`s gave.
    #[test]
    fn topics_of_every_shape_get_the_same_answers_in_both_formats() {
        let not_array = "\"topics\" must be an array of topic names or patterns";
        let bad_entry = "every entry of \"topics\" must be a string";
        let cases = [
            (json!({"op":"unsubscribe","id":1,"topics":"A"}), not_array),
            (json!({"op":"unsubscribe","id":1,"topics":null}), not_array),
            (json!({"op":"unsubscribe","id":1,"topics":7}), not_array),
            (
                json!({"op":"unsubscribe","id":1,"topics":{"A":["B"]}}),
                not_array,
            ),
            (json!({"op":"unsubscribe","id":1}), not_array),
            (
                json!({"op":"subscribe","id":1,"topics":[]}),
                "\"topics\" is empty",
            ),
            (json!({"op":"subscribe","id":1,"topics":["A",1]}), bad_entry),
            (
                json!({"op":"subscribe","id":1,"topics":[["A"],"B"]}),
                bad_entry,
            ),
            (
                json!({"op":"subscribe","id":1,"topics":["A",{"t":"B"},null]}),
                bad_entry,
            ),
            // The first unknown key in name order, `topics` among them.
            (
                json!({"op":"ping","id":1,"topics":["A"],"zone":1}),
                "unknown key \"topics\" in ping; its keys are op, id",
            ),
            (
                json!({"op":"ping","id":1,"topics":["A"],"since":1}),
                "unknown key \"since\" in ping; its keys are op, id",
            ),
        ];
        for (cmd, message) in cases {
            for (bytes, fmt) in [
                (serde_json::to_vec(&cmd).unwrap(), Format::Json),
                (rmp_serde::to_vec_named(&cmd).unwrap(), Format::MsgPack),
            ] {
                let e = parse(&bytes, fmt).unwrap_err();
                assert_eq!(
                    (e.code, e.id, e.message.as_str()),
                    (ErrorCode::BadRequest, Some(json!(1)), message),
                    "{cmd} {fmt:?}"
                );
            }
        }
    }

    /// What surrounds and nests inside `topics`, read apart.
    #[test]
    fn topics_read_apart_keep_json_rules_and_refuse_deep_or_lying_input() {
        let bad_entry = "every entry of \"topics\" must be a string";
        // A repeated key counts once, its last value, as in a JSON object.
        let twice = p(r#"{"op":"unsubscribe","topics":[1],"topics":["B","C"]}"#).unwrap();
        assert_eq!(twice.op, Op::Unsubscribe(vec!["B".into(), "C".into()]));
        // Escapes are decoded; what follows the object is refused.
        let escaped = p(r#"{"op":"unsubscribe","topics":["A\u0042","\"q\""]}"#).unwrap();
        assert_eq!(
            escaped.op,
            Op::Unsubscribe(vec!["AB".into(), "\"q\"".into()])
        );
        let trailing = p(r#"{"op":"ping"} {"op":"ping"}"#).unwrap_err();
        assert_eq!(trailing.code, ErrorCode::BadJson);
        // Nesting deep inside a topics entry is refused, not a stack
        // overflow: skipped without recursion in JSON, cut at a depth in
        // MessagePack.
        let deep = format!(
            r#"{{"op":"unsubscribe","topics":[{}1{}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(p(&deep).unwrap_err().message, bad_entry);
        let mut deep = rmp_serde::to_vec_named(&json!({"op":"unsubscribe","topics":0})).unwrap();
        deep.pop();
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0x01);
        assert_eq!(
            parse(&deep, Format::MsgPack).unwrap_err().code,
            ErrorCode::BadMsgpack
        );
        // A MessagePack array header claiming four billion topics reserves
        // no more than the bound, and the truncated body is refused.
        let mut lying = rmp_serde::to_vec_named(&json!({"op":"unsubscribe","topics":0})).unwrap();
        lying.pop();
        lying.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, b'A']);
        assert_eq!(
            parse(&lying, Format::MsgPack).unwrap_err().code,
            ErrorCode::BadMsgpack
        );
    }
}
