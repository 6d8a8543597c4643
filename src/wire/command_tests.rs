//! Tests of `command`: every op, every refusal, both formats.
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
