//! The daemon's configuration: a TOML file overlaid by command-line flags.
//!
//! Kept in the library (not the binary) so the merge rules and the refusal of
//! bad files are unit-tested. Unknown keys are errors: a typo in a limit must not
//! silently leave the default in force.

use crate::config::Config;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The TOML file, every key optional. See `docs/OPERATIONS.md` and
/// `tickcastd.example.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Shard threads.
    pub shards: Option<usize>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: Option<String>,
    /// Capacity of the ingest channel.
    pub ingest_capacity: Option<usize>,
    /// Per-connection and per-server limits.
    #[serde(default)]
    pub limits: Limits,
    /// The simulated feed.
    #[serde(default)]
    pub demo: Demo,
    /// Who may subscribe and publish.
    #[serde(default)]
    pub auth: Auth,
    /// `wss://`.
    #[serde(default)]
    pub tls: Tls,
}

/// `[tls]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// Address of the TLS listener.
    pub listen: Option<String>,
    /// PEM certificate chain file.
    pub cert: Option<std::path::PathBuf>,
    /// PEM private key file.
    pub key: Option<std::path::PathBuf>,
    /// Serve only `wss://`: no plain listener.
    pub only: Option<bool>,
}

/// `[auth]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Tokens subscribers must present on `/ws`; empty or absent: open.
    pub subscriber_tokens: Option<Vec<String>>,
    /// Tokens that may publish on `/publish`; empty or absent: publishing off.
    pub publisher_tokens: Option<Vec<String>>,
    /// Browser origins allowed to connect; empty or absent: any.
    pub allowed_origins: Option<Vec<String>>,
}

/// `[limits]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most open connections.
    pub max_connections: Option<usize>,
    /// Most subscriptions per connection.
    pub max_subscriptions: Option<usize>,
    /// Largest client message, bytes.
    pub max_message_size: Option<usize>,
    /// Largest HTTP request head, bytes.
    pub max_handshake_bytes: Option<usize>,
    /// Handshake deadline, milliseconds.
    pub handshake_timeout_ms: Option<u64>,
    /// Outbound bytes per connection past which updates are conflated.
    pub conflate_bytes: Option<usize>,
    /// Hard limit of a connection's outbound queue.
    pub max_outbound_bytes: Option<usize>,
    /// How long a connection may stay over the hard limit, milliseconds.
    pub slow_consumer_timeout_ms: Option<u64>,
    /// Longest topic name, bytes.
    pub max_topic_len: Option<usize>,
    /// Ping a silent connection after this long, milliseconds.
    pub ping_interval_ms: Option<u64>,
    /// Close a connection silent for this long, milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// `[demo]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    /// Run the simulated feed.
    pub enabled: Option<bool>,
    /// Updates per second across all demo instruments.
    pub rate: Option<u32>,
}

/// Flags given on the command line; each one set wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen`
    pub listen: Option<String>,
    /// `--shards`
    pub shards: Option<usize>,
    /// `--demo`
    pub demo: bool,
    /// `--demo-rate`
    pub demo_rate: Option<u32>,
    /// `--log-level`
    pub log_level: Option<String>,
    /// `--tls-listen`
    pub tls_listen: Option<String>,
    /// `--tls-cert`
    pub tls_cert: Option<std::path::PathBuf>,
    /// `--tls-key`
    pub tls_key: Option<std::path::PathBuf>,
    /// `--tls-only`
    pub tls_only: bool,
}

/// Everything the daemon needs to start.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The server itself.
    pub server: Config,
    /// Demo feed rate in updates/s, when the demo runs.
    pub demo_rate: Option<u32>,
    /// Log level filter.
    pub log_level: log::LevelFilter,
}

/// Default demo rate: lively on a dashboard, negligible load.
pub const DEFAULT_DEMO_RATE: u32 = 200;

