//! Real `redis-server` processes for the cluster tests: each on a free
//! loopback port with its own temporary directory, killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a Redis that keeps its data across a restart (append-only
    /// file, fsync on every write) in a fresh directory.
    pub fn start() -> RedisServer {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_on(free_port(), extra)
    }

    /// A Redis that speaks only TLS on its port, with `cert` and `key`
    /// (PEM) and no client certificates asked for.
    pub fn start_tls(cert: &Path, key: &Path) -> RedisServer {
        Self::start_tls_with(cert, key, &[])
    }

    /// `start_tls` with more arguments.
    pub fn start_tls_with(cert: &Path, key: &Path, extra: &[&str]) -> RedisServer {
        let port = free_port();
        let (port_s, cert, key) = (port.to_string(), cert.display(), key.display());
        let (cert, key) = (cert.to_string(), key.to_string());
        // `--port 0` after the plain port given by `spawn`: the last wins.
        let mut args = vec!["--port", "0", "--tls-port", &port_s];
        args.extend(["--tls-cert-file", &cert, "--tls-key-file", &key]);
        args.extend(["--tls-auth-clients", "no"]);
        args.extend_from_slice(extra);
        Self::start_on(port, &args)
    }

    fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        super::require_tool("redis-server", "--version", "redis-server");
        let dir =
            std::env::temp_dir().join(format!("tickcast-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = RedisServer {
            child: None,
            port,
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no chance to save anything more).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again on the same port with nothing kept.
    pub fn restart_empty(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).unwrap();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas), made by the test with
/// `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

const CLUSTER_ARGS: [&str; 6] = [
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    "2000",
    "--appendonly",
    "no",
];

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes = (0..3)
            .map(|_| {
                // The bus port defaults to the port + 10000, past 65535
                // for a port above 55535 (and then Redis does not start):
                // each node gets a free one of its own.
                let bus = free_port().to_string();
                let mut args = CLUSTER_ARGS.to_vec();
                args.extend(["--cluster-port", &bus]);
                RedisServer::start_with(&args)
            })
            .collect();
        Self::create(nodes, &[])
    }

    /// Three masters that speak only TLS, to clients and to each other,
    /// with `cert` and `key`; `ca` is what redis-cli trusts to set it up.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> RedisCluster {
        let ca = ca.display().to_string();
        let mut args = CLUSTER_ARGS.to_vec();
        args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        args.extend(["--tls-ca-cert-file", &ca]);
        let nodes = (0..3)
            .map(|_| {
                // The bus port is the plain port + 10000 by default, and the
                // plain port is off: each node gets one of its own.
                let bus = free_port().to_string();
                let mut args = args.clone();
                args.extend(["--cluster-port", &bus]);
                RedisServer::start_tls_with(cert, key, &args)
            })
            .collect();
        Self::create(nodes, &["--tls", "--cacert", &ca])
    }

    /// Joins `nodes` into one cluster (all slots over three masters) with
    /// redis-cli, which gets `cli` first (its TLS options).
    fn create(nodes: Vec<RedisServer>, cli: &[&str]) -> RedisCluster {
        super::require_tool("redis-cli", "--version", "redis-tools");
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every node must know every slot before clients come.
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(cli)
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not come up");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// The `redis` setting for it: its nodes as seeds.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// How many keys each master holds.
    pub fn keys_per_node(&self) -> Vec<u64> {
        self.keys_per_node_with(&[])
    }

    /// `keys_per_node`, redis-cli getting `cli` first (TLS options).
    pub fn keys_per_node_with(&self, cli: &[&str]) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| {
                let out = Command::new("redis-cli")
                    .args(cli)
                    .args(["-p", &n.port.to_string(), "dbsize"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            })
            .collect()
    }
}
