//! The crate's error types: [`Error`] for every public call, with structured
//! causes ([`ConfigError`], [`TlsError`], [`TopicError`]) that callers (the C
//! ABI among them) can match on instead of reading messages.

use crate::model::book::BookError;
pub use crate::model::topic_name::TopicError;
use crate::model::update::Invalid;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias used across the public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when starting a server or publishing into it.
///
/// `Full` and `Closed` are the only errors a running publisher sees in normal
/// operation; the others mean the caller passed something invalid, except
/// `Io` and `Timeout`, which come from the operating system and the network.
///
/// Not `#[non_exhaustive]`: the C ABI maps every variant to a result code
/// with an exhaustive `match`, so a new variant cannot go unmapped.
#[derive(Debug)]
pub enum Error {
    /// The ingest channel is full (`try_publish` only); the update was not queued.
    Full,
    /// The server has shut down; nothing more can be published.
    Closed,
    /// The topic name is empty, too long, or has a character outside the allowed set.
    InvalidTopic(TopicError),
    /// A price field is NaN or infinite, which JSON cannot carry.
    InvalidValue(&'static str),
    /// The update sets no field: it would use up a sequence number and tell
    /// subscribers nothing.
    EmptyUpdate,
    /// An order-book change is malformed or does not fit the topic or the
    /// book (a `.book` topic takes levels only; see `BookError`).
    InvalidBook(BookError),
    /// The server holds `max_topics` topics already; an update of a new
    /// topic is refused until one is cleared.
    TooManyTopics {
        /// The server's `max_topics`.
        max: usize,
    },
    /// The publisher's token does not allow this topic (its `publish` claim).
    Forbidden {
        /// The topic.
        topic: String,
    },
    /// Cluster mode: Redis cannot be reached and this node's queue for it
    /// is full; the update was not queued (nothing was lost: the caller
    /// still holds it). Try again once `/healthz` says `ok`.
    Unavailable,
    /// A configuration value is out of range or inconsistent.
    InvalidConfig(ConfigError),
    /// A TLS certificate, key or trust store could not be used.
    Tls(TlsError),
    /// A remote publisher's URL is malformed or names a host that does not resolve.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A remote server answered the WebSocket upgrade with an HTTP error
    /// instead of `101`: a refused token (401), network publishing off
    /// (403), a path that is not `/ws` or `/publish` (404, or 200 for the
    /// dashboard page). Not retried: the same request gets the same answer.
    Refused {
        /// The HTTP status.
        status: u16,
        /// What to do about it, with the server's own words when it gave any.
        why: String,
    },
    /// The server refused a subscriber's command (`Subscriber::subscribe`):
    /// `code` as in docs/PROTOCOL.md (`bad_topic`, `forbidden`, ...).
    Command {
        /// The stable error code.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// An operating-system error, e.g. the listen address is in use.
    Io(io::Error),
    /// An operation did not finish within its timeout (e.g. a remote flush).
    Timeout,
}

/// Which configuration rule a value breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is outside its range.
    OutOfRange {
        /// The setting's name (as in the TOML file and on `Config`).
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        got: String,
    },
    /// Plain `ws://` is off and TLS is not set up: nothing would listen.
    NoListener,
    /// TLS needs a certificate chain, a key and a listen address together.
    TlsIncomplete,
    /// A token is shorter than 8 characters or has whitespace or control characters.
    BadToken,
    /// The same token is listed for subscribers and for publishers.
    TokenInBothRoles,
    /// An address is not `host:port` (or does not resolve).
    BadAddress {
        /// The setting.
        key: &'static str,
        /// The value as given.
        value: String,
    },
    /// The config file cannot be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    Syntax {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The TOML parser's message, naming the key and the line.
        why: String,
    },
    /// `log_level` is not one of `error`, `warn`, `info`, `debug`, `trace`.
    BadLogLevel(String),
    /// A JWT secret or public-key file cannot be read or used (the message
    /// names the file, never its contents).
    JwtKey(String),
    /// A reload was asked of a server that has nothing to reload from: it
    /// was not given a config source (the daemon's is its file and flags).
    NoSource,
}

