//! Cluster mode over TLS (`rediss://`): two nodes share a topic through a
//! `redis-server` that speaks only TLS, trusting the authority in
//! `redis_ca_file`; without it (the system's roots) the link stays down and
//! says why; a bad CA file is refused by the config check.

mod common;

use common::redis::RedisServer;
use common::{wait_until, Client};
use std::time::Duration;
use tickcast::{Server, Update};

fn certificates(name: &str) -> tickcast::daemon::self_signed::SelfSigned {
    let dir =
        std::env::temp_dir().join(format!("tickcast-redis-tls-{name}-{}", std::process::id()));
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    tickcast::daemon::self_signed::make(&dir, &names).unwrap()
}

#[test]
fn two_nodes_share_a_topic_through_a_redis_that_speaks_only_tls() {
    let certs = certificates("ok");
    let redis = RedisServer::start_tls(&certs.cert, &certs.key);
    let url = format!("rediss://localhost:{}", redis.port);
    let cfg = || common::config().redis(url.clone()).redis_ca_file(&certs.ca);
    let a = Server::start(cfg()).unwrap();
    let b = Server::start(cfg()).unwrap();
    for s in [&a, &b] {
        wait_until("the node's link to Redis is up over TLS", || {
            s.metrics_text().contains("tickcast_cluster_up 1")
        });
    }
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["TLS.1"]);
    a.publisher()
        .publish(Update::new("TLS.1").bid(7.5))
        .unwrap();
    let ev = on_b.next_event();
    assert_eq!(
        (ev["event"].as_str(), ev["seq"].as_u64()),
        (Some("update"), Some(1)),
        "{ev}"
    );
    assert_eq!(ev["bid"], 7.5);
}

#[test]
fn without_the_ca_the_link_stays_down_and_a_bad_ca_file_is_refused() {
    let certs = certificates("untrusted");
    let redis = RedisServer::start_tls(&certs.cert, &certs.key);
    let url = format!("rediss://localhost:{}", redis.port);
    // The system's roots do not know the test's authority: the link stays
    // down, and once the queue for Redis is full publishers are told.
    let a = Server::start(common::config().redis(url.clone()).ingest_capacity(16)).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.metrics_text().contains("tickcast_cluster_up 0"));
    let p = a.publisher();
    let refused = (0..100).find_map(|i| p.try_publish(Update::new("TLS.2").bid(i as f64)).err());
    assert!(
        matches!(refused, Some(tickcast::Error::Unavailable)),
        "{refused:?}"
    );

    // A CA file that is not PEM, a missing one, and one without rediss://.
    let junk = std::env::temp_dir().join(format!("tickcast-junk-ca-{}", std::process::id()));
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = std::path::Path::new("/nonexistent/ca.pem");
    for (cfg, says) in [
        (
            common::config().redis(url.clone()).redis_ca_file(&junk),
            "no PEM certificate",
        ),
        (
            common::config().redis(url.clone()).redis_ca_file(missing),
            "/nonexistent/ca.pem",
        ),
        (
            common::config()
                .redis("redis://127.0.0.1:1")
                .redis_ca_file(&certs.ca),
            "only with a rediss:// redis URL",
        ),
    ] {
        let err = Server::start(cfg).err().expect("refused").to_string();
        assert!(err.contains(says), "{err}");
    }
}
