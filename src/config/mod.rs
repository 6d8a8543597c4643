//! Server configuration: every limit and size in one place, each with its
//! default, checked once by [`Config::validate`]. Its TOML form, shared by
//! the daemon and the C ABI, is [`file::FileConfig`].

pub mod file;
mod machine;
mod setters;
pub mod source;
mod validate;

pub(crate) use validate::read_redis_ca;

use crate::error::Result;
use file::FileConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Most shards a server can run: interest in a topic is one bit per shard in a `u64`.
pub const MAX_SHARDS: usize = 64;

/// Configuration of an embedded server. Start from [`Config::default`] and
/// change what you need with the builder methods.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (see `Server::local_addr`).
    /// Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Number of shard threads (event loops). Default: number of cores; 1..=64.
    pub shards: usize,
    /// Router threads: each sequences, merges, keeps and encodes the topics
    /// that hash to it (a topic belongs to exactly one, so its order and
    /// numbering are as with one). Default: 2, or one per 4 cores on more
    /// than 8 (1 on a single core), or the environment's `TICKCAST_ROUTERS`
    /// when set; 1..=16. Measured on 2 cores with 1,000 rate-capped
    /// subscribers, 2 routers take in 20–30% more than 1 (BENCHMARKS.md).
    pub routers: usize,
    /// Capacity of the bounded ingest channel, in updates. `publish` blocks and
    /// `try_publish` fails with `Full` when it is full. Default 65,536.
    pub ingest_capacity: usize,
    /// Most updates the router takes from the ingest channel before it encodes
    /// and hands a batch to the shards. Default 1,024.
    pub router_batch: usize,
    /// Longest topic name in bytes. Default 64.
    pub max_topic_len: usize,
    /// Most subscriptions (exact topics plus wildcard patterns) per connection. Default 1,024.
    pub max_subscriptions: usize,
    /// Most topics and patterns one `subscribe` or `unsubscribe` may list
    /// (and entries in its `since`), checked before any other work: bigger
    /// commands get the error `too_many_topics`. Default 1,024.
    pub max_topics_per_command: usize,
    /// Most topics the server holds a value for. A publish that would make
    /// one more is refused (`TooManyTopics`, C `TICKCAST_TOO_MANY_TOPICS`,
    /// `/publish` error `too_many_topics`); clearing a topic frees its place.
    /// Default 100,000.
    pub max_topics: usize,
    /// Memory all connections' queues may hold together: outbound bytes,
    /// held-back (conflated, rate-capped) updates and snapshots still owed.
    /// Past it the connections that hold the most are closed with 1008
    /// until the total is back under it. Default: a quarter of the memory the process may use
    /// (physical, or the cgroup limit), between 256 MiB and 16 GiB.
    pub max_total_outbound_bytes: usize,
    /// Largest client message (and frame) in bytes; bigger ones close the
    /// connection with 1009. Default 64 KiB.
    pub max_message_size: usize,
    /// Largest HTTP request head before the upgrade; bigger ones get 431. Default 8 KiB.
    pub max_handshake_bytes: usize,
    /// Time a client has to complete the HTTP upgrade. Default 10 s.
    pub handshake_timeout: Duration,
    /// Most open connections across all shards; more get HTTP 503. Default 100,000.
    pub max_connections: usize,
    /// Outbound bytes queued for one connection past which new updates are
    /// conflated (only the newest per topic is kept until the queue drains).
    /// Default 256 KiB.
    pub conflate_bytes: usize,
    /// Hard limit of a connection's outbound queue. A connection over it for
    /// `slow_consumer_timeout` is closed with 1008 (at twice the limit, at
    /// once). Conflation keeps ordinary slow consumers far below it. Default 8 MiB.
    pub max_outbound_bytes: usize,
    /// The kernel send buffer of each client socket (SO_SNDBUF), in bytes;
    /// 0 leaves it to the kernel, which grows it up to `net.ipv4.tcp_wmem`'s
    /// maximum (4 MiB on most systems) for a client that does not read. That
    /// memory is outside the process and outside `max_outbound_bytes`: cap
    /// it when many slow clients are expected. Default 0.
    pub socket_send_buffer: usize,
    /// How long a connection may stay over `max_outbound_bytes`. Default 10 s.
    pub slow_consumer_timeout: Duration,
    /// The most one `read` takes from a subscriber (default 4096; `/publish`: 64 KiB
    /// or more). Kept only while a frame is incomplete: idle connections keep none.
    pub read_buffer_size: usize,
    /// Accept permessage-deflate offers (RFC 7692; browsers make them). Default true.
    pub permessage_deflate: bool,
    /// Shorter frames go plain: compressed alone, a short event saves too
    /// little to pay for the work. Default 256.
    pub deflate_min_bytes: usize,
    /// Per-connection compression (a window per connection, about 272 KiB
    /// and CPU per event each) for clients that allow it. Default false.
    pub deflate_per_connection: bool,
    /// Memory all per-connection contexts may take; past it, connections
    /// get the shared mode. Default 64 MiB.
    pub deflate_context_memory: usize,
    /// Bytes per second each subscriber may be sent (0: no limit); updates
    /// beyond it are merged, as conflation does. Default 0.
    pub max_bytes_per_sec: u64,
    /// How long a closing connection may take to flush its close frame. Default 2 s.
    pub close_timeout: Duration,
    /// Transport test mode: every message a client sends on `/ws` is echoed
    /// back instead of parsed as a command (examples/echo_server.rs, for RFC
    /// 6455 conformance suites). Default false.
    pub echo: bool,
    /// PEM certificate chain for `wss://`; with `tls_key` and `tls_listen`, turns TLS on.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for `wss://`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Address of the TLS listener (beside the plain one). Port 0 picks one.
    pub tls_listen: Option<SocketAddr>,
    /// Serve plain `ws://` on `listen`. Off: only the TLS listener, so nothing
    /// is ever sent in clear text (needs TLS). Default true.
    pub plain: bool,
    /// A connection that has sent nothing for this long is pinged. Default 20 s.
    pub ping_interval: Duration,
    /// A connection that has sent nothing (no data, no pong) for this long is
    /// closed with 1008. Default 60 s.
    pub idle_timeout: Duration,
    /// Browser `Origin`s allowed to upgrade (e.g. `https://dash.example.com`).
    /// Empty: any. Requests without an `Origin` (non-browser clients) are
    /// always allowed. Default: empty.
    pub allowed_origins: Vec<String>,
    /// When not empty, subscribers must present one of these tokens on `/ws`
    /// (`Authorization: Bearer <token>` or `?token=`). Default: none, open.
    pub subscriber_tokens: Vec<String>,
    /// Tokens that may publish over the network on `/publish`. Default: none,
    /// which turns network publishing off (unless JWTs are on).
    pub publisher_tokens: Vec<String>,
    /// Tokens that open the operator endpoints (`/admin/…`). Default: none,
    /// which turns them off.
    pub admin_tokens: Vec<String>,
    /// `/metrics` requires an admin token too. Default: false.
    pub protect_metrics: bool,
    /// A file holding the shared secret JWTs are signed with (HS256/384/512).
    /// With this or `jwt_public_key_file` set, JWTs are accepted beside the
    /// static tokens, and `/ws` requires a token. Default: none.
    pub jwt_hmac_secret_file: Option<PathBuf>,
    /// A PEM public key (Ed25519, EC P-256/P-384 or RSA) JWTs are verified
    /// with (EdDSA, ES256/384, RS/PS 256/384/512). Default: none.
    pub jwt_public_key_file: Option<PathBuf>,
    /// How long a connection stays open after its JWT's `exp`, having been
    /// sent `{"event":"expired"}`, before it is closed with 1008 (unless it
    /// presents a fresh token with `auth`). Default 5 s.
    pub expiry_grace: Duration,
    /// Commands per second a connection may send (a token bucket holding
    /// one second's worth); over it, `rate_limited`, and a connection that
    /// keeps sending while refused is closed with 1008. 0: no limit.
    /// Default 200.
    pub max_commands_per_sec: f64,
    /// Updates kept per topic for clients that resume with `since`; 0 keeps
    /// none. Default 256.
    pub history_len: usize,
    /// Memory all topics' histories may use together; past it the oldest
    /// entries (of any topic) go first. Default 64 MiB.
    pub history_bytes: usize,
    /// A topic with no update for this long is marked stale (per topic, a
    /// publisher may set its own). Default: off.
    pub stale_after: Option<Duration>,
    /// Most events per second per topic a subscription may ask for with
    /// `max_rate`, and the rate of those that do not ask. Default: none
    /// (every update).
    pub max_rate: Option<f64>,
    /// The most verbose level logged (`log::set_max_level`), applied at
    /// start and at every reload; the file's `log_level`. Default: none,
    /// the level is the application's business.
    pub log_level: Option<log::LevelFilter>,
    /// Trades a trade topic's snapshot lists (a topic named `….trades`:
    /// every update is one trade, delivered, never merged). Default 50.
    pub trades_snapshot: usize,
    /// Named numeric fields beyond the seven price fields (`[fields]
    /// extra`, at most 8: e.g. `open_interest`, `iv`, `delta`), carried
    /// and merged like them and sent by name. Default: none.
    pub extra_fields: Vec<String>,
    /// Cluster mode: `redis://HOST:PORT` of the Redis that numbers, keeps
    /// and spreads every topic's updates between tickcast nodes
    /// (docs/CLUSTER.md). Default: none, a single node without Redis.
    pub redis: Option<String>,
    /// Cluster mode over TLS (`rediss://`): the CA file Redis's certificate
    /// must chain to. Default: none, the system's roots.
    pub redis_ca_file: Option<PathBuf>,
}