/// Why TLS cannot be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read or parsed.
    File {
        /// What the file should hold: "certificates", "the private key", "CA certificates".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The reason.
        why: String,
    },
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// None of these trust stores holds a usable CA certificate.
    NoCaCertificates(Vec<PathBuf>),
    /// rustls refused the certificate and key (they do not fit, or the key
    /// type is not supported) or the protocol setup.
    Rejected(rustls::Error),
    /// The host of a `wss://` URL is not a valid TLS server name.
    ServerName(String),
    /// Every client would refuse this certificate (what a client checks:
    /// not a CA certificate as the leaf, a subjectAltName, in its validity).
    Unusable {
        /// The certificate chain file.
        path: PathBuf,
        /// Why, and how to make one that works.
        why: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Full => f.write_str("ingest queue is full"),
            Error::Closed => f.write_str("server is shut down"),
            Error::InvalidTopic(why) => write!(f, "invalid topic: {why}"),
            Error::InvalidValue(field) => write!(f, "invalid value for {field}: must be finite"),
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Tls(why) => write!(f, "TLS: {why}"),
            Error::InvalidUrl { url, why } => write!(f, "bad URL {url:?}: {why}"),
            Error::Refused { status, why } => {
                write!(f, "the server refused the connection (HTTP {status}): {why}")
            }
            Error::Command { code, message } => write!(f, "{code}: {message}"),
            Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => write!(
                f,
                "could not connect: nothing listens there ({e}); is the server running, on that port?"
            ),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Unavailable => f.write_str(
                "the cluster's Redis cannot be reached and the queue for it is full; the update was not queued",
            ),
            Error::EmptyUpdate => f.write_str("the update sets no price field"),
            Error::InvalidBook(why) => write!(f, "invalid book update: {why}"),
            Error::TooManyTopics { max } => write!(
                f,
                "the server holds its limit of {max} topics; clear one or raise max_topics"
            ),
            Error::Forbidden { topic } => write!(
                f,
                "the publisher's token does not allow topic {topic:?} (its publish claim)"
            ),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange { key, expected, got } => {
                write!(f, "{key} must be {expected}, got {got}")
            }
            ConfigError::NoListener => {
                f.write_str("plain ws:// is off and TLS is not set up: nothing would listen")
            }
            ConfigError::JwtKey(why) => f.write_str(why),
            ConfigError::NoSource => f.write_str(
                "nothing to reload from: this server was not started from a config file",
            ),
            ConfigError::TlsIncomplete => {
                f.write_str("TLS needs a certificate chain, a key and a listen address")
            }
            ConfigError::BadToken => {
                f.write_str("tokens must be at least 8 characters, without spaces")
            }
            ConfigError::TokenInBothRoles => {
                f.write_str("a token cannot be both a subscriber and a publisher token")
            }
            ConfigError::BadAddress { key, value } => {
                write!(f, "{key} address {value:?} is not host:port")
            }
            ConfigError::Unreadable { path, why } => {
                write!(f, "cannot read {}: {why}", path.display())
            }
            ConfigError::Syntax { path: Some(p), why } => write!(f, "{}: {why}", p.display()),
            ConfigError::Syntax { path: None, why } => f.write_str(why),
            ConfigError::BadLogLevel(level) => write!(
                f,
                "log level {level:?} is not one of error, warn, info, debug, trace"
            ),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { what, path, why } => {
                write!(f, "cannot read {what} from {}: {why}", path.display())
            }
            TlsError::NoCertificate(p) => write!(f, "no certificate in {}", p.display()),
            TlsError::NoCaCertificates(paths) => {
                write!(f, "no CA certificates found in {paths:?}")
            }
            TlsError::Rejected(e) => write!(f, "certificate and key refused: {e}"),
            TlsError::ServerName(host) => write!(f, "bad TLS server name {host:?}"),
            TlsError::Unusable { path, why } => {
                write!(
                    f,
                    "clients will refuse the certificate in {}: {why}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Tls(TlsError::Rejected(e)) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for ConfigError {}
impl std::error::Error for TlsError {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::InvalidConfig(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Self {
        Error::Tls(e)
    }
}

impl From<TopicError> for Error {
    fn from(e: TopicError) -> Self {
        Error::InvalidTopic(e)
    }
}

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        match e {
            Invalid::Topic(t) => Error::InvalidTopic(t),
            Invalid::Value(name) => Error::InvalidValue(name),
            Invalid::Empty => Error::EmptyUpdate,
            Invalid::Book(b) => Error::InvalidBook(b),
        }
    }
}
