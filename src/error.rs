//! The crate's one error type.

use std::fmt;
use std::io;

/// Result alias used across the public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when starting a server or publishing into it.
///
/// `Full` and `Closed` are the only errors a running publisher sees in normal
/// operation; the others mean the caller passed something invalid.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The ingest channel is full (`try_publish` only); the update was not queued.
    Full,
    /// The server has shut down; nothing more can be published.
    Closed,
    /// The topic name is empty, too long, or has a character outside the allowed set.
    InvalidTopic(String),
    /// A price field is NaN or infinite, which JSON cannot carry.
    InvalidValue(&'static str),
    /// A configuration value is out of range or inconsistent.
    InvalidConfig(String),
    /// An operating-system error, e.g. the listen address is in use.
    Io(io::Error),
    /// An operation did not finish within its timeout (e.g. a remote flush).
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => f.write_str("ingest queue is full"),
            Error::Closed => f.write_str("server is shut down"),
            Error::InvalidTopic(why) => write!(f, "invalid topic: {why}"),
            Error::InvalidValue(field) => write!(f, "invalid value for {field}: must be finite"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
