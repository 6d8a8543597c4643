//! Where a reload reads the configuration from, and what a reload did.

use super::Config;
use crate::error::Result;

/// Where a reload reads the configuration from. The daemon's reads its
/// file again and lays its command-line flags over it.
pub type ConfigSource = dyn Fn() -> Result<Config> + Send + Sync;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Reloaded {
    /// The generation now in force: 0 at start, one more per reload.
    pub generation: u64,
    /// Keys whose new values are now in force. Names only: the values may
    /// be secrets.
    pub applied: Vec<&'static str>,
    /// Keys that changed but take effect only at a restart (listeners,
    /// threads, the topic table); they keep their running values.
    pub need_restart: Vec<&'static str>,
    /// Files read again whatever their keys say (a renewed certificate
    /// keeps its path), each with whether its content changed: e.g.
    /// `"tls_cert /etc/tickcast/cert.pem: changed"`.
    pub reread: Vec<String>,
}
