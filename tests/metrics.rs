//! `/metrics` is valid Prometheus text (checked by the reference parser,
//! prometheus_client) and its counters move with traffic; `/healthz` says 200
//! while serving and 503 while shutting down.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tickcast::{Server, Update};

/// A Python with prometheus_client: the system one if it has it, otherwise a
/// virtualenv under target/ made once (the registries are reachable here).
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let has = |py: &PathBuf| {
            Command::new(py)
                .args(["-c", "import prometheus_client"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let system = PathBuf::from("python3");
        require_tool(
            "python3",
            "--version",
            "sudo apt-get install -y python3 python3-venv",
        );
        if has(&system) {
            return system;
        }
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv");
        let py = venv.join("bin/python");
        if !has(&py) {
            let ok = Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()
                .unwrap()
                .success()
                && Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "prometheus-client==0.26.0",
                    ])
                    .status()
                    .unwrap()
                    .success();
            assert!(
                ok,
                "could not install prometheus-client into {}",
                venv.display()
            );
        }
        py
    })
    .clone()
}

/// Scrapes `/metrics` over HTTP and parses it with prometheus_client.
fn scrape(server: &Server) -> Value {
    let resp = http_raw(
        server.local_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/metrics_parse.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition:\n{}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sample(m: &Value, key: &str) -> f64 {
    m["samples"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no sample {key} in {m}"))
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let server = server();
    let before = scrape(&server);
    assert_eq!(before["types"]["tickcast_connections_accepted"], "counter");
    assert_eq!(
        before["types"]["tickcast_delivery_latency_seconds"],
        "histogram"
    );
    assert_eq!(sample(&before, "tickcast_updates_ingested_total"), 0.0);

    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(server.local_addr()))
        .collect();
    for c in clients.iter_mut() {
        c.subscribe(&["M.A", "M.*"]);
    }
    let p = server.publisher();
    for i in 0..50 {
        p.publish(Update::new("M.A").bid(i as f64)).unwrap();
    }
    for c in clients.iter_mut() {
        for _ in 0..50 {
            c.next_event();
        }
    }
    let mid = scrape(&server);
    assert_eq!(sample(&mid, "tickcast_updates_ingested_total"), 50.0);
    assert_eq!(sample(&mid, "tickcast_frames_delivered_total"), 150.0);
    assert_eq!(sample(&mid, "tickcast_subscriptions"), 6.0);
    assert_eq!(sample(&mid, "tickcast_topics"), 1.0);
    // One membership per subscriber of M.A however many of its
    // subscriptions cover it; the memory estimate counts them.
    assert_eq!(sample(&mid, "tickcast_index_memberships"), 3.0);
    let part = |m: &Value, p: &str| {
        sample(
            m,
            &format!("tickcast_memory_estimated_bytes{{part=\"{p}\"}}"),
        )
    };
    assert!(part(&mid, "index") >= 3.0 * 16.0);
    assert!(part(&mid, "connections") >= 3.0 * 1024.0);
    assert!(part(&mid, "topics") > 0.0);
    // Three subscribers open, and each scrape is a connection too.
    assert!(sample(&mid, "tickcast_connections") >= 3.0);
    assert!(sample(&mid, "tickcast_connections_accepted_total") >= 4.0);
    assert!(sample(&mid, "tickcast_bytes_written_total") > 150.0 * 40.0);
    let writes = sample(&mid, "tickcast_socket_writes_total");
    assert!(
        writes > 0.0 && writes <= 150.0 + 20.0,
        "batched writes: {writes}"
    );
    let count = sample(&mid, "tickcast_delivery_latency_seconds_count");
    assert!(count > 0.0, "latency observed");
    assert_eq!(
        sample(
            &mid,
            "tickcast_delivery_latency_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );

    drop(clients.pop());
    wait_until("a close is counted", || {
        sample(
            &scrape(&server),
            "tickcast_connections_closed_total{reason=\"client\"}",
        ) >= 1.0
    });
    wait_until("the gone subscriber's membership is withdrawn", || {
        sample(&scrape(&server), "tickcast_index_memberships") == 2.0
    });
    let after = scrape(&server);
    assert_eq!(sample(&after, "tickcast_subscriptions"), 4.0);
    assert!(part(&after, "index") < part(&mid, "index"));
    assert!(sample(&after, "tickcast_connections_closed_total{reason=\"http\"}") >= 3.0);
}

#[test]
fn healthz_is_200_while_serving_and_503_while_shutting_down() {
    let server = server();
    let addr = server.local_addr();
    assert!(http_raw(addr, b"GET /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    // A subscriber that never answers the close keeps the server draining
    // for its close deadline (2 s), long enough to probe /healthz.
    let stuck = std::net::TcpStream::connect(addr).unwrap();
    (&stuck)
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
    // Wait for the 101: a connection still in its handshake when shutdown
    // begins is dropped at once, and the server would not drain at all.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while !head.ends_with(b"\r\n\r\n") {
        (&stuck).read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    let stopper = std::thread::spawn(move || server.shutdown());
    let mut saw_503 = false;
    for _ in 0..100 {
        let resp = http_raw(addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        if resp.starts_with("HTTP/1.1 503") {
            saw_503 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_503, "/healthz never said 503 during shutdown");
    let resp = http_raw(
        addr,
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 503"),
        "no new upgrades while draining: {resp}"
    );
    stopper.join().unwrap();
    drop(stuck);
}
