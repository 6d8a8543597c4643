//! A panic in a shard's loop, outside any connection's handling, in an
//! embedded server: `Server::failed` says so and `/healthz` answers 503
//! (tickcastd's exit on it is in tests/faults.rs). Its own test binary:
//! the injected fault is process-wide and would hit any other server.

mod common;

use common::*;
use tickcast::faults::{self, Fault};

#[test]
fn a_dead_shard_fails_healthz_instead_of_hanging_silently() {
    let server = server();
    let addr = server.local_addr();
    let health = http_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(!server.failed());

    faults::arm(Fault::ShardLoop);
    // Shard 1's loop turns on any event; a few connections make some.
    wait_until("shard 1 dies and the server says failed", || {
        let _ = std::net::TcpStream::connect(addr);
        server.failed()
    });
    // Shard 0 answers, and connections meant for shard 1 are served there.
    for _ in 0..4 {
        let health = http_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        assert!(health.contains("failed"), "{health}");
    }
}
