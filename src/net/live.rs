//! The settings in force: the configuration as last (re)loaded, with what
//! was built from its files (the JWT verifier, the TLS configuration).
//! Each shard holds an `Arc` of it and gets a new one by message at a
//! reload, so reading a setting in the shard loop takes no lock.

use crate::access::jwt::Verifier;
use crate::config::Config;
use std::sync::Arc;

/// One generation of settings (see the module comment).
pub(crate) struct Live {
    /// Restart-only keys keep their values from the start (see
    /// `reload::RESTART_ONLY`), so every key here is the one in force.
    pub config: Config,
    /// Verifies JWTs, when they are accepted.
    pub jwt: Option<Arc<Verifier>>,
    /// The TLS server configuration, when `wss://` is on.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// 0 at start, then one more per applied reload.
    pub generation: u64,
    /// A digest of each file read for these settings (TLS certificate and
    /// key, JWT key), by key: a reload says which of them changed.
    pub file_digests: Vec<(&'static str, std::path::PathBuf, u64)>,
}