/// Most router threads.
pub const MAX_ROUTERS: usize = 16;

/// 2 routers, one per 4 cores on bigger machines, 1 on a single core; or
/// `TICKCAST_ROUTERS` (how the test suite runs with 1 and with 4).
fn default_routers() -> usize {
    if let Some(n) = std::env::var("TICKCAST_ROUTERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match cores {
        1 => 1,
        n => (n / 4).clamp(2, MAX_ROUTERS),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(MAX_SHARDS),
            routers: default_routers(),
            ingest_capacity: 65_536,
            router_batch: 1_024,
            max_topic_len: 64,
            max_subscriptions: 1_024,
            max_topics_per_command: 1_024,
            max_topics: 100_000,
            max_total_outbound_bytes: machine::default_total_outbound(),
            max_message_size: 64 * 1024,
            max_handshake_bytes: 8 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 100_000,
            conflate_bytes: 256 * 1024,
            max_outbound_bytes: 8 * 1024 * 1024,
            socket_send_buffer: 0,
            slow_consumer_timeout: Duration::from_secs(10),
            read_buffer_size: 4096,
            permessage_deflate: true,
            deflate_min_bytes: 256,
            deflate_per_connection: false,
            deflate_context_memory: 64 << 20,
            max_bytes_per_sec: 0,
            close_timeout: Duration::from_secs(2),
            subscriber_tokens: Vec::new(),
            publisher_tokens: Vec::new(),
            admin_tokens: Vec::new(),
            protect_metrics: false,
            jwt_hmac_secret_file: None,
            jwt_public_key_file: None,
            expiry_grace: Duration::from_secs(5),
            max_commands_per_sec: 200.0,
            echo: false,
            tls_cert: None,
            tls_key: None,
            tls_listen: None,
            plain: true,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            allowed_origins: Vec::new(),
            history_len: 256,
            history_bytes: 64 * 1024 * 1024,
            stale_after: None,
            max_rate: None,
            log_level: None,
            trades_snapshot: 50,
            extra_fields: Vec::new(),
            redis: None,
            redis_ca_file: None,
        }
    }
}

impl Config {
    /// Reads the TOML of tickcastd's config file (docs/OPERATIONS.md) over
    /// the defaults, then validates. The daemon-only `[demo]` is accepted
    /// and ignored.
    pub fn from_toml(text: &str) -> Result<Config> {
        let mut c = Config::default();
        FileConfig::parse(text)?.apply(&mut c)?;
        c.validate()?;
        Ok(c)
    }
}
