//! Client commands: parsing and validation of what a subscriber sends.

use super::event::ErrorCode;
use serde_json::{Map, Value};

/// One parsed client command.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The client's request id (a number or a string), echoed in the reply.
    pub id: Option<Value>,
    /// What the client asks for.
    pub op: Op,
}

/// The commands of the protocol (docs/PROTOCOL.md).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Start receiving these topics or patterns.
    Subscribe(Vec<String>),
    /// Stop receiving these topics or patterns.
    Unsubscribe(Vec<String>),
    /// List known topics, optionally under a prefix.
    Topics {
        /// Only topics starting with this; empty for all.
        prefix: String,
    },
    /// Liveness check at the application level.
    Ping,
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

/// How the client encoded a command: text frames are JSON, binary frames are
/// MessagePack (accepted only on `tickcast.msgpack` connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON text frame.
    Json,
    /// A MessagePack binary frame.
    MsgPack,
}

/// Parses one command. Never panics, whatever the bytes.
pub fn parse(payload: &[u8], enc: Encoding) -> Result<Command, CommandError> {
    let value: Value = match enc {
        Encoding::Json => serde_json::from_slice(payload).map_err(|e| CommandError {
            id: None,
            code: ErrorCode::BadJson,
            message: format!("not valid JSON: {e}"),
        })?,
        Encoding::MsgPack => rmp_serde::from_slice(payload).map_err(|e| CommandError {
            id: None,
            code: ErrorCode::BadMsgpack,
            message: format!("not valid MessagePack: {e}"),
        })?,
    };
    let Value::Object(obj) = value else {
        return Err(CommandError {
            id: None,
            code: ErrorCode::BadRequest,
            message: "a command must be an object like {\"op\":\"subscribe\",\"id\":1,\"topics\":[\"AAPL\"]}"
                .into(),
        });
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => Some(v.clone()),
        Some(_) => {
            return Err(CommandError {
                id: None,
                code: ErrorCode::BadRequest,
                message: "\"id\" must be a number or a string".into(),
            })
        }
    };
    let fail = |code, message: String| CommandError {
        id: id.clone(),
        code,
        message,
    };
    let op = match obj.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => {
            return Err(fail(
                ErrorCode::BadRequest,
                "\"op\" must be a string".into(),
            ))
        }
        None => return Err(fail(ErrorCode::BadRequest, "missing \"op\"".into())),
    };
    let op = match op {
        "subscribe" => {
            Op::Subscribe(topic_list(&obj).map_err(|m| fail(ErrorCode::BadRequest, m.into()))?)
        }
        "unsubscribe" => {
            Op::Unsubscribe(topic_list(&obj).map_err(|m| fail(ErrorCode::BadRequest, m.into()))?)
        }
        "topics" => Op::Topics {
            prefix: match obj.get("prefix") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(p)) => p.clone(),
                Some(_) => {
                    return Err(fail(
                        ErrorCode::BadRequest,
                        "\"prefix\" must be a string".into(),
                    ))
                }
            },
        },
        "ping" => Op::Ping,
        other => {
            let shown: String = other.chars().take(40).collect();
            return Err(fail(
                ErrorCode::UnknownOp,
                format!("unknown op {shown:?}; expected subscribe, unsubscribe, topics or ping"),
            ));
        }
    };
    Ok(Command { id, op })
}

fn topic_list(obj: &Map<String, Value>) -> Result<Vec<String>, &'static str> {
    let Some(Value::Array(items)) = obj.get("topics") else {
        return Err("\"topics\" must be an array of topic names or patterns");
    };
    if items.is_empty() {
        return Err("\"topics\" is empty");
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err("every entry of \"topics\" must be a string"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse(s.as_bytes(), Encoding::Json)
    }

    #[test]
    fn parses_every_op() {
        assert_eq!(
            p(r#"{"op":"subscribe","id":1,"topics":["A","FX.*"]}"#).unwrap(),
            Command {
                id: Some(json!(1)),
                op: Op::Subscribe(vec!["A".into(), "FX.*".into()])
            }
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
        assert_eq!(
            parse(&[0xc1], Encoding::MsgPack).unwrap_err().code,
            ErrorCode::BadMsgpack
        );
    }

    #[test]
    fn msgpack_commands_parse_like_json() {
        let bytes =
            rmp_serde::to_vec_named(&json!({"op":"subscribe","id":3,"topics":["A"]})).unwrap();
        assert_eq!(
            parse(&bytes, Encoding::MsgPack).unwrap().op,
            Op::Subscribe(vec!["A".into()])
        );
    }
}
