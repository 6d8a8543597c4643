//! The C ABI of tickcast: what `include/tickcast.h` declares.
//!
//! Conventions (as in rustls-ffi):
//! - every name starts with `tickcast_`; objects are opaque handles, each a
//!   `Box` behind its pointer ([`handle`] holds every cast);
//! - the first parameter is the object, then inputs, then outputs;
//! - every fallible function returns a `tickcast_result`; outputs are written
//!   only on success;
//! - each `_new`/`_start` has one `_free`; `_free(NULL)` does nothing;
//! - NULL where a pointer is required returns `TICKCAST_RESULT_NULL_PARAMETER`,
//!   a string that is not UTF-8 returns `TICKCAST_RESULT_INVALID_UTF8`;
//! - no panic crosses the boundary: it becomes `TICKCAST_RESULT_PANIC`.
//!
//! This crate holds no server logic; it translates to the `tickcast` crate.
//! One file per handle type: `config`, `server`, `remote`; `update` is the
//! update struct both publish paths read.
#![allow(non_camel_case_types)]

mod book;
mod config;
mod error;
mod handle;
mod panic;
mod remote;
mod server;
mod update;

#[cfg(test)]
mod tests;

pub use book::{tickcast_level, TICKCAST_LEVELS_REPLACE, TICKCAST_SIDE_ASK, TICKCAST_SIDE_BID};
pub use config::*;
pub use error::{tickcast_result, tickcast_result_str, tickcast_version};
pub use remote::*;
pub use server::*;
pub use update::*;
