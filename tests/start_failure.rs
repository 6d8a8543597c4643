//! A server whose start fails part-way leaves nothing behind: the threads it
//! had started are stopped and joined, and its port is free again.
//! (Its own test binary: it counts the process's threads by name.)

use std::net::{SocketAddr, TcpListener};
use tickcast::faults::{arm, Fault};
use tickcast::{Config, Server};

/// Threads of this process whose name starts with `tickcast-`.
fn tickcast_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            if name.starts_with("tickcast-") {
                names.push(name.trim().to_string());
            }
        }
    }
    names
}

#[test]
fn a_start_that_fails_after_its_shards_started_stops_them_and_frees_the_port() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(tickcast_threads().is_empty());
    arm(Fault::Start);
    let err = Server::start(Config::default().listen(addr).shards(2))
        .err()
        .expect("the injected fault fails the start");
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(
        tickcast_threads(),
        Vec::<String>::new(),
        "every started thread joined"
    );
    TcpListener::bind(addr).expect("the port is free again");
    // And the next start works: nothing half-made was left in the way.
    let server = Server::start(Config::default().listen(addr).shards(2)).unwrap();
    assert_eq!(server.local_addr(), addr);
    // A thread names itself once it runs: give them a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while tickcast_threads().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(tickcast_threads().len() >= 4, "2 shards, router, interest");
    server.shutdown();
}
