//! Issue 14, interest callbacks: a feed handler learns when a topic or a
//! pattern gains its first subscriber anywhere on the server and when it
//! loses its last, through `Server::on_interest`, through `interest` events
//! on `/publish`, and through `RemoteConfig::on_interest`.

mod common;

use common::{next_any_publisher_event as next_publisher_event, raw_publisher, Client, TIMEOUT};
use crossbeam_channel::{unbounded, Receiver};
use std::time::Duration;
use tickcast::publish::PublisherEvent;
use tickcast::{Interest, RemoteConfig, RemotePublisher, Server, Update};

const PUB: &str = "publisher-token-1";

fn server() -> Server {
    Server::start(common::config().publisher_tokens(vec![PUB.into()])).unwrap()
}

fn watch(server: &Server) -> Receiver<Interest> {
    let (tx, rx) = unbounded();
    server.on_interest(move |i| {
        let _ = tx.send(i.clone());
    });
    rx
}

fn next(rx: &Receiver<Interest>) -> (String, bool, bool) {
    let i = rx.recv_timeout(TIMEOUT).expect("an interest event");
    (i.selector, i.pattern, i.active)
}

fn none(rx: &Receiver<Interest>) {
    if let Ok(i) = rx.recv_timeout(Duration::from_millis(300)) {
        panic!("unexpected {i:?}");
    }
}

fn ev(s: &str, pattern: bool, active: bool) -> (String, bool, bool) {
    (s.to_string(), pattern, active)
}

#[test]
fn first_and_last_subscribers_of_topics_and_patterns_are_told_once() {
    let server = server();
    let rx = watch(&server);
    let addr = server.local_addr();
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    a.subscribe(&["A.1"]);
    assert_eq!(next(&rx), ev("A.1", false, true));
    b.subscribe(&["A.1", "FX.*"]);
    assert_eq!(next(&rx), ev("FX.*", true, true));
    none(&rx);
    a.command(serde_json::json!({"op":"unsubscribe","topics":["A.1"]}));
    assert_eq!(a.next_event()["event"], "unsubscribed");
    none(&rx);
    // The last subscriber drops its socket without a close frame.
    let sock = b.ws.get_ref().try_clone().unwrap();
    sock.shutdown(std::net::Shutdown::Both).unwrap();
    drop(b);
    let mut gone = vec![next(&rx), next(&rx)];
    gone.sort();
    assert_eq!(gone, [ev("A.1", false, false), ev("FX.*", true, false)]);
    // A callback registered later first hears what is wanted now.
    a.subscribe(&["B.2"]);
    assert_eq!(next(&rx), ev("B.2", false, true));
    let late = watch(&server);
    assert_eq!(next(&late), ev("B.2", false, true));
    none(&late);
}

#[test]
fn a_callback_may_publish_what_was_just_asked_for() {
    let server = server();
    let p = server.publisher();
    // A feed handler that subscribes upstream on demand: here the "upstream"
    // answers at once with a price.
    server.on_interest(move |i| {
        if i.active && !i.pattern {
            p.publish(Update::new(i.selector.as_str()).bid(42.0))
                .unwrap();
        }
    });
    let mut c = Client::connect(server.local_addr());
    c.subscribe(&["ON.DEMAND"]);
    let e = c.next_event();
    assert_eq!(
        (e["event"].as_str(), e["bid"].as_f64()),
        (Some("update"), Some(42.0)),
        "{e}"
    );
}

#[test]
fn publish_connections_are_told_what_is_wanted_and_what_changes() {
    let server = server();
    let addr = server.local_addr();
    let mut c = Client::connect(addr);
    c.subscribe(&["W.1"]);
    let mut p = raw_publisher(addr, PUB);
    let first = next_publisher_event(&mut p);
    assert_eq!(
        first,
        PublisherEvent::Interest {
            selector: "W.1".into(),
            pattern: false,
            active: true
        },
        "what is wanted when it connects"
    );
    c.subscribe(&["W.*"]);
    assert_eq!(
        next_publisher_event(&mut p),
        PublisherEvent::Interest {
            selector: "W.*".into(),
            pattern: true,
            active: true
        }
    );
    drop(c);
    let mut gone = vec![next_publisher_event(&mut p), next_publisher_event(&mut p)];
    gone.sort_by_key(|e| format!("{e:?}"));
    assert!(
        gone.iter()
            .all(|e| matches!(e, PublisherEvent::Interest { active: false, .. })),
        "{gone:?}"
    );

    // The Rust remote publisher passes them to its callback.
    let (tx, rx) = unbounded();
    let cfg = RemoteConfig::new(format!("ws://{addr}/publish"), PUB).on_interest(move |i| {
        let _ = tx.send(i.clone());
    });
    let remote = RemotePublisher::connect(cfg).unwrap();
    let mut c = Client::connect(addr);
    c.subscribe(&["R.9"]);
    assert_eq!(next(&rx), ev("R.9", false, true));
    drop(remote);
}
