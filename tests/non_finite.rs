//! Issue 14, non-finite numbers. The rule: NaN and ±infinity are refused
//! where they are published, with a clear error naming the field, on every
//! path (Rust publisher calls, the remote publisher, `/publish` frames,
//! cluster mode); nothing of a refused update is sequenced, so a JSON
//! subscriber only ever gets valid JSON. (C: `api_errors.c`.)

mod common;

use common::redis::RedisServer;
use common::{next_error, raw_publisher, Client};
use std::time::Duration;
use tickcast::publish::{self, PublisherEvent};
use tickcast::{Error, Prices, RemoteConfig, RemotePublisher, Server, Update};
use tungstenite::Message;

const PUB: &str = "publisher-token-1";
const BAD: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

/// An update of `topic` with field `i` (in `Prices::NAMES` order) set to `v`.
fn with_field(topic: &str, i: usize, v: f64) -> Update {
    let u = Update::new(topic);
    match i {
        0 => u.bid(v),
        1 => u.ask(v),
        2 => u.last(v),
        3 => u.bid_size(v),
        4 => u.ask_size(v),
        5 => u.last_size(v),
        _ => u.volume(v),
    }
}

/// Every refused one names its field; afterwards a good update is the
/// subscriber's first event, with `seq` 1: nothing bad was sequenced.
fn every_call_refuses(server: &Server, publish: &dyn Fn(Update) -> tickcast::Result<()>) {
    let mut sub = Client::connect(server.local_addr());
    sub.subscribe(&["NF"]);
    for (i, name) in Prices::NAMES.iter().enumerate() {
        for v in BAD {
            match publish(with_field("NF", i, v)) {
                Err(Error::InvalidValue(field)) => assert_eq!(field, *name),
                other => panic!("{name} = {v}: {other:?}"),
            }
        }
    }
    publish(Update::new("NF").bid(1.5)).unwrap();
    let ev = sub.next_event();
    assert_eq!(
        (ev["event"].as_str(), ev["seq"].as_u64()),
        (Some("update"), Some(1)),
        "{ev}"
    );
}

#[test]
fn every_rust_publish_call_refuses_nan_and_infinities_by_field() {
    for call in 0..4 {
        let server = common::server();
        let p = server.publisher();
        every_call_refuses(&server, &|u| match call {
            0 => p.publish(u),
            1 => p.try_publish(u),
            2 => p.publish_timeout(u, Duration::from_secs(1)),
            _ => p.publish_batch([Update::new("NF").bid(2.0), u]),
        });
    }
}

#[test]
fn the_remote_publisher_refuses_them_at_the_call() {
    let server = Server::start(common::config().publisher_tokens(vec![PUB.into()])).unwrap();
    let url = format!("ws://{}/publish", server.local_addr());
    let remote = RemotePublisher::connect(RemoteConfig::new(url, PUB)).unwrap();
    every_call_refuses(&server, &|u| remote.publish(u));
    remote.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        remote.lost(),
        0,
        "refused at the call: nothing sent to be lost"
    );
}

#[test]
fn publish_frames_with_them_are_refused_by_index_and_the_rest_goes_on() {
    let server = Server::start(common::config().publisher_tokens(vec![PUB.into()])).unwrap();
    let mut sub = Client::connect(server.local_addr());
    sub.subscribe(&["NF"]);
    let mut ws = raw_publisher(server.local_addr(), PUB);
    // A frame made by hand, as a non-Rust publisher would: every bad value
    // in every field, with one good update in the middle.
    let mut frame: Vec<Update> = Vec::new();
    for i in 0..7 {
        for v in BAD {
            frame.push(with_field("NF", i, v));
        }
    }
    frame.insert(10, Update::new("NF").bid(7.0));
    ws.send(Message::binary(publish::encode(&frame))).unwrap();
    let PublisherEvent::Error {
        code,
        refused,
        indexes,
        message,
    } = next_error(&mut ws)
    else {
        panic!()
    };
    assert_eq!((code.as_str(), refused), ("bad_update", 21), "{message}");
    assert!(!indexes.contains(&10), "{indexes:?}");
    assert!(message.contains("must be finite"), "{message}");
    let ev = sub.next_event();
    assert_eq!(
        (ev["seq"].as_u64(), ev["bid"].as_f64()),
        (Some(1), Some(7.0)),
        "{ev}"
    );
}

#[test]
fn cluster_mode_refuses_them_before_redis() {
    let redis = RedisServer::start();
    let server = Server::start(common::config().redis(redis.url())).unwrap();
    let p = server.publisher();
    every_call_refuses(&server, &|u| p.publish(u));
}
