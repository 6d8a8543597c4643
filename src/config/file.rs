//! The TOML form of [`Config`]: the one mirror of it, read by tickcastd's
//! config file, by the C ABI's `tickcast_config_load_toml` and by
//! [`Config::from_toml`]. Each key is declared once below, with the `Config`
//! field it sets, so the three cannot drift apart. Unknown keys are errors: a
//! typo in a limit must not silently leave the default in force. Ranges and
//! consistency are checked by [`Config::validate`], not here.

use super::Config;
use crate::error::ConfigError;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Declares a TOML section: a struct of optional keys, and `apply`, which
/// sets on a `Config` the field behind each key that is present.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$doc:meta])* $key:ident: $ty:ty => |$c:ident, $v:ident| $set:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$doc])* pub $key: Option<$ty>, )*
        }

        impl $name {
            /// Sets every key that is present on `config`.
            pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
                $(
                    if let Some($v) = self.$key.clone() {
                        let $c = &mut *config;
                        $set;
                    }
                )*
                Ok(())
            }
        }
    };
}

section! {
    /// `[limits]`: per-connection and per-server limits.
    Limits {
        /// Most open connections.
        max_connections: usize => |c, v| c.max_connections = v;
        /// Most subscriptions per connection.
        max_subscriptions: usize => |c, v| c.max_subscriptions = v;
        /// Most topics and patterns in one subscribe or unsubscribe.
        max_topics_per_command: usize => |c, v| c.max_topics_per_command = v;
        /// Most topics the server holds a value for.
        max_topics: usize => |c, v| c.max_topics = v;
        /// Memory all connections' queues may hold together.
        max_total_outbound_bytes: usize => |c, v| c.max_total_outbound_bytes = v;
        /// Largest client message, bytes.
        max_message_size: usize => |c, v| c.max_message_size = v;
        /// Largest HTTP request head, bytes.
        max_handshake_bytes: usize => |c, v| c.max_handshake_bytes = v;
        /// Handshake deadline, milliseconds.
        handshake_timeout_ms: u64 => |c, v| c.handshake_timeout = Duration::from_millis(v);
        /// Outbound bytes per connection past which updates are conflated.
        conflate_bytes: usize => |c, v| c.conflate_bytes = v;
        /// Hard limit of a connection's outbound queue.
        max_outbound_bytes: usize => |c, v| c.max_outbound_bytes = v;
        /// Kernel send buffer per client socket (0: the kernel's choice).
        socket_send_buffer: usize => |c, v| c.socket_send_buffer = v;
        /// How long a connection may stay over the hard limit, milliseconds.
        slow_consumer_timeout_ms: u64 => |c, v| c.slow_consumer_timeout = Duration::from_millis(v);
        /// Longest topic name, bytes.
        max_topic_len: usize => |c, v| c.max_topic_len = v;
        /// Ping a silent connection after this long, milliseconds.
        ping_interval_ms: u64 => |c, v| c.ping_interval = Duration::from_millis(v);
        /// Close a connection silent for this long, milliseconds.
        idle_timeout_ms: u64 => |c, v| c.idle_timeout = Duration::from_millis(v);
        /// Updates kept per topic for resume (0: none).
        history_len: usize => |c, v| c.history_len = v;
        /// Memory budget of all topics' histories, bytes.
        history_bytes: usize => |c, v| c.history_bytes = v;
        /// Mark a topic stale after this long without an update, milliseconds.
        stale_after_ms: u64 => |c, v| c.stale_after = Some(Duration::from_millis(v));
        /// Most events per second per topic per subscription, and the default rate.
        max_rate: f64 => |c, v| c.max_rate = Some(v);
        /// Trades a trade topic's snapshot lists.
        trades_snapshot: usize => |c, v| c.trades_snapshot = v;
        /// Bytes per second each subscriber may be sent (0: no limit).
        max_bytes_per_sec: u64 => |c, v| c.max_bytes_per_sec = v;
        /// Commands per second per connection (a token bucket; 0: no limit).
        max_commands_per_sec: f64 => |c, v| c.max_commands_per_sec = v;
    }
}

section! {
    /// `[auth]`: who may subscribe and publish.
    Auth {
        /// Tokens subscribers must present on `/ws`; empty or absent: open.
        subscriber_tokens: Vec<String> => |c, v| c.subscriber_tokens = v;
        /// Tokens that may publish on `/publish`; empty or absent: publishing off.
        publisher_tokens: Vec<String> => |c, v| c.publisher_tokens = v;
        /// Browser origins allowed to connect; empty or absent: any.
        allowed_origins: Vec<String> => |c, v| c.allowed_origins = v;
        /// Tokens of the operator endpoints (/admin/…); empty or absent: off.
        admin_tokens: Vec<String> => |c, v| c.admin_tokens = v;
        /// /metrics requires an admin token.
        protect_metrics: bool => |c, v| c.protect_metrics = v;
        /// File holding the shared secret of HS256/384/512 JWTs.
        jwt_hmac_secret_file: PathBuf => |c, v| c.jwt_hmac_secret_file = Some(v);
        /// PEM public key (Ed25519, EC or RSA) of asymmetric JWTs.
        jwt_public_key_file: PathBuf => |c, v| c.jwt_public_key_file = Some(v);
        /// How long a connection may stay after its JWT expires, milliseconds.
        expiry_grace_ms: u64 => |c, v| c.expiry_grace = Duration::from_millis(v);
    }
}

