//! Reloading the settings without a restart (SIGHUP, `POST /admin/reload`,
//! [`crate::Server::reload`]): a new configuration is checked whole, its
//! files (JWT keys, TLS certificate) are read, and only then is it handed to
//! every shard. A configuration that fails anywhere changes nothing.
//!
//! What the shards do with it (close connections whose static token is
//! gone, build new connections with the new limits) is in
//! `net::shard::reload`.

use crate::access::jwt::Verifier;
use crate::config::Config;
use crate::error::{ConfigError, Result};
use crate::net::live::Live;
use crate::net::mailbox::{ShardLink, ShardMsg};
use crate::net::transport::load_server_config;
use std::sync::Arc;

pub use crate::config::source::{ConfigSource, Reloaded};

/// Keys a running server cannot change: they shape its listeners, its
/// threads, the router's tables and deadline queues that need one fixed
/// timeout each.
pub const RESTART_ONLY: &[&str] = &[
    "listen",
    "shards",
    "ingest_capacity",
    "router_batch",
    "max_topic_len",
    "max_topics",
    "handshake_timeout",
    "close_timeout",
    "tls_listen",
    "plain",
    "echo",
    "history_len",
    "history_bytes",
    "stale_after",
    "trades_snapshot",
    "extra_fields",
    "redis",
];

/// For each listed field: when `new` differs from `old`, `$then` runs with
/// the field's name (and may put the old value back).
macro_rules! each_changed {
    ($old:expr, $new:expr, |$name:ident| $then:expr; $($f:ident),* $(,)?) => {
        $(
            if $old.$f != $new.$f {
                let $name: &'static str = stringify!($f);
                $then;
                #[allow(unused_assignments)]
                { $new.$f = $old.$f.clone(); }
            }
        )*
    };
}

/// Builds generation `generation` of the settings from `config`: reads the
/// JWT key and the TLS certificate and key (when configured).
pub(crate) fn build(config: Config, generation: u64) -> Result<Live> {
    let jwt = Verifier::load(
        config.jwt_hmac_secret_file.as_deref(),
        config.jwt_public_key_file.as_deref(),
        config.max_topic_len,
    )
    .map_err(ConfigError::JwtKey)?
    .map(Arc::new);
    let tls = match (&config.tls_cert, &config.tls_key, config.tls_listen) {
        (Some(cert), Some(key), Some(_)) => Some(load_server_config(cert, key)?),
        _ => None,
    };
    let file_digests = file_digests(&config);
    Ok(Live {
        config,
        jwt,
        tls,
        generation,
        file_digests,
    })
}

/// A digest of each file these settings read, to tell a renewed
/// certificate from the same one read again.
fn file_digests(c: &Config) -> Vec<(&'static str, std::path::PathBuf, u64)> {
    use std::hash::{Hash, Hasher};
    let files = [
        (
            "tls_cert",
            c.tls_cert.as_ref().filter(|_| c.tls_listen.is_some()),
        ),
        (
            "tls_key",
            c.tls_key.as_ref().filter(|_| c.tls_listen.is_some()),
        ),
        ("jwt_hmac_secret_file", c.jwt_hmac_secret_file.as_ref()),
        ("jwt_public_key_file", c.jwt_public_key_file.as_ref()),
    ];
    files
        .into_iter()
        .filter_map(|(key, path)| {
            let bytes = std::fs::read(path?).ok()?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            Some((key, path?.clone(), h.finish()))
        })
        .collect()
}

/// The files `next` read again, each said changed or unchanged against
/// what `before` had read.
fn reread(before: &Live, after: &Live) -> Vec<String> {
    after
        .file_digests
        .iter()
        .map(|(key, path, digest)| {
            let same = before
                .file_digests
                .iter()
                .any(|(k, p, d)| k == key && p == path && d == digest);
            let state = if same { "unchanged" } else { "changed" };
            format!("{key} {}: {state}", path.display())
        })
        .collect()
}

/// The settings that follow `current` when `new` is loaded: restart-only
/// keys keep their running values (and are listed), the rest is checked
/// as a start would check it. Files are read again even when their paths
/// did not change, so a rotated certificate or key is picked up.
pub(crate) fn next(current: &Live, new: Config) -> Result<(Live, Reloaded)> {
    let old = &current.config;
    let mut pinned = new.clone();
    let mut need_restart = Vec::new();
    each_changed!(old, pinned, |name| need_restart.push(name);
        listen, shards, ingest_capacity, router_batch, max_topic_len, max_topics,
        handshake_timeout, close_timeout, tls_listen, plain, echo, history_len,
        history_bytes, stale_after, trades_snapshot, extra_fields, redis);
    if current.tls.is_none() {
        // TLS on or off is a listener: a restart.
        each_changed!(old, pinned, |name| need_restart.push(name); tls_cert, tls_key);
    }
    pinned.validate()?;
    let mut applied = Vec::new();
    let mut probe = pinned.clone();
    each_changed!(old, probe, |name| applied.push(name);
        max_subscriptions, max_topics_per_command, max_total_outbound_bytes,
        max_message_size, max_handshake_bytes, max_connections, conflate_bytes,
        max_outbound_bytes, socket_send_buffer, slow_consumer_timeout, read_buffer_size,
        tls_cert, tls_key, ping_interval, idle_timeout, allowed_origins, subscriber_tokens,
        publisher_tokens, admin_tokens, protect_metrics, jwt_hmac_secret_file,
        jwt_public_key_file, expiry_grace, max_commands_per_sec, max_rate, log_level,
        permessage_deflate, deflate_min_bytes, max_bytes_per_sec, deflate_per_connection,
        deflate_context_memory);
    debug_assert_eq!(probe, *old, "every key is either applied or restart-only");
    let live = build(pinned, current.generation + 1)?;
    let report = Reloaded {
        generation: live.generation,
        applied,
        need_restart,
        reread: reread(current, &live),
    };
    Ok((live, report))
}

