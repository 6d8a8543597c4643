//! Randomized, with four routers: many topics, publishers on several threads
//! with clears among the updates, subscribers of exact topics and of
//! wildcards, some rate-capped, one that reads slowly (and is conflated),
//! one that drops its connection and resumes with `since`. Every event is
//! checked as it comes (every `seq` step explained: +1, or the `conflated`
//! count, or a restart after `cleared`), and at the end every subscriber
//! holds exactly the server's value of every topic it covers.

mod common;

use common::view::*;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::thread;
use std::time::Duration;
use tickcast::{Server, Update};

const GROUPS: usize = 4;
const PER_GROUP: usize = 40;

fn topic(g: usize, i: usize) -> String {
    format!("M.{g}.{i:02}")
}

#[test]
fn with_four_routers_every_subscriber_ends_with_the_servers_values() {
    let seed = test_seed();
    let server = Server::start(
        config()
            .routers(4)
            .conflate_bytes(8 * 1024)
            .max_commands_per_sec(0.0),
    )
    .unwrap();
    let addr = server.local_addr();
    let all: Vec<String> = (0..GROUPS)
        .flat_map(|g| (0..PER_GROUP).map(move |i| topic(g, i)))
        .collect();

    // Subscribers: (name, selectors, max_rate, reads slowly).
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plans: Vec<(String, Vec<String>, Option<f64>, bool)> = Vec::new();
    plans.push((
        "wildcards".into(),
        vec!["M.0.*".into(), "M.2.*".into()],
        None,
        false,
    ));
    plans.push((
        "everything, capped".into(),
        vec!["M.*".into()],
        Some(20.0),
        false,
    ));
    plans.push(("slow reader".into(), vec!["*".into()], None, true));
    let exact: Vec<String> = (0..25)
        .map(|_| all[rng.random_range(0..all.len())].clone())
        .collect();
    plans.push(("exact, capped".into(), exact.clone(), Some(5.0), false));
    plans.push((
        "exact and a wildcard".into(),
        [exact[..10].to_vec(), vec!["M.3.*".into()]].concat(),
        None,
        false,
    ));

    let mut clients: Vec<(Client, View, Vec<String>, bool)> = plans
        .into_iter()
        .map(|(name, sels, rate, slow)| {
            let mut c = Client::connect(addr);
            let mut cmd = json!({"op":"subscribe","topics":sels});
            if let Some(r) = rate {
                cmd["max_rate"] = json!(r);
            }
            c.command(cmd);
            (c, View::new(&name), sels, slow)
        })
        .collect();

    let publishers: Vec<_> = (0..3u64)
        .map(|n| {
            let p = server.publisher();
            let all = all.clone();
            thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ (n + 1));
                for i in 0..6_000u64 {
                    let t = &all[rng.random_range(0..all.len())];
                    if rng.random_ratio(1, 400) {
                        p.clear(t).unwrap();
                        continue;
                    }
                    let mut u = Update::new(t.as_str());
                    for f in FIELDS {
                        if rng.random_bool(0.5) {
                            let v = i as f64 + rng.random_range(0..100) as f64 / 100.0;
                            u = match f {
                                "bid" => u.bid(v),
                                "ask" => u.ask(v),
                                _ => u.last(v),
                            };
                        }
                    }
                    if u.prices.bid.is_none() && u.prices.ask.is_none() && u.prices.last.is_none() {
                        u = u.bid(i as f64);
                    }
                    p.publish(u).unwrap();
                    if i % 64 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();

    // While the feed runs: read (the slow one rarely), and have one
    // subscriber drop its connection and resume its exact topics.
    let mut resumed = false;
    for round in 0..60 {
        for (c, v, sels, slow) in clients.iter_mut() {
            if *slow && round % 10 != 0 {
                continue;
            }
            drain(c, v, Duration::from_millis(5));
            if !resumed && round == 30 && v.name == "exact, capped" {
                resumed = true;
                let since: serde_json::Map<String, Value> = v
                    .topics
                    .iter()
                    .filter(|(_, h)| h.seq > 0)
                    .map(|(t, h)| (t.clone(), json!({"seq": h.seq, "epoch": h.epoch})))
                    .collect();
                let mut again = Client::connect(addr);
                again.command(json!({"op":"subscribe","topics":sels,"max_rate":5.0,"since":since}));
                *c = again;
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    for p in publishers {
        p.join().unwrap();
    }
    // Everything published is sequenced once the values stop moving.
    let mut last = Vec::new();
    wait_until("the values settle", || {
        let now: Vec<Held> = all.iter().map(|t| server_view(&server, t)).collect();
        let same = now == last;
        last = now;
        thread::sleep(Duration::from_millis(100));
        same
    });
    for (c, v, sels, _) in clients.iter_mut() {
        // Rate-capped updates go at their next slot (at most 200 ms here).
        drain(c, v, Duration::from_millis(600));
        for t in all.iter().filter(|t| covered(sels, t)) {
            let want = server_view(&server, t);
            let held = v.topics.get(t).cloned().unwrap_or_default();
            assert_eq!(
                held, want,
                "{}: {t} differs from the server's value",
                v.name
            );
        }
    }
    assert!(resumed);
    // What the test is about happened: clears reached subscribers, and the
    // slow reader and the capped ones got merged updates.
    let by = |name: &str| clients.iter().find(|(_, v, ..)| v.name == name).unwrap();
    assert!(clients.iter().map(|(_, v, ..)| v.cleared).sum::<usize>() > 0);
    assert!(
        by("slow reader").1.merged > 0,
        "the slow reader was never conflated"
    );
    assert!(
        by("everything, capped").1.merged > 0,
        "max_rate never merged"
    );
}
