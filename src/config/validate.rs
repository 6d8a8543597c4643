//! [`Config::validate`]: every range and consistency rule of a
//! configuration, in one place.

use super::{Config, MAX_ROUTERS, MAX_SHARDS};
use crate::error::{ConfigError, Error, Result};
use std::time::Duration;

impl Config {
    /// Checks every range and consistency rule, in one place: the Rust API,
    /// the daemon and the C ABI all come through here. `Server::start` calls
    /// it so a bad value fails loudly at start.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(Error::InvalidConfig)
    }

    /// The listeners first (nothing else matters without one), then every
    /// integer range in [`RANGES`], then the rules in [`RULES`]; the first
    /// failure is the answer.
    fn check(&self) -> Check {
        listeners(self)?;
        for r in RANGES {
            let got = (r.get)(self);
            if got < r.min || got > r.max {
                return Err(ConfigError::OutOfRange {
                    key: r.key,
                    expected: r.expected,
                    got: got.to_string(),
                });
            }
        }
        RULES.iter().try_for_each(|rule| rule(self))
    }
}

type Check = std::result::Result<(), ConfigError>;

/// An integer setting and its range.
struct Range {
    key: &'static str,
    get: fn(&Config) -> usize,
    min: usize,
    max: usize,
    expected: &'static str,
}

const ANY: usize = usize::MAX;

/// Every integer setting with a range of its own, in the order checked.
const RANGES: &[Range] = &[
    Range {
        key: "shards",
        get: |c| c.shards,
        min: 1,
        max: MAX_SHARDS,
        expected: "from 1 to 64",
    },
    Range {
        key: "routers",
        get: |c| c.routers,
        min: 1,
        max: MAX_ROUTERS,
        expected: "from 1 to 16",
    },
    Range {
        key: "ingest_capacity",
        get: |c| c.ingest_capacity,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "router_batch",
        get: |c| c.router_batch,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "max_topic_len",
        get: |c| c.max_topic_len,
        min: 1,
        max: 1024,
        expected: "from 1 to 1024",
    },
    Range {
        key: "max_subscriptions",
        get: |c| c.max_subscriptions,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "trades_snapshot",
        get: |c| c.trades_snapshot,
        min: 1,
        max: 10_000,
        expected: "from 1 to 10000",
    },
    Range {
        key: "max_topics_per_command",
        get: |c| c.max_topics_per_command,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "max_topics",
        get: |c| c.max_topics,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "max_message_size",
        get: |c| c.max_message_size,
        min: 128,
        max: ANY,
        expected: "at least 128",
    },
    Range {
        key: "max_handshake_bytes",
        get: |c| c.max_handshake_bytes,
        min: 512,
        max: ANY,
        expected: "at least 512",
    },
    Range {
        key: "max_connections",
        get: |c| c.max_connections,
        min: 1,
        max: ANY,
        expected: "at least 1",
    },
    Range {
        key: "max_outbound_bytes",
        get: |c| c.max_outbound_bytes,
        min: 64 * 1024,
        max: ANY,
        expected: "at least 65536",
    },
    Range {
        key: "read_buffer_size",
        get: |c| c.read_buffer_size,
        min: 64,
        max: ANY,
        expected: "at least 64",
    },
];

/// The rules that are not one integer's range, in the order checked.
const RULES: &[fn(&Config) -> Check] = &[
    command_rate,
    redis_url,
    |c| check_extra_fields(&c.extra_fields),
    handshake_timeout,
    outbound_limits,
    tokens,
    heartbeat,
    max_rate,
    stale_after,
];

fn out_of_range(key: &'static str, expected: &'static str, got: impl ToString) -> Check {
    Err(ConfigError::OutOfRange {
        key,
        expected,
        got: got.to_string(),
    })
}

/// TLS has all it needs, and something listens.
fn listeners(c: &Config) -> Check {
    let tls_files = c.tls_cert.is_some() || c.tls_key.is_some();
    if tls_files && (c.tls_cert.is_none() || c.tls_key.is_none() || c.tls_listen.is_none()) {
        return Err(ConfigError::TlsIncomplete);
    }
    if !c.plain && !tls_files {
        return Err(ConfigError::NoListener);
    }
    Ok(())
}

fn command_rate(c: &Config) -> Check {
    let rate = c.max_commands_per_sec;
    if !(rate.is_finite() && rate >= 0.0) {
        let expected = "a number of commands per second, 0 for no limit";
        return out_of_range("max_commands_per_sec", expected, rate);
    }
    Ok(())
}

