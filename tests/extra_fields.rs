//! Issue 14, extra numeric fields (`[fields] extra`): set by name through
//! every publish path, merged into the last value, sent by name in JSON and
//! MessagePack, kept in history for `since`; bad names and values refused.

mod common;

use common::Client;
use serde_json::json;
use std::time::Duration;
use tickcast::publish::PublisherEvent;
use tickcast::{Config, Error, RemoteConfig, RemotePublisher, Server, Update};

const PUB: &str = "pub-token-extra";

fn server() -> Server {
    let config = common::config()
        .extra_fields(["open_interest", "iv", "delta"])
        .publisher_tokens(vec![PUB.into()]);
    Server::start(config).unwrap()
}

#[test]
fn extra_fields_merge_and_arrive_by_name_in_json_and_msgpack() {
    let server = server();
    let p = server.publisher();
    let (oi, iv, delta) = (
        server.field("open_interest").unwrap(),
        server.field("iv").unwrap(),
        server.field("delta").unwrap(),
    );
    assert_eq!((oi.index(), iv.index(), delta.index()), (0, 1, 2));
    assert!(server.field("gamma").is_none() && server.field("bid").is_none());
    let mut live = Client::connect_msgpack(server.local_addr());
    live.subscribe(&["OPT.A"]);
    p.publish(Update::new("OPT.A").last(3.5).field(iv, 0.31))
        .unwrap();
    p.publish(Update::new("OPT.A").field(delta, -0.4)).unwrap();
    // Each update carries only its own fields, by name.
    let first = live.next_event();
    assert_eq!(
        (first["last"].as_f64(), first["iv"].as_f64()),
        (Some(3.5), Some(0.31)),
        "{first}"
    );
    assert!(first.get("delta").is_none());
    let second = live.next_event();
    assert_eq!(second["delta"], -0.4);
    assert!(
        second.get("iv").is_none() && second.get("last").is_none(),
        "{second}"
    );
    // The snapshot holds the merged value.
    common::wait_until("numbered", || {
        server.snapshot("OPT.A").is_some_and(|s| s.seq == 2)
    });
    let snap = server.snapshot("OPT.A").unwrap();
    assert_eq!(
        (snap.prices.extra.get(1), snap.prices.extra.get(2)),
        (Some(0.31), Some(-0.4))
    );
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["OPT.A"]);
    let ev = c.next_event();
    assert_eq!(ev["event"], "snapshot");
    assert_eq!(
        (ev["last"].as_f64(), ev["iv"].as_f64(), ev["delta"].as_f64()),
        (Some(3.5), Some(0.31), Some(-0.4))
    );
    assert!(ev.get("open_interest").is_none(), "never set, never sent");
    // A resume from history replays the extra fields too.
    let epoch = ev["epoch"].as_str().unwrap().to_string();
    p.publish(Update::new("OPT.A").field(oi, 1200.0)).unwrap();
    assert_eq!(c.next_event()["open_interest"], 1200.0);
    let mut r = Client::connect(server.local_addr());
    r.command(
        json!({"op":"subscribe","topics":["OPT.A"],"since":{"OPT.A":{"seq":1,"epoch":epoch}}}),
    );
    assert_eq!(r.next_event()["recovered"], json!(["OPT.A"]));
    let replayed = [r.next_event(), r.next_event()];
    assert_eq!(replayed[0]["delta"], -0.4);
    assert_eq!(replayed[1]["open_interest"], 1200.0);
    // Non-finite extra values are refused like any field.
    let bad = p.publish(Update::new("OPT.A").field(iv, f64::NAN));
    assert!(matches!(bad, Err(Error::InvalidValue(_))), "{bad:?}");
}

#[test]
fn network_publishers_set_extra_fields_by_name() {
    let server = server();
    let addr = server.local_addr();
    let remote =
        RemotePublisher::connect(RemoteConfig::new(format!("ws://{addr}/publish"), PUB)).unwrap();
    let iv = remote.field("iv").expect("learnt from the 101 response");
    assert!(remote.field("gamma").is_none());
    let mut c = Client::connect(addr);
    c.subscribe(&["OPT.*"]);
    remote
        .publish(Update::new("OPT.R").bid(1.0).field(iv, 0.5))
        .unwrap();
    let ev = c.next_event();
    assert_eq!(
        (ev["topic"].as_str(), ev["iv"].as_f64()),
        (Some("OPT.R"), Some(0.5)),
        "{ev}"
    );
    // A raw frame: extra fields by name; an unknown key or a value that
    // is not a number refuses the frame, and says which.
    let mut ws = common::raw_publisher(addr, PUB);
    let send = |ws: &mut tungstenite::WebSocket<std::net::TcpStream>, v: serde_json::Value| {
        ws.send(tungstenite::Message::binary(
            rmp_serde::to_vec_named(&v).unwrap(),
        ))
        .unwrap();
    };
    send(
        &mut ws,
        json!({"topic":"OPT.W","delta":0.25,"open_interest":7}),
    );
    let ev = c.next_event();
    assert_eq!(
        (ev["delta"].as_f64(), ev["open_interest"].as_f64()),
        (Some(0.25), Some(7.0)),
        "{ev}"
    );
    send(
        &mut ws,
        json!([{"topic":"OPT.W","iv":0.1},{"topic":"OPT.W","gamma":1.0}]),
    );
    match common::next_error(&mut ws) {
        PublisherEvent::Error { code, message, .. } => {
            assert_eq!(code, "bad_frame");
            assert!(
                message.contains("gamma") && message.contains("update 1"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    send(&mut ws, json!({"topic":"OPT.W","iv":"high"}));
    match common::next_error(&mut ws) {
        PublisherEvent::Error { code, message, .. } => {
            assert_eq!(code, "bad_frame");
            assert!(message.contains("must be a number"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.try_next_event(Duration::from_millis(200)).is_none(),
        "nothing of those frames"
    );
}

#[test]
fn extra_field_names_are_checked() {
    let bad = |names: &[&str]| {
        let config = Config::default().extra_fields(names.iter().copied());
        match config.validate() {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{names:?} accepted"),
        }
    };
    assert!(bad(&["bid"]).contains("fields.extra"));
    assert!(bad(&["seq"]).contains("fields.extra"));
    assert!(bad(&["Iv"]).contains("a-z"));
    assert!(bad(&["iv", "iv"]).contains("once"));
    assert!(bad(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]).contains("at most 8"));
    let good = Config::default().extra_fields(["open_interest", "iv"]);
    assert!(good.validate().is_ok());
    // From TOML, as tickcastd and the C ABI read it.
    let c = Config::from_toml("[fields]\nextra = [\"iv\", \"delta\"]\n").unwrap();
    assert_eq!(c.extra_fields, ["iv", "delta"]);
}
