//! A shard's mail slice may run out in the middle of a router batch; the
//! rest of that batch is delivered first in the next loop turn, before any
//! later batch, so every topic's events still arrive in order. Here every
//! batch is cut (`Fault::CutBatches`, armed for this whole test binary),
//! with batches of hundreds of events from two routers, and wildcard and
//! exact subscribers that read everything: every `seq` step must be
//! explained and every subscriber must end with the server's values.

mod common;

use common::view::{drain, server_view, View};
use common::Client;
use std::time::Duration;
use tickcast::faults::{arm, Fault};
use tickcast::{Server, Update};

const TOPICS: usize = 300;
const ROUNDS: usize = 40;

#[test]
fn batches_cut_by_the_mail_slice_keep_every_topics_order() {
    arm(Fault::CutBatches);
    let server = Server::start(common::config().routers(2)).expect("server starts");
    let addr = server.local_addr();
    let names: Vec<String> = (0..TOPICS).map(|i| format!("CUT.{i:03}")).collect();
    let publisher = server.publisher();
    // Every topic holds a value before anyone joins, so snapshots come too.
    publisher
        .publish_batch(names.iter().map(|t| Update::new(t.as_str()).bid(0.0)))
        .unwrap();

    let mut readers: Vec<(Client, View)> = Vec::new();
    for (i, sel) in ["CUT.*", "*", "CUT.0*"].iter().enumerate() {
        let mut c = Client::connect(addr);
        c.subscribe(&[sel]);
        readers.push((c, View::new(&format!("wildcard {i} {sel}"))));
    }
    let exact: Vec<&str> = names.iter().step_by(7).map(String::as_str).collect();
    let mut c = Client::connect(addr);
    c.subscribe(&exact);
    readers.push((c, View::new("exact")));

    for round in 1..=ROUNDS {
        // One publish_batch per round: the routers sequence it in batches
        // of hundreds of events, each cut after its first few dozen.
        publisher
            .publish_batch(names.iter().enumerate().map(|(i, t)| {
                Update::new(t.as_str())
                    .bid(round as f64)
                    .ask((round * 1000 + i) as f64)
            }))
            .unwrap();
        for (c, v) in &mut readers {
            drain(c, v, Duration::from_millis(1));
        }
    }
    common::wait_until("every topic holds its last update", || {
        names.iter().all(|t| {
            server
                .snapshot(t)
                .is_some_and(|s| s.seq == ROUNDS as u64 + 1)
        })
    });
    for (c, v) in &mut readers {
        drain(c, v, Duration::from_millis(300));
        assert!(v.updates > 0, "{}: no update arrived", v.name);
        for (t, held) in &v.topics {
            assert_eq!(held, &server_view(&server, t), "{}: {t}", v.name);
        }
    }
    let all = &readers[1].1;
    assert_eq!(all.topics.len(), TOPICS, "the `*` reader holds every topic");
    assert_eq!(readers[3].1.topics.len(), exact.len());
}
