//! A thousand concurrent subscribers on one topic all receive a burst, in order.

mod common;

use common::*;
use serde_json::json;
use tickcast::Update;

#[test]
fn a_thousand_subscribers_each_receive_every_update_of_a_burst_in_order() {
    raise_fd_limit();
    const CLIENTS: usize = 1000;
    const BURST: u64 = 200;
    let server = server();
    let p = server.publisher();
    p.publish(Update::new("BURST").bid(0.0).ask(1.0)).unwrap();
    wait_until("first update", || server.snapshot("BURST").is_some());

    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    for c in clients.iter_mut() {
        c.send(json!({"op":"subscribe","id":1,"topics":["BURST"]}));
    }
    for c in clients.iter_mut() {
        assert_eq!(c.next_event()["event"], "subscribed");
        let snap = c.next_event();
        assert_eq!(
            (snap["event"].as_str(), snap["seq"].as_u64()),
            (Some("snapshot"), Some(1))
        );
    }
    assert_eq!(server.connection_count(), CLIENTS);

    for i in 0..BURST {
        p.publish(Update::new("BURST").bid(i as f64)).unwrap();
    }
    for (n, c) in clients.iter_mut().enumerate() {
        for want in 2..=BURST + 1 {
            let ev = c.next_event();
            assert_eq!(ev["seq"].as_u64(), Some(want), "client {n}: {ev}");
            assert_eq!(ev["bid"].as_f64(), Some((want - 2) as f64), "client {n}");
        }
    }
}