fn redis_url(c: &Config) -> Check {
    let Some(url) = &c.redis else {
        if let Some(ca) = &c.redis_ca_file {
            let expected = "only with a rediss:// redis URL";
            return out_of_range("redis_ca_file", expected, ca.display());
        }
        return Ok(());
    };
    let seeds = url
        .strip_prefix("redis+cluster://")
        .or_else(|| url.strip_prefix("rediss+cluster://"))
        .map(|l| l.split(','));
    let ok = match seeds {
        Some(mut seeds) => seeds.all(|hp| {
            let u = format!("redis://{}", hp.trim());
            !hp.trim().is_empty() && redis::Client::open(u).is_ok()
        }),
        None => {
            (url.starts_with("redis://") || url.starts_with("rediss://"))
                && redis::Client::open(url.as_str()).is_ok()
        }
    };
    if !ok {
        let expected = "redis://HOST:PORT (rediss:// for TLS), or \
             redis+cluster://HOST:PORT,HOST:PORT,... (rediss+cluster:// for TLS) for a Redis Cluster";
        return out_of_range("redis", expected, url);
    }
    let Some(ca) = &c.redis_ca_file else {
        return Ok(());
    };
    if !url.starts_with("rediss") {
        let expected = "only with a rediss:// redis URL (this one is not TLS)";
        return out_of_range("redis_ca_file", expected, ca.display());
    }
    read_redis_ca(ca).map(|_| ())
}

/// The PEM text of `redis_ca_file`, once it holds at least one certificate.
pub(crate) fn read_redis_ca(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let unreadable = |why: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match certs {
        Ok(c) if !c.is_empty() => Ok(pem),
        Ok(_) => Err(unreadable(
            "no PEM certificate in it (redis_ca_file)".into(),
        )),
        Err(e) => Err(unreadable(format!("not a PEM certificate file ({e})"))),
    }
}

fn handshake_timeout(c: &Config) -> Check {
    if c.handshake_timeout.is_zero() {
        return out_of_range("handshake_timeout", "positive", "0");
    }
    Ok(())
}

/// The conflation mark sits below the per-connection limit, which fits in
/// the server's budget.
fn outbound_limits(c: &Config) -> Check {
    let hard = c.max_outbound_bytes;
    if c.conflate_bytes < 4096 || c.conflate_bytes >= hard {
        let expected = "at least 4096 and below max_outbound_bytes";
        return out_of_range("conflate_bytes", expected, c.conflate_bytes);
    }
    if c.max_total_outbound_bytes < hard {
        let expected = "at least max_outbound_bytes";
        return out_of_range(
            "max_total_outbound_bytes",
            expected,
            c.max_total_outbound_bytes,
        );
    }
    Ok(())
}

/// Static tokens are long enough, printable, and each in one role.
fn tokens(c: &Config) -> Check {
    let all = c.subscriber_tokens.iter().chain(&c.publisher_tokens);
    for t in all.chain(&c.admin_tokens) {
        if t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConfigError::BadToken);
        }
    }
    if c.subscriber_tokens
        .iter()
        .any(|t| c.publisher_tokens.contains(t))
    {
        return Err(ConfigError::TokenInBothRoles);
    }
    Ok(())
}

fn heartbeat(c: &Config) -> Check {
    if c.ping_interval.is_zero() || c.idle_timeout <= c.ping_interval {
        let (idle, ping) = (c.idle_timeout.as_millis(), c.ping_interval.as_millis());
        let got = format!("{idle} (ping_interval_ms {ping})");
        let expected = "longer than ping_interval_ms, and both above 0";
        return out_of_range("idle_timeout_ms", expected, got);
    }
    Ok(())
}

fn max_rate(c: &Config) -> Check {
    match c.max_rate {
        Some(rate) if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) => {
            let expected = "a number of events per second above 0, at most 1000";
            out_of_range("max_rate", expected, rate)
        }
        _ => Ok(()),
    }
}

fn stale_after(c: &Config) -> Check {
    match c.stale_after {
        Some(d) if d < Duration::from_millis(100) => {
            out_of_range("stale_after_ms", "at least 100", d.as_millis())
        }
        _ => Ok(()),
    }
}

/// `[fields] extra`: at most `MAX_EXTRA` names, each 1-32 of `a-z 0-9 _`
/// starting with a letter, none twice, none a key of the protocol.
fn check_extra_fields(names: &[String]) -> Result<(), ConfigError> {
    use crate::model::event::PROTOCOL_KEYS;
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
        if PROTOCOL_KEYS.contains(&n.as_str()) || Prices::NAMES.contains(&n.as_str()) {
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
