//! tickcast: a market-data fan-out server.
//!
//! Publishers push price updates keyed by topic; tickcast keeps the latest
//! merged value of every topic, numbers each topic's updates without gaps, and
//! pushes every update to every WebSocket subscriber of that topic.
//!
//! The crate is layered (docs/ARCHITECTURE.md): `engine` is the data plane
//! without sockets (updates, the topic table, the router thread, publisher
//! handles); `net` is the network side (shard event loops, connections, their
//! queues, TLS, HTTP); `wire` holds the bytes on the wire; `server` wires the
//! threads together. What a user needs is re-exported here: [`Server`],
//! [`Config`], [`Publisher`], [`Update`], [`RemotePublisher`], the error
//! types, and [`publish`], the network publisher protocol. See
//! `docs/PROTOCOL.md` for the subscriber protocol.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// The README's Rust code runs as a doctest, so it keeps compiling and
// working as written (tests/doc_snippets.rs runs its other blocks).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeRust;

mod access;
mod admin;
mod cluster;
pub mod config;
pub mod daemon;
mod engine;
pub mod error;
#[doc(hidden)]
pub mod faults;
#[doc(hidden)]
pub mod fuzzing;
pub mod interest;
#[doc(hidden)]
pub mod internals;
pub mod logging;
mod metrics;
mod model;
mod net;
pub mod reload;
pub mod remote;
mod server;
mod wire;

pub use config::Config;
pub use engine::ingest::Publisher;
pub use engine::table::Snapshot;
pub use error::{ConfigError, Error, Result, TlsError, TopicError};
pub use interest::Interest;
pub use model::book::{checksum as book_checksum, BookError, Level, Levels, Side, DEPTHS};
pub use model::format::Format;
pub use model::update::{now_ns, Extra, Field, Prices, Update, MAX_EXTRA};
pub use reload::Reloaded;
pub use remote::{RemoteConfig, RemotePublisher, Subscriber, SubscriberConfig};
pub use server::Server;
pub use wire::publish;
