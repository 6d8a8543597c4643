//! Cluster mode over TLS (`rediss://`): two nodes share a topic through a
//! `redis-server` that speaks only TLS, trusting the authority in
//! `redis_ca_file`; without it (the system's roots) the link stays down and
//! says why; a bad CA file is refused by the config check.

mod common;

use common::redis::RedisServer;
use common::{wait_until, Client};
use std::path::PathBuf;
use std::time::Duration;
use tickcast::{Server, Update};

fn certificates(name: &str) -> tickcast::daemon::self_signed::SelfSigned {
    let dir =
        std::env::temp_dir().join(format!("tickcast-redis-tls-{name}-{}", std::process::id()));
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    tickcast::daemon::self_signed::make(&dir, &names).unwrap()
}

/// Two nodes on `url`, trusting `ca`, once both links to Redis are up.
fn two_nodes(url: &str, ca: &std::path::Path) -> (Server, Server) {
    let cfg = || common::config().redis(url).redis_ca_file(ca);
    let (a, b) = (Server::start(cfg()).unwrap(), Server::start(cfg()).unwrap());
    for s in [&a, &b] {
        wait_until("the node's link to Redis is up over TLS", || {
            s.metrics_text().contains("tickcast_cluster_up 1")
        });
    }
    (a, b)
}

#[test]
fn two_nodes_share_a_topic_through_a_redis_that_speaks_only_tls() {
    let certs = certificates("ok");
    let redis = RedisServer::start_tls(&certs.cert, &certs.key);
    let url = format!("rediss://localhost:{}", redis.port);
    let (a, b) = two_nodes(&url, &certs.ca);
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

/// An authority and a certificate for localhost and 127.0.0.1 good for
/// both ends of a connection: a Redis Cluster's nodes present theirs as
/// clients too, on the cluster bus (the daemon's throwaway certificate is
/// for servers only).
fn bus_certificates() -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, IsCa};
    let dir = std::env::temp_dir().join(format!("tickcast-redis-bus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf named like its issuer looks self-signed.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tickcast test Redis CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.extended_key_usages = vec![Eku::ServerAuth, Eku::ClientAuth];
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn two_nodes_share_topics_through_a_three_master_redis_cluster_over_tls() {
    let (ca, cert, key) = bus_certificates();
    let cluster = common::redis::RedisCluster::start_tls(&cert, &key, &ca);
    let seeds: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("localhost:{}", n.port))
        .collect();
    let url = format!("rediss+cluster://{}", seeds.join(","));
    let (a, b) = two_nodes(&url, &ca);
    let mut on_b = Client::connect(b.local_addr());
    on_b.subscribe(&["TC.*"]);
    let p = a.publisher();
    for t in 0..30 {
        p.publish(Update::new(format!("TC.{t}")).bid(t as f64))
            .unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 30 {
        let ev = on_b.next_event();
        assert_eq!(ev["seq"], 1, "{ev}");
        seen.insert(ev["topic"].as_str().unwrap().to_string());
    }
    // 30 topics over 32 partitions land on every master.
    let keys = cluster.keys_per_node_with(&["--tls", "--cacert", &ca.display().to_string()]);
    assert!(keys.iter().all(|k| *k > 0), "keys per master: {keys:?}");
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
