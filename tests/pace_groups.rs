//! Rate caps shared by a topic's subscribers (`max_rate`): subscribers whose
//! subscriptions ask one rate are paced by their topics' groups on the
//! shard, one slot and one merged update per topic and interval. Checked
//! here against what a subscriber must see whatever pacing does: every
//! `seq` step explained (+1 or the `conflated` count), the server's values
//! at the end, and no more events than the rate allows, through the
//! moments where a connection's pacing changes: joining while its group
//! holds an update back, asking a second rate for one topic (its own
//! pacing) and dropping it again, asking a new rate for everything,
//! statuses and clears among the updates, and a reload of the server's
//! `max_rate`.

mod common;

use common::view::*;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::thread;
use std::time::{Duration, Instant};
use tickcast::{Server, Update};

const TOPICS: usize = 8;

fn topic(i: usize) -> String {
    format!("P.{i}")
}

/// Publishes to random topics for `run`, with a clear or a stale mark now
/// and then.
fn feed(server: &Server, seed: u64, run: Duration) -> thread::JoinHandle<u64> {
    let p = server.publisher();
    thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < run {
            let t = topic(rng.random_range(0..TOPICS));
            match rng.random_range(0..1000) {
                0 => p.clear(&t).unwrap(),
                1..=3 => p.mark_stale(&t).unwrap(),
                _ => {
                    let v = n as f64 + rng.random_range(0..100) as f64 / 100.0;
                    let u = match rng.random_range(0..3) {
                        0 => Update::new(t).bid(v),
                        1 => Update::new(t).ask(v),
                        _ => Update::new(t).bid(v).last(v + 1.0),
                    };
                    p.publish(u).unwrap();
                }
            }
            n += 1;
            if n % 8 == 0 {
                thread::sleep(Duration::from_micros(500));
            }
        }
        n
    })
}

/// A subscriber, its view, its selectors, and the plan it follows.
struct Sub {
    c: Client,
    v: View,
    sels: Vec<String>,
}

fn subscribe(addr: std::net::SocketAddr, name: &str, sels: &[&str], rate: Option<f64>) -> Sub {
    let mut c = Client::connect(addr);
    let mut cmd = json!({"op":"subscribe","topics":sels});
    if let Some(r) = rate {
        cmd["max_rate"] = json!(r);
    }
    c.command(cmd);
    let sels = sels.iter().map(|s| s.to_string()).collect();
    Sub {
        c,
        v: View::new(name),
        sels,
    }
}

