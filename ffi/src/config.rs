//! `tickcast_config`: building a server's configuration from C.

use crate::error::tickcast_result;
use crate::handle::{free, into_handle, write_message, Handle};
use crate::panic::{ffi_panic_boundary, try_mut, try_str};
use std::ffi::c_char;
use std::net::{SocketAddr, ToSocketAddrs};
use tickcast::config::{MAX_ROUTERS, MAX_SHARDS};
use tickcast::Config;

/// Server configuration, built with `tickcast_config_new` and the setters.
/// Not thread-safe: configure from one thread, then start servers from it.
pub struct tickcast_config {
    _private: [u8; 0],
}

impl Handle for tickcast_config {
    type Rust = Config;
}

/// Creates a configuration with tickcast's defaults (listen `127.0.0.1:8080`,
/// one shard per core). Free it with `tickcast_config_free`. Returns NULL only
/// if allocation failed.
#[no_mangle]
pub extern "C" fn tickcast_config_new() -> *mut tickcast_config {
    ffi_panic_boundary! {
        into_handle::<tickcast_config>(Config::default())
    }
}

/// Frees a configuration. NULL is fine. Servers started from it are not affected.
#[no_mangle]
pub extern "C" fn tickcast_config_free(config: *mut tickcast_config) {
    ffi_panic_boundary! {
        // From tickcast_config_new, freed once (caller's contract).
        drop(free(config));
    }
}

/// The size of a buffer that holds any message the library writes (with its
/// NUL): `char why[TICKCAST_MESSAGE_MAX]`. A smaller buffer gets the message
/// cut at a character boundary; a longer one is never needed.
pub const TICKCAST_MESSAGE_MAX: usize = 1024;

/// Replaces the whole configuration with one written in the TOML of
/// `tickcastd`'s config file (docs/OPERATIONS.md lists every key: `listen`,
/// `shards`, `ingest_capacity`, `[limits]`, `[auth]`, `[tls]`); keys not given
/// take their defaults, and the daemon-only `[demo]` and `log_level` are
/// ignored. On failure the configuration is unchanged,
/// `TICKCAST_RESULT_INVALID_ARGUMENT` is returned, and the reason (which key,
/// what is wrong) is written to `message` as a NUL-terminated string, cut to
/// `message_len` bytes (`TICKCAST_MESSAGE_MAX` always suffices). `message` may be NULL (then `message_len` is ignored).
#[no_mangle]
pub extern "C" fn tickcast_config_load_toml(
    config: *mut tickcast_config,
    toml: *const c_char,
    message: *mut c_char,
    message_len: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        let text = try_str!(toml);
        match Config::from_toml(text) {
            Ok(parsed) => {
                *config = parsed;
                write_message(message, message_len, "");
                tickcast_result::Ok
            }
            Err(e) => {
                write_message(message, message_len, &e.to_string());
                tickcast_result::InvalidArgument
            }
        }
    }
}

/// Sets the listen address, `"host:port"` (e.g. `"127.0.0.1:0"`, `"[::1]:8080"`);
/// port 0 picks a free port (read it with `tickcast_server_port`).
#[no_mangle]
pub extern "C" fn tickcast_config_set_listen(
    config: *mut tickcast_config,
    addr: *const c_char,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        let addr = try_str!(addr);
        let Some(parsed) = parse_addr(addr) else {
            return tickcast_result::InvalidAddress;
        };
        config.listen = parsed;
        tickcast_result::Ok
    }
}

/// Sets the number of router threads, 1 to 16: each topic is numbered by
/// one of them (default 2).
#[no_mangle]
pub extern "C" fn tickcast_config_set_routers(
    config: *mut tickcast_config,
    routers: u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        if routers == 0 || routers as usize > MAX_ROUTERS {
            return tickcast_result::InvalidArgument;
        }
        config.routers = routers as usize;
        tickcast_result::Ok
    }
}

/// Sets the number of shard threads, 1 to 64.
#[no_mangle]
pub extern "C" fn tickcast_config_set_shards(
    config: *mut tickcast_config,
    shards: u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        if shards == 0 || shards as usize > MAX_SHARDS {
            return tickcast_result::InvalidArgument;
        }
        config.shards = shards as usize;
        tickcast_result::Ok
    }
}

/// Sets the capacity of the ingest queue, in updates (at least 1). When it is
/// full `tickcast_publish` waits and `tickcast_try_publish` returns
/// `TICKCAST_RESULT_QUEUE_FULL`.
#[no_mangle]
pub extern "C" fn tickcast_config_set_ingest_capacity(
    config: *mut tickcast_config,
    capacity: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        if capacity == 0 {
            return tickcast_result::InvalidArgument;
        }
        config.ingest_capacity = capacity;
        tickcast_result::Ok
    }
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}
