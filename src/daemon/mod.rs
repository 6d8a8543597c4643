//! The daemon's configuration: a TOML file overlaid by command-line flags,
//! and its simulated feed.
//!
//! Kept in the library (not the binary) so the merge rules and the refusal of
//! bad files are unit-tested. The file's keys and the `Config` fields they set
//! are declared once, in [`crate::config::file`].

pub mod demo;
pub mod self_signed;

use crate::config::file::{parse_addr, parse_log_level, FileConfig};
use crate::config::Config;
use crate::error::{ConfigError, Error, Result};
use std::path::Path;

/// Flags given on the command line; each one set wins over the file.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--listen`
    pub listen: Option<String>,
    /// `--shards`
    pub shards: Option<usize>,
    /// `--routers`
    pub routers: Option<usize>,
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
    /// `--redis`
    pub redis: Option<String>,
    /// `--redis-ca`
    pub redis_ca: Option<std::path::PathBuf>,
    /// `--publisher-token` (repeatable): added to `[auth] publisher_tokens`.
    pub publisher_tokens: Vec<String>,
}

impl Flags {
    /// The flags' own values, checked before any file is read, so that a
    /// bad flag is reported as the flag's (naming it), not the file's.
    pub fn check(&self) -> Result<()> {
        if let Some(l) = &self.listen {
            parse_addr("--listen", l)?;
        }
        if let Some(l) = &self.tls_listen {
            parse_addr("--tls-listen", l)?;
        }
        if let Some(level) = &self.log_level {
            parse_log_level(level)?;
        }
        Ok(())
    }
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
        flags.check()?;
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Unreadable {
                    path: p.to_path_buf(),
                    why: e.to_string(),
                })?;
                FileConfig::parse(&text).map_err(|e| match e {
                    ConfigError::Syntax { why, .. } => ConfigError::Syntax {
                        path: Some(p.to_path_buf()),
                        why,
                    },
                    other => other,
                })?
            }
            None => FileConfig::default(),
        };
        Self::merge(file, flags)
    }

    /// Applies `flags` over a parsed file.
    pub fn merge(file: FileConfig, flags: &Flags) -> Result<DaemonConfig> {
        let mut c = Config::default();
        file.apply(&mut c)?;
        if let Some(listen) = &flags.listen {
            c.listen = parse_addr("--listen", listen)?;
        }
        if let Some(n) = flags.shards {
            c.shards = n;
        }
        if let Some(n) = flags.routers {
            c.routers = n;
        }
        if let Some(l) = &flags.tls_listen {
            c.tls_listen = Some(parse_addr("--tls-listen", l)?);
        }
        if let Some(cert) = &flags.tls_cert {
            c.tls_cert = Some(cert.clone());
        }
        if let Some(key) = &flags.tls_key {
            c.tls_key = Some(key.clone());
        }
        if flags.tls_only {
            c.plain = false;
        }
        if let Some(url) = &flags.redis {
            c.redis = Some(url.clone());
        }
        if let Some(ca) = &flags.redis_ca {
            c.redis_ca_file = Some(ca.clone());
        }
        for t in &flags.publisher_tokens {
            if !c.publisher_tokens.contains(t) {
                c.publisher_tokens.push(t.clone());
            }
        }
        c.validate()?;
        let demo = file.demo.unwrap_or_default();
        let demo_on = flags.demo || demo.enabled.unwrap_or(false);
        let demo_rate = flags.demo_rate.or(demo.rate).unwrap_or(DEFAULT_DEMO_RATE);
        if demo_on && demo_rate == 0 {
            return Err(Error::InvalidConfig(ConfigError::OutOfRange {
                key: "demo.rate",
                expected: "at least 1",
                got: "0".into(),
            }));
        }
        if let Some(level) = &flags.log_level {
            c.log_level = Some(parse_log_level(level)?);
        }
        let log_level = *c.log_level.get_or_insert(log::LevelFilter::Info);
        Ok(DaemonConfig {
            server: c,
            demo_rate: demo_on.then_some(demo_rate),
            log_level,
        })
    }
}

/// Parses the TOML text of a config file.
pub fn parse_file(text: &str) -> std::result::Result<FileConfig, ConfigError> {
    FileConfig::parse(text)
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
        // routers: the file's, then the flag's.
        let file = parse_file("routers = 3\n").unwrap();
        assert_eq!(
            DaemonConfig::merge(file, &Flags::default())
                .unwrap()
                .server
                .routers,
            3
        );
        let file = parse_file("routers = 3\n").unwrap();
        let flags = Flags {
            routers: Some(2),
            ..Flags::default()
        };
        assert_eq!(DaemonConfig::merge(file, &flags).unwrap().server.routers, 2);
        let file = parse_file("routers = 17\n").unwrap();
        assert!(DaemonConfig::merge(file, &Flags::default()).is_err());
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
        assert!(parse_file("lisen = \"x\"")
            .unwrap_err()
            .to_string()
            .contains("lisen"));
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
        let text = include_str!("../../tickcastd.example.toml");
        let file = parse_file(text).unwrap();
        let cfg = DaemonConfig::merge(file, &Flags::default()).unwrap();
        // Its values are the ones in force, not defaults that happen to
        // validate: the file sets these away from nothing.
        assert_eq!(cfg.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(cfg.server.ingest_capacity, 65536);
        assert_eq!(cfg.server.max_connections, 100_000);
        assert_eq!(cfg.server.max_subscriptions, 1024);
        assert_eq!(cfg.server.max_topic_len, 64);
        assert_eq!(cfg.server.history_len, 256);
        assert_eq!(
            cfg.server.slow_consumer_timeout,
            std::time::Duration::from_millis(10_000)
        );
        assert_eq!(cfg.log_level, log::LevelFilter::Info);
    }
}