#[test]
fn shared_rate_caps_keep_every_step_exact_through_joins_and_rate_changes() {
    let seed = test_seed();
    let cfg = || config().max_commands_per_sec(0.0);
    let server = Server::start(cfg()).unwrap();
    let addr = server.local_addr();
    let run = Duration::from_millis(2_400);
    let feeder = feed(&server, seed, run);
    let start = Instant::now();
    let mut subs = vec![
        subscribe(addr, "steady", &["P.*"], Some(10.0)),
        subscribe(addr, "mixed, then one rate again", &["P.*"], Some(10.0)),
        subscribe(addr, "a new rate for everything", &["P.*"], Some(10.0)),
        subscribe(
            addr,
            "exact, then the wildcard",
            &["P.0", "P.1"],
            Some(10.0),
        ),
    ];
    let mut late: Vec<Sub> = Vec::new();
    let mut step = 0;
    while start.elapsed() < run + Duration::from_millis(200) {
        let at = start.elapsed().as_millis();
        // Each change once, at its moment.
        let due = [300, 450, 600, 900, 1_200, 1_500, 1_800];
        if step < due.len() && at >= due[step] {
            match step {
                0 => late.push(subscribe(addr, "late", &["P.*"], Some(10.0))),
                1 => {
                    // Uncapped among capped ones (all in one group so far):
                    // gets every update.
                    late.push(subscribe(addr, "uncapped, late", &["P.*"], None));
                }
                2 => {
                    let s = &mut subs[1];
                    s.c.command(json!({"op":"subscribe","topics":["P.3"],"max_rate":40}));
                }
                3 => {
                    let s = &mut subs[2];
                    s.c.command(json!({"op":"subscribe","topics":["P.*"],"max_rate":4}));
                }
                4 => {
                    subs[1]
                        .c
                        .command(json!({"op":"unsubscribe","topics":["P.3"]}));
                }
                5 => {
                    let s = &mut subs[3];
                    s.c.command(json!({"op":"subscribe","topics":["P.*"],"max_rate":10}));
                    s.sels.push("P.*".into());
                }
                _ => {
                    // The server's cap now binds everyone at 5/s.
                    server.reload(cfg().max_rate(Some(5.0))).unwrap();
                }
            }
            step += 1;
        }
        for s in subs.iter_mut().chain(late.iter_mut()) {
            // A bounded read: the uncapped one is never quiet while the
            // feed runs.
            for _ in 0..5_000 {
                let Some(ev) = s.c.try_next_event(Duration::from_millis(2)) else {
                    break;
                };
                s.v.take(&ev);
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(step, 7, "every change was made");
    let published = feeder.join().unwrap();
    let (steady_updates, steady_statuses) = (subs[0].v.updates, subs[0].v.statuses);
    subs.extend(late);
    for s in subs.iter_mut() {
        // The last slot of a 4/s cap is at most 250 ms away.
        drain(&mut s.c, &mut s.v, Duration::from_millis(700));
        for t in (0..TOPICS).map(topic).filter(|t| covered(&s.sels, t)) {
            let want = server_view(&server, &t);
            let held = s.v.topics.get(&t).cloned().unwrap_or_default();
            assert_eq!(held, want, "{}: {t} differs from the server's", s.v.name);
        }
    }
    // 10/s per topic for the run at most: one more per topic for a slot
    // that came as the clock started and for the reload (which sends what
    // was held at once); a clear starts a topic again, and a status goes
    // after what was held back of its topic (it is sent first, out of turn).
    let secs = run.as_secs_f64() + 0.2;
    let slots = (TOPICS as f64 * (10.0 * secs + 2.0)) as usize + TOPICS;
    let most = slots + subs[0].v.cleared * 2 + steady_statuses;
    assert!(
        steady_updates <= most,
        "{steady_updates} updates at 10/s on {TOPICS} topics in {secs:.1} s (at most {most}, \
         {steady_statuses} statuses); {published} published"
    );
    assert!(
        subs[0].v.merged > 0,
        "the cap never merged: {published} published"
    );
    assert!(
        metric(&server, "tickcast_conflated_updates_total") > 0.0,
        "nothing was held back"
    );
}

/// The next update of `topic` on `c`, other events passed over; None
/// after 3 s without one.
fn next_update(c: &mut Client, topic: &str) -> Option<serde_json::Value> {
    loop {
        let ev = c.try_next_event(Duration::from_millis(3_000))?;
        if ev["event"] == "update" && ev["topic"] == topic {
            return Some(ev);
        }
    }
}

/// A connection that got a topic's updates by other means (no cap, or its
/// own pacing) joins a group that holds some of them back: the group's
/// release must not give it those again, nor count them in `conflated`.
/// Found by the randomized test above (a connection back to one rate after
/// its own pacing got `seq` 117, then 120 "conflated 119").
#[test]
fn joining_a_group_that_holds_updates_already_given_sends_them_not_again() {
    // One shard: the group and the joining connection meet there.
    let server = Server::start(config().shards(1)).unwrap();
    let addr = server.local_addr();
    let p = server.publisher();
    let mut capped = Client::connect(addr);
    capped.command(json!({"op":"subscribe","topics":["G"],"max_rate":0.5}));
    let mut free = Client::connect(addr);
    free.subscribe(&["G"]);
    let publish = |v: f64| p.publish(Update::new("G").bid(v)).unwrap();
    publish(1.0);
    let first = next_update(&mut free, "G").expect("seq 1 to the uncapped one");
    assert_eq!(first["seq"], 1);
    assert_eq!(
        next_update(&mut capped, "G").expect("its slot was free")["seq"],
        1
    );
    // The group holds 2 and 3 back (its slot is 2 s); the uncapped one gets
    // them at once.
    publish(2.0);
    publish(3.0);
    for want in [2, 3] {
        assert_eq!(next_update(&mut free, "G").expect("uncapped")["seq"], want);
    }
    // Now it asks the group's rate: it joins the group holding 2..3.
    free.command(json!({"op":"subscribe","topics":["G"],"max_rate":0.5}));
    publish(4.0);
    let held = next_update(&mut capped, "G").expect("the group's slot");
    assert_eq!(
        (held["seq"].as_u64(), held["conflated"].as_u64()),
        (Some(4), Some(3))
    );
    let got = next_update(&mut free, "G").expect("4 at the group's slot");
    assert_eq!(
        (got["seq"].as_u64(), got["conflated"].as_u64().unwrap_or(1)),
        (Some(4), 1),
        "it had 3 already: {got}"
    );
}