impl DaemonConfig {
    /// Reads `path` (if given), applies `flags` over it, and validates the result.
    pub fn load(path: Option<&Path>, flags: &Flags) -> Result<DaemonConfig> {
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::InvalidConfig(format!("cannot read {}: {e}", p.display()))
                })?;
                parse_file(&text)
                    .map_err(|e| Error::InvalidConfig(format!("{}: {e}", p.display())))?
            }
            None => FileConfig::default(),
        };
        Self::merge(file, flags)
    }

    /// Applies `flags` over a parsed file.
    pub fn merge(file: FileConfig, flags: &Flags) -> Result<DaemonConfig> {
        let mut c = Config::default();
        if let Some(listen) = flags.listen.as_ref().or(file.listen.as_ref()) {
            c.listen = parse_addr(listen)?;
        }
        if let Some(n) = flags.shards.or(file.shards) {
            c.shards = n;
        }
        if let Some(l) = flags.tls_listen.as_ref().or(file.tls.listen.as_ref()) {
            c.tls_listen = Some(parse_addr(l)?);
        }
        c.tls_cert = flags.tls_cert.clone().or(file.tls.cert);
        c.tls_key = flags.tls_key.clone().or(file.tls.key);
        c.plain = !(flags.tls_only || file.tls.only.unwrap_or(false));
        if c.tls_cert.is_some() != c.tls_key.is_some()
            || (c.tls_cert.is_some() && c.tls_listen.is_none())
        {
            return Err(Error::InvalidConfig(
                "TLS needs a certificate chain, a key and a listen address".into(),
            ));
        }
        if let Some(n) = file.ingest_capacity {
            c.ingest_capacity = n;
        }
        let l = &file.limits;
        if let Some(n) = l.max_connections {
            c.max_connections = n;
        }
        if let Some(n) = l.max_subscriptions {
            c.max_subscriptions = n;
        }
        if let Some(n) = l.max_message_size {
            c.max_message_size = n;
        }
        if let Some(n) = l.max_handshake_bytes {
            c.max_handshake_bytes = n;
        }
        if let Some(ms) = l.handshake_timeout_ms {
            c.handshake_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = l.max_outbound_bytes {
            c.max_outbound_bytes = n;
        }
        if let Some(n) = l.conflate_bytes {
            c.conflate_bytes = n;
        }
        if let Some(ms) = l.slow_consumer_timeout_ms {
            c.slow_consumer_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = l.max_topic_len {
            c.max_topic_len = n;
        }
        if let Some(ms) = l.ping_interval_ms {
            c.ping_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = l.idle_timeout_ms {
            c.idle_timeout = Duration::from_millis(ms);
        }
        if let Some(o) = file.auth.allowed_origins {
            c.allowed_origins = o;
        }
        if let Some(t) = file.auth.subscriber_tokens {
            c.subscriber_tokens = t;
        }
        if let Some(t) = file.auth.publisher_tokens {
            c.publisher_tokens = t;
        }
        c.validate()?;
        let demo_on = flags.demo || file.demo.enabled.unwrap_or(false);
        let demo_rate = flags
            .demo_rate
            .or(file.demo.rate)
            .unwrap_or(DEFAULT_DEMO_RATE);
        if demo_on && demo_rate == 0 {
            return Err(Error::InvalidConfig("demo rate must be at least 1".into()));
        }
        let level = flags
            .log_level
            .as_deref()
            .or(file.log_level.as_deref())
            .unwrap_or("info");
        let log_level = level.parse().map_err(|_| {
            Error::InvalidConfig(format!(
                "log level {level:?} is not one of error, warn, info, debug, trace"
            ))
        })?;
        Ok(DaemonConfig {
            server: c,
            demo_rate: demo_on.then_some(demo_rate),
            log_level,
        })
    }
}

/// Parses the TOML text of a config file.
pub fn parse_file(text: &str) -> std::result::Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn parse_addr(s: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::InvalidConfig(format!("listen address {s:?} is not host:port")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file() {
        let file = parse_file(
            "listen = \"127.0.0.1:9000\"\nshards = 3\n[demo]\nenabled = true\nrate = 50\n",
        )
        .unwrap();
        let flags = Flags {
            shards: Some(1),
            ..Flags::default()
        };
        let c = DaemonConfig::merge(file, &flags).unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.server.shards, 1);
        assert_eq!(c.demo_rate, Some(50));
    }

    #[test]
    fn tls_only_comes_from_the_file_or_the_flag() {
        let tls = "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let plain = DaemonConfig::merge(parse_file(tls).unwrap(), &Flags::default()).unwrap();
        assert!(plain.server.plain);
        let file = parse_file(&format!("{tls}only = true\n")).unwrap();
        let only = DaemonConfig::merge(file, &Flags::default()).unwrap();
        assert!(!only.server.plain);
        let flags = Flags {
            tls_only: true,
            ..Flags::default()
        };
        let only = DaemonConfig::merge(parse_file(tls).unwrap(), &flags).unwrap();
        assert!(!only.server.plain);
        let err = DaemonConfig::merge(parse_file("").unwrap(), &flags).unwrap_err();
        assert!(err.to_string().contains("nothing would listen"), "{err}");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(parse_file("lisen = \"x\"").unwrap_err().contains("lisen"));
        assert!(parse_file("[limits]\nmax_subscriptions = \"many\"").is_err());
        let file = parse_file("shards = 0").unwrap();
        assert!(DaemonConfig::merge(file, &Flags::default()).is_err());
        let file = parse_file("listen = \"nowhere\"").unwrap();
        assert!(DaemonConfig::merge(file, &Flags::default()).is_err());
        let file = parse_file("log_level = \"loud\"").unwrap();
        assert!(DaemonConfig::merge(file, &Flags::default()).is_err());
    }

    #[test]
    fn the_example_file_in_the_repo_parses() {
        let text = include_str!("../tickcastd.example.toml");
        let file = parse_file(text).unwrap();
        DaemonConfig::merge(file, &Flags::default()).unwrap();
    }
}
