//! What a bug in tickcast costs (issue 22): a panic while one connection is
//! handled closes that connection alone with 1011; a panic in a shard's loop
//! fails `/healthz` and ends `tickcastd` with status 70 for its supervisor.
//! The panics are injected (`tickcast::faults`); each kind is armed in its
//! own process or test binary so no other test's server can hit it.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use tickcast::faults::{self, Fault, PANIC_TOPIC};
use tickcast::Update;
use tungstenite::protocol::frame::coding::CloseCode;

#[test]
fn a_panic_while_handling_one_connection_closes_it_with_1011_and_spares_the_rest() {
    let server = server();
    let addr = server.local_addr();
    let publisher = server.publisher();
    publisher.publish(Update::new("KEEP").last(1.0)).unwrap();
    wait_until("KEEP exists", || server.snapshot("KEEP").is_some());
    let mut keeper = Client::connect(addr);
    keeper.subscribe(&["KEEP"]);
    assert_eq!(keeper.next_event()["event"], "snapshot");

    faults::arm(Fault::Subscribe);
    let mut victim = Client::connect(addr);
    victim.send(serde_json::json!({"op": "subscribe", "id": 1, "topics": [PANIC_TOPIC]}));
    let (code, reason) = victim.expect_close();
    assert_eq!(code, CloseCode::Error, "{reason}");
    assert_eq!(reason, "internal error");
    wait_until("the close is counted", || {
        metric_labeled(
            &server,
            "tickcast_connections_closed_total",
            "internal_error",
        ) == 1.0
    });

    // The shard and its other connections go on, and health is unchanged.
    publisher.publish(Update::new("KEEP").last(2.0)).unwrap();
    let ev = keeper.next_event();
    assert_eq!(
        (ev["event"].as_str(), ev["seq"].as_u64()),
        (Some("update"), Some(2))
    );
    assert!(!server.failed());
    let health = http_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let mut again = Client::connect(addr);
    again.subscribe(&["KEEP"]);
    assert_eq!(again.next_event()["seq"], 2);
}

#[test]
fn a_panic_in_a_shard_loop_fails_healthz_and_ends_tickcastd_with_status_70() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcastd"));
    cmd.args(["--listen", "127.0.0.1:0", "--shards", "2"])
        .env("TICKCAST_FAULT", "shard_loop");
    let mut d = Daemon::spawn_command(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "tickcastd did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(70));
    let log = d.rest_of_log().join("\n");
    assert!(log.contains("the shard 1 thread died of a bug"), "{log}");
    assert!(log.contains("exiting with status 70"), "{log}");
}
