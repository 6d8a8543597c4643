//! tickcast: a market-data fan-out server.
//!
//! Publishers push price updates keyed by topic; tickcast keeps the latest
//! merged value of every topic, numbers each topic's updates without gaps, and
//! pushes every update to every WebSocket subscriber of that topic.
//!
//! The path of an update, module by module: [`ingest`] (publisher handles and
//! the bounded channel) → `router` (sequencing in [`topics`], encoding once per
//! format in [`wire`]) → `shard` (event loop, one per thread) → `conn` (one
//! socket) → the subscriber. See `docs/PROTOCOL.md` for the wire protocol.
#![deny(missing_docs)]

pub mod config;
mod conn;
pub mod daemon;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod index;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod remote;
mod router;
mod server;
mod shard;
mod timer;
pub mod topics;
pub mod transport;
pub mod update;
pub mod wire;

#[doc(hidden)]
pub use router::bench as __bench_router;

pub use config::Config;
pub use error::{Error, Result};
pub use ingest::Publisher;
pub use remote::{RemoteConfig, RemotePublisher};
pub use server::Server;
pub use topics::Snapshot;
pub use update::{now_ns, Prices, Update};
pub use wire::Format;