section! {
    /// `[tls]`: `wss://`.
    Tls {
        /// Address of the TLS listener.
        listen: String => |c, v| c.tls_listen = Some(parse_addr("tls.listen", &v)?);
        /// PEM certificate chain file.
        cert: PathBuf => |c, v| c.tls_cert = Some(v);
        /// PEM private key file.
        key: PathBuf => |c, v| c.tls_key = Some(v);
        /// Serve only `wss://`: no plain listener.
        only: bool => |c, v| c.plain = !v;
    }
}

section! {
    /// `[compression]`: permessage-deflate (RFC 7692).
    Compression {
        /// Accept clients' permessage-deflate offers.
        permessage_deflate: bool => |c, v| c.permessage_deflate = v;
        /// Shortest event frame sent compressed, bytes.
        min_bytes: usize => |c, v| c.deflate_min_bytes = v;
        /// A compression window per connection, for clients that allow it.
        per_connection: bool => |c, v| c.deflate_per_connection = v;
        /// Memory all per-connection windows may take, bytes.
        per_connection_memory: usize => |c, v| c.deflate_context_memory = v;
    }
}

section! {
    /// `[fields]`: the server's extra numeric fields.
    Fields {
        /// Their names, in index order (the C ABI's index).
        extra: Vec<String> => |c, v| c.extra_fields = v;
    }
}

section! {
    /// `[cluster]`: cluster mode on Redis (docs/CLUSTER.md).
    Cluster {
        /// `redis://HOST:PORT` (optionally `/DB`), `rediss://` for TLS, or
        /// `redis+cluster://`/`rediss+cluster://` seeds: turns cluster mode on.
        redis: String => |c, v| c.redis = Some(v);
        /// PEM certificate(s) of the authority a `rediss://` Redis's
        /// certificate must chain to (default: the system's roots).
        redis_ca_file: PathBuf => |c, v| c.redis_ca_file = Some(v);
    }
}

/// `[demo]`: the daemon's simulated feed (not a server setting).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    /// Run the simulated feed.
    pub enabled: Option<bool>,
    /// Updates per second across all demo instruments.
    pub rate: Option<u32>,
}

section! {
    /// The whole file, every key optional. See `docs/OPERATIONS.md` and
    /// `tickcastd.example.toml`.
    FileConfig {
        /// `host:port` to listen on.
        listen: String => |c, v| c.listen = parse_addr("listen", &v)?;
        /// Shard threads.
        shards: usize => |c, v| c.shards = v;
        /// Router threads (a topic belongs to one).
        routers: usize => |c, v| c.routers = v;
        /// Capacity of the ingest channel.
        ingest_capacity: usize => |c, v| c.ingest_capacity = v;
        /// Per-connection and per-server limits.
        limits: Limits => |c, v| v.apply(c)?;
        /// Who may subscribe and publish.
        auth: Auth => |c, v| v.apply(c)?;
        /// `wss://`.
        tls: Tls => |c, v| v.apply(c)?;
        /// Cluster mode.
        cluster: Cluster => |c, v| v.apply(c)?;
        /// Extra numeric fields.
        fields: Fields => |c, v| v.apply(c)?;
        /// permessage-deflate.
        compression: Compression => |c, v| v.apply(c)?;
        /// `error`, `warn`, `info`, `debug` or `trace`.
        log_level: String => |c, v| c.log_level = Some(parse_log_level(&v)?);
        /// The daemon's simulated feed, not a server setting.
        demo: Demo => |_c, v| daemon_only(&v);
    }
}

impl FileConfig {
    /// Parses the TOML text of a config file; the error names the key and line.
    pub fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: None,
            why: plain_words(&e.to_string()),
        })
    }
}

/// The TOML parser names Rust types (`expected usize`); an operator reads
/// what to write instead.
fn plain_words(why: &str) -> String {
    const TYPES: &[(&str, &str)] = &[
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 or more)"),
        ("expected u8", "expected a whole number (0 or more)"),
        ("expected f64", "expected a number"),
        (
            "expected a sequence",
            "expected a list, like [\"a\", \"b\"]",
        ),
    ];
    TYPES
        .iter()
        .fold(why.to_string(), |w, (rust, plain)| w.replace(rust, plain))
}

/// Parses `host:port` (a name is resolved).
pub(crate) fn parse_addr(key: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ConfigError::BadAddress {
            key,
            value: s.to_string(),
        })
}

/// A `log_level` value.
pub(crate) fn parse_log_level(v: &str) -> Result<log::LevelFilter, ConfigError> {
    v.parse()
        .map_err(|_| ConfigError::BadLogLevel(v.to_string()))
}

/// Keys of the daemon (its demo feed): read by `tickcastd`, not
/// server settings, so applying them to a `Config` does nothing.
fn daemon_only<T>(_value: &T) {}
