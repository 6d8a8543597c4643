//! [`Config::validate`]: every range and consistency rule of a
//! configuration, in one place.

use super::{Config, MAX_SHARDS};
use crate::error::{ConfigError, Error, Result};
use std::time::Duration;

impl Config {
    /// Checks every range and consistency rule, in one place: the Rust API,
    /// the daemon and the C ABI all come through here. `Server::start` calls
    /// it so a bad value fails loudly at start.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Error::InvalidConfig)
    }

    fn check(&self) -> std::result::Result<(), ConfigError> {
        fn at_least(key: &'static str, got: usize, min: usize, expected: &'static str) -> Check {
            if got < min {
                return Err(ConfigError::OutOfRange {
                    key,
                    expected,
                    got: got.to_string(),
                });
            }
            Ok(())
        }
        type Check = std::result::Result<(), ConfigError>;
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(ConfigError::OutOfRange {
                key: "shards",
                expected: "1..=64",
                got: self.shards.to_string(),
            });
        }
        let tls_files = self.tls_cert.is_some() || self.tls_key.is_some();
        if tls_files
            && (self.tls_cert.is_none() || self.tls_key.is_none() || self.tls_listen.is_none())
        {
            return Err(ConfigError::TlsIncomplete);
        }
        if !self.plain && !tls_files {
            return Err(ConfigError::NoListener);
        }
        at_least("ingest_capacity", self.ingest_capacity, 1, "at least 1")?;
        at_least("router_batch", self.router_batch, 1, "at least 1")?;
        if self.max_topic_len == 0 || self.max_topic_len > 1024 {
            return Err(ConfigError::OutOfRange {
                key: "max_topic_len",
                expected: "1..=1024",
                got: self.max_topic_len.to_string(),
            });
        }
        at_least("max_subscriptions", self.max_subscriptions, 1, "at least 1")?;
        let rate = self.max_commands_per_sec;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(ConfigError::OutOfRange {
                key: "max_commands_per_sec",
                expected: "a number of commands per second, 0 for no limit",
                got: rate.to_string(),
            });
        }
        if let Some(url) = &self.redis {
            let seeds = url.strip_prefix("redis+cluster://").map(|l| l.split(','));
            let ok = match seeds {
                Some(mut seeds) => seeds.all(|hp| {
                    let u = format!("redis://{}", hp.trim());
                    !hp.trim().is_empty() && redis::Client::open(u).is_ok()
                }),
                None => url.starts_with("redis://") && redis::Client::open(url.as_str()).is_ok(),
            };
            if !ok {
                return Err(ConfigError::OutOfRange {
                    key: "redis",
                    expected: "redis://HOST:PORT, or redis+cluster://HOST:PORT,HOST:PORT,... for a Redis Cluster",
                    got: url.clone(),
                });
            }
        }
        check_extra_fields(&self.extra_fields)?;
        if self.trades_snapshot == 0 || self.trades_snapshot > 10_000 {
            return Err(ConfigError::OutOfRange {
                key: "trades_snapshot",
                expected: "1..=10000",
                got: self.trades_snapshot.to_string(),
            });
        }
        let per_command = self.max_topics_per_command;
        at_least("max_topics_per_command", per_command, 1, "at least 1")?;
        at_least("max_topics", self.max_topics, 1, "at least 1")?;
        at_least(
            "max_message_size",
            self.max_message_size,
            128,
            "at least 128",
        )?;
        let head = self.max_handshake_bytes;
        at_least("max_handshake_bytes", head, 512, "at least 512")?;
        if self.handshake_timeout.is_zero() {
            return Err(ConfigError::OutOfRange {
                key: "handshake_timeout",
                expected: "positive",
                got: "0".into(),
            });
        }
        at_least("max_connections", self.max_connections, 1, "at least 1")?;
        let hard = self.max_outbound_bytes;
        at_least("max_outbound_bytes", hard, 64 * 1024, "at least 65536")?;
        if self.conflate_bytes < 4096 || self.conflate_bytes >= hard {
            return Err(ConfigError::OutOfRange {
                key: "conflate_bytes",
                expected: "at least 4096 and below max_outbound_bytes",
                got: self.conflate_bytes.to_string(),
            });
        }
        if self.max_total_outbound_bytes < hard {
            return Err(ConfigError::OutOfRange {
                key: "max_total_outbound_bytes",
                expected: "at least max_outbound_bytes",
                got: self.max_total_outbound_bytes.to_string(),
            });
        }
        at_least("read_buffer_size", self.read_buffer_size, 64, "at least 64")?;
        let tokens = self.subscriber_tokens.iter().chain(&self.publisher_tokens);
        for t in tokens.chain(&self.admin_tokens) {
            if t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::BadToken);
            }
        }
        if self.ping_interval.is_zero() || self.idle_timeout <= self.ping_interval {
            return Err(ConfigError::OutOfRange {
                key: "idle_timeout",
                expected: "longer than ping_interval, and both positive",
                got: format!(
                    "{:?} (ping_interval {:?})",
                    self.idle_timeout, self.ping_interval
                ),
            });
        }
        if let Some(rate) = self.max_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
                return Err(ConfigError::OutOfRange {
                    key: "max_rate",
                    expected: "a number of events per second above 0, at most 1000",
                    got: rate.to_string(),
                });
            }
        }
        if self
            .stale_after
            .is_some_and(|d| d < Duration::from_millis(100))
        {
            return Err(ConfigError::OutOfRange {
                key: "stale_after",
                expected: "at least 100 ms",
                got: format!("{:?}", self.stale_after.unwrap_or_default()),
            });
        }
        if self
            .subscriber_tokens
            .iter()
            .any(|t| self.publisher_tokens.contains(t))
        {
            return Err(ConfigError::TokenInBothRoles);
        }
        Ok(())
    }
}

/// Keys events and publish frames use already: no extra field may take one.
const RESERVED: &[&str] = &[
    "event",
    "topic",
    "seq",
    "ts",
    "epoch",
    "stale",
    "conflated",
    "trades",
    "bids",
    "asks",
    "depth",
    "checksum",
    "clear",
    "replace",
    "id",
    "code",
    "message",
    "state",
];

/// `[fields] extra`: at most `MAX_EXTRA` names, each 1-32 of `a-z 0-9 _`
/// starting with a letter, none twice, none a key of the protocol.
fn check_extra_fields(names: &[String]) -> Result<(), ConfigError> {
    use crate::model::update::{Prices, MAX_EXTRA};
    let bad = |got: String, expected: &'static str| ConfigError::OutOfRange {
        key: "fields.extra",
        expected,
        got,
    };
    if names.len() > MAX_EXTRA {
        return Err(bad(format!("{} names", names.len()), "at most 8 names"));
    }
    for (i, n) in names.iter().enumerate() {
        let shape = n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !shape {
            return Err(bad(
                n.clone(),
                "names of 1-32 characters a-z 0-9 _, starting with a letter",
            ));
        }
        if RESERVED.contains(&n.as_str()) || Prices::NAMES.contains(&n.as_str()) {
            return Err(bad(
                n.clone(),
                "a name that is not a key of the protocol (bid, seq, topic, ...)",
            ));
        }
        if names[..i].contains(n) {
            return Err(bad(n.clone(), "each name once"));
        }
    }
    Ok(())
}