/// How long a reload waits for the shards to take the new settings.
const SHARD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads `new` over the settings in `current` and hands the result to
/// every shard, returning once every shard has it in force (so a
/// connection made afterwards gets it). Holding `current`'s lock for the
/// whole call keeps two reloads from interleaving. Blocks while a shard's
/// channel is full, so it is never called on a shard thread.
pub(crate) fn apply(
    current: &parking_lot::Mutex<Arc<Live>>,
    shards: &[ShardLink],
    new: Config,
) -> Result<Reloaded> {
    let mut cur = current.lock();
    let (live, report) = next(&cur, new).inspect_err(|e| {
        log::warn!("reload refused, the running configuration is kept: {e}");
    })?;
    log::info!(
        "configuration reloaded (generation {}): applied {:?}; changed but needing a restart {:?}; files read again {:?}",
        report.generation,
        report.applied,
        report.need_restart,
        report.reread
    );
    if let Some(level) = live.config.log_level {
        log::set_max_level(level);
    }
    let live = Arc::new(live);
    *cur = live.clone();
    let (done_tx, done_rx) = crossbeam_channel::bounded(shards.len());
    let mut told = 0;
    for link in shards {
        // A shard that has shut down has dropped its receiver: nothing to tell.
        if link.send(ShardMsg::Reload(live.clone(), done_tx.clone())) {
            told += 1;
        }
    }
    let deadline = std::time::Instant::now() + SHARD_WAIT;
    for _ in 0..told {
        if done_rx.recv_deadline(deadline).is_err() {
            log::warn!("reload: a shard did not take the new settings within {SHARD_WAIT:?}");
            break;
        }
    }
    Ok(report)
}

/// Reads the configuration from `shared`'s source and applies it.
pub(crate) fn from_source(shared: &crate::net::Shared) -> Result<Reloaded> {
    let source = shared.source.lock().clone();
    let source = source.ok_or(ConfigError::NoSource)?;
    let config = source().inspect_err(|e| {
        log::warn!("reload refused, the running configuration is kept: {e}");
    })?;
    apply(&shared.live, &shared.shards, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(c: Config) -> Live {
        build(c, 0).unwrap()
    }

    #[test]
    fn restart_only_keys_keep_their_values_and_are_listed() {
        let cur = live(Config::default());
        let new = Config::default()
            .shards(cur.config.shards + 1)
            .max_topics(7)
            .subscriber_tokens(vec!["a-token-1".into()])
            .max_connections(10);
        let (next, report) = next(&cur, new).unwrap();
        assert_eq!(report.generation, 1);
        assert_eq!(report.need_restart, ["shards", "max_topics"]);
        assert_eq!(report.applied, ["max_connections", "subscriber_tokens"]);
        assert_eq!(next.config.shards, cur.config.shards);
        assert_eq!(next.config.max_topics, cur.config.max_topics);
        assert_eq!(next.config.subscriber_tokens, ["a-token-1"]);
        assert_eq!(next.config.max_connections, 10);
    }

    #[test]
    fn a_reload_says_which_files_it_read_again_and_whether_they_changed() {
        let dir = std::env::temp_dir().join(format!("tickcast-reread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("jwt.secret");
        std::fs::write(&key, "a".repeat(64)).unwrap();
        let c = Config {
            jwt_hmac_secret_file: Some(key.clone()),
            ..Config::default()
        };
        let cur = live(c.clone());
        let (second, report) = next(&cur, c.clone()).unwrap();
        let line = |state| format!("jwt_hmac_secret_file {}: {state}", key.display());
        assert_eq!(report.reread, [line("unchanged")]);
        assert!(
            report.applied.is_empty(),
            "no key changed: {:?}",
            report.applied
        );
        std::fs::write(&key, "b".repeat(64)).unwrap();
        let (_, report) = next(&second, c).unwrap();
        assert_eq!(report.reread, [line("changed")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_restart_only_key_is_listed_in_the_constant() {
        let cur = live(Config::default());
        let mut new = Config {
            listen: "127.0.0.1:1".parse().unwrap(),
            ..Config::default()
        };
        new.shards += 1;
        new.ingest_capacity += 1;
        new.router_batch += 1;
        new.max_topic_len += 1;
        new.max_topics += 1;
        new.handshake_timeout *= 2;
        new.close_timeout *= 2;
        new.tls_listen = Some("127.0.0.1:2".parse().unwrap());
        new.tls_cert = Some("c.pem".into());
        new.tls_key = Some("k.pem".into());
        new.plain = false;
        new.echo = true;
        new.history_len += 1;
        new.history_bytes += 1;
        new.stale_after = Some(std::time::Duration::from_secs(1));
        new.trades_snapshot += 1;
        new.extra_fields = vec!["iv".into()];
        new.redis = Some("redis://127.0.0.1:1".into());
        let (_, report) = next(&cur, new).unwrap();
        let mut listed = report.need_restart.clone();
        listed.retain(|k| !["tls_cert", "tls_key"].contains(k));
        assert_eq!(listed, RESTART_ONLY);
    }

    #[test]
    fn a_bad_configuration_changes_nothing() {
        let cur = live(Config::default());
        let bad = Config::default().jwt_hmac_secret_file("/nonexistent/secret");
        assert!(matches!(
            next(&cur, bad),
            Err(crate::error::Error::InvalidConfig(ConfigError::JwtKey(_)))
        ));
        let out_of_range = Config::default().max_message_size(1);
        assert!(next(&cur, out_of_range).is_err());
    }
}
