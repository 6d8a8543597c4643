//! The C ABI of tickcast: what `include/tickcast.h` declares.
//!
//! Conventions (as in rustls-ffi):
//! - every name starts with `tickcast_`; objects are opaque handles;
//! - the first parameter is the object, then inputs, then outputs;
//! - every fallible function returns a `tickcast_result`; outputs are written
//!   only on success;
//! - each `_new`/`_start` has one `_free`; `_free(NULL)` does nothing;
//! - NULL where a pointer is required returns `TICKCAST_RESULT_NULL_PARAMETER`,
//!   a string that is not UTF-8 returns `TICKCAST_RESULT_INVALID_UTF8`;
//! - no panic crosses the boundary: it becomes `TICKCAST_RESULT_PANIC`.
//!
//! This crate holds no server logic; it translates to the `tickcast` crate.
#![allow(non_camel_case_types)]

mod error;
mod panic;

pub use error::{tickcast_result, tickcast_result_str};

use panic::{ffi_panic_boundary, try_not_null, try_str};
use std::ffi::c_char;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tickcast::config::MAX_SHARDS;
use tickcast::{Config, Publisher, RemoteConfig, RemotePublisher, Server, Update};

/// `fields` bit: `bid` is set.
pub const TICKCAST_FIELD_BID: u32 = 1 << 0;
/// `fields` bit: `ask` is set.
pub const TICKCAST_FIELD_ASK: u32 = 1 << 1;
/// `fields` bit: `last` is set.
pub const TICKCAST_FIELD_LAST: u32 = 1 << 2;
/// `fields` bit: `bid_size` is set.
pub const TICKCAST_FIELD_BID_SIZE: u32 = 1 << 3;
/// `fields` bit: `ask_size` is set.
pub const TICKCAST_FIELD_ASK_SIZE: u32 = 1 << 4;
/// `fields` bit: `last_size` is set.
pub const TICKCAST_FIELD_LAST_SIZE: u32 = 1 << 5;
/// `fields` bit: `volume` is set.
pub const TICKCAST_FIELD_VOLUME: u32 = 1 << 6;
const ALL_FIELDS: u32 = (1 << 7) - 1;

/// One price update. Only the fields whose `TICKCAST_FIELD_*` bit is set in
/// `fields` are published; the others are ignored (and may hold anything).
/// Set fields must be finite. `timestamp_ns` is nanoseconds since the Unix
/// epoch; 0 means "now".
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tickcast_update {
    /// Bitwise OR of `TICKCAST_FIELD_*`.
    pub fields: u32,
    /// Best bid price.
    pub bid: f64,
    /// Best ask price.
    pub ask: f64,
    /// Last trade price.
    pub last: f64,
    /// Quantity at the best bid.
    pub bid_size: f64,
    /// Quantity at the best ask.
    pub ask_size: f64,
    /// Quantity of the last trade.
    pub last_size: f64,
    /// Cumulative traded volume.
    pub volume: f64,
    /// Publisher timestamp, ns since the Unix epoch; 0 = now.
    pub timestamp_ns: u64,
}

/// Server configuration, built with `tickcast_config_new` and the setters.
/// Not thread-safe: configure from one thread, then start servers from it.
pub struct tickcast_config {
    _private: [u8; 0],
}

/// A running embedded server. Publishing functions may be called on one
/// server from many threads at once; `tickcast_server_free` must not race them.
pub struct tickcast_server {
    _private: [u8; 0],
}

struct ServerBox {
    server: Server,
    publisher: Publisher,
}

/// Reinterprets a handle as the Rust object behind it.
///
/// SAFETY: `p` must be non-NULL and come from the matching constructor and
/// not have been freed (the header's ownership rules).
unsafe fn config_mut<'a>(p: *mut tickcast_config) -> &'a mut Config {
    &mut *(p as *mut Config)
}

unsafe fn config_ref<'a>(p: *const tickcast_config) -> &'a Config {
    &*(p as *const Config)
}

unsafe fn server_ref<'a>(p: *const tickcast_server) -> &'a ServerBox {
    &*(p as *const ServerBox)
}

/// Creates a configuration with tickcast's defaults (listen `127.0.0.1:8080`,
/// one shard per core). Free it with `tickcast_config_free`. Returns NULL only
/// if allocation failed.
#[no_mangle]
pub extern "C" fn tickcast_config_new() -> *mut tickcast_config {
    ffi_panic_boundary! {
        Box::into_raw(Box::new(Config::default())) as *mut tickcast_config
    }
}

/// Frees a configuration. NULL is fine. Servers started from it are not affected.
#[no_mangle]
pub extern "C" fn tickcast_config_free(config: *mut tickcast_config) {
    ffi_panic_boundary! {
        if !config.is_null() {
            // SAFETY: from tickcast_config_new, freed once (caller's contract).
            drop(unsafe { Box::from_raw(config as *mut Config) });
        }
    }
}

/// Replaces the whole configuration with one written in the TOML of
/// `tickcastd`'s config file (docs/OPERATIONS.md lists every key: `listen`,
/// `shards`, `ingest_capacity`, `[limits]`, `[auth]`, `[tls]`); keys not given
/// take their defaults, and the daemon-only `[demo]` and `log_level` are
/// ignored. On failure the configuration is unchanged,
/// `TICKCAST_RESULT_INVALID_ARGUMENT` is returned, and the reason (which key,
/// what is wrong) is written to `message` as a NUL-terminated string, cut to
/// `message_len` bytes. `message` may be NULL (then `message_len` is ignored).
#[no_mangle]
pub extern "C" fn tickcast_config_load_toml(
    config: *mut tickcast_config,
    toml: *const c_char,
    message: *mut c_char,
    message_len: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_not_null!(config);
        let text = try_str!(toml);
        let parsed = tickcast::daemon::parse_file(text)
            .map_err(|e| format!("invalid config: {e}"))
            .and_then(|file| {
                tickcast::daemon::DaemonConfig::merge(file, &Default::default())
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(daemon) => {
                // SAFETY: non-NULL handle from tickcast_config_new.
                *unsafe { config_mut(config) } = daemon.server;
                write_message(message, message_len, "");
                tickcast_result::Ok
            }
            Err(why) => {
                write_message(message, message_len, &why);
                tickcast_result::InvalidArgument
            }
        }
    }
}

/// Copies `text` into the caller's buffer as a C string, cut to fit (at a
/// character boundary). Nothing happens for a NULL or empty buffer.
fn write_message(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = text.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the caller gives `len` writable bytes at `buf`; n + 1 <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, buf, n);
        *buf.add(n) = 0;
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
        let config = try_not_null!(config);
        let addr = try_str!(addr);
        let Some(parsed) = parse_addr(addr) else {
            return tickcast_result::InvalidAddress;
        };
        // SAFETY: non-NULL handle from tickcast_config_new.
        unsafe { config_mut(config) }.listen = parsed;
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
        let config = try_not_null!(config);
        if shards == 0 || shards as usize > MAX_SHARDS {
            return tickcast_result::InvalidArgument;
        }
        // SAFETY: non-NULL handle from tickcast_config_new.
        unsafe { config_mut(config) }.shards = shards as usize;
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
        let config = try_not_null!(config);
        if capacity == 0 {
            return tickcast_result::InvalidArgument;
        }
        // SAFETY: non-NULL handle from tickcast_config_new.
        unsafe { config_mut(config) }.ingest_capacity = capacity;
        tickcast_result::Ok
    }
}

/// Starts a server: binds the listener and starts its threads. On success
/// writes a new handle to `*server_out`, which the caller frees with
/// `tickcast_server_free`. The configuration is copied and may be freed at once.
#[no_mangle]
pub extern "C" fn tickcast_server_start(
    config: *const tickcast_config,
    server_out: *mut *mut tickcast_server,
) -> tickcast_result {
    ffi_panic_boundary! {
        let config = try_not_null!(config);
        let server_out = try_not_null!(server_out);
        // SAFETY: non-NULL handle from tickcast_config_new.
        let config = unsafe { config_ref(config) }.clone();
        match Server::start(config) {
            Ok(server) => {
                let publisher = server.publisher();
                let b = Box::new(ServerBox { server, publisher });
                // SAFETY: non-NULL out-pointer supplied by the caller.
                unsafe { *server_out = Box::into_raw(b) as *mut tickcast_server };
                tickcast_result::Ok
            }
            Err(e) => tickcast_result::from(&e),
        }
    }
}

/// Writes the port the server listens on to `*port_out`.
#[no_mangle]
pub extern "C" fn tickcast_server_port(
    server: *const tickcast_server,
    port_out: *mut u16,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_not_null!(server);
        let port_out = try_not_null!(port_out);
        // SAFETY: live handle and caller's out-pointer.
        unsafe { *port_out = server_ref(server).server.local_addr().port() };
        tickcast_result::Ok
    }
}

/// Shuts the server down and frees it: stops accepting, delivers updates
/// already queued, closes every WebSocket with 1001, joins every thread.
/// NULL is fine. No other call on this handle may run during or after it.
#[no_mangle]
pub extern "C" fn tickcast_server_free(server: *mut tickcast_server) {
    ffi_panic_boundary! {
        if !server.is_null() {
            // SAFETY: from tickcast_server_start, freed once (caller's contract).
            let b = unsafe { Box::from_raw(server as *mut ServerBox) };
            b.server.shutdown();
        }
    }
}

/// Queues an update for `topic`, waiting while the ingest queue is full.
/// Thread-safe. `topic` is copied; the caller keeps ownership of both arguments.
#[no_mangle]
pub extern "C" fn tickcast_publish(
    server: *mut tickcast_server,
    topic: *const c_char,
    update: *const tickcast_update,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_not_null!(server);
        match read_update(topic, update) {
            // SAFETY: non-NULL handle from tickcast_server_start.
            Ok(u) => result(unsafe { server_ref(server) }.publisher.publish(u)),
            Err(r) => r,
        }
    }
}

/// Like `tickcast_publish`, but returns `TICKCAST_RESULT_QUEUE_FULL` at once
/// instead of waiting when the ingest queue is full. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_try_publish(
    server: *mut tickcast_server,
    topic: *const c_char,
    update: *const tickcast_update,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_not_null!(server);
        match read_update(topic, update) {
            // SAFETY: non-NULL handle from tickcast_server_start.
            Ok(u) => result(unsafe { server_ref(server) }.publisher.try_publish(u)),
            Err(r) => r,
        }
    }
}

/// Queues `count` updates in order: `updates[i]` for `topics[i]`, waiting while
/// the queue is full. Every topic and update is checked first; if any is
/// invalid nothing is queued and its code is returned. Thread-safe; a batch
/// from one thread stays in order, but batches from several threads may
/// interleave. `count` 0 is fine (and `topics`/`updates` may then be NULL).
#[no_mangle]
pub extern "C" fn tickcast_publish_batch(
    server: *mut tickcast_server,
    topics: *const *const c_char,
    updates: *const tickcast_update,
    count: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_not_null!(server);
        let batch = match read_batch(topics, updates, count) {
            Ok(b) => b,
            Err(r) => return r,
        };
        // SAFETY: non-NULL live handle.
        result(unsafe { server_ref(server) }.publisher.publish_batch(batch))
    }
}

/// A connection that publishes into a tickcast server in another process
/// (`ws://host:port/publish`). Reconnects by itself with backoff; updates that
/// a dropped connection may have lost are counted (`tickcast_remote_lost`).
/// Publishing functions may be called from many threads at once.
pub struct tickcast_remote_publisher {
    _private: [u8; 0],
}

unsafe fn remote_ref<'a>(p: *const tickcast_remote_publisher) -> &'a RemotePublisher {
    &*(p as *const RemotePublisher)
}

/// Connects to `url` (`"ws://host:port/publish"`) with a publisher `token`.
/// The first connection is made now: an unreachable server or a refused token
/// returns `TICKCAST_RESULT_IO_ERROR` (a malformed URL
/// `TICKCAST_RESULT_INVALID_ADDRESS`). On success writes a handle to
/// `*publisher_out`; free it with `tickcast_remote_publisher_free`.
#[no_mangle]
pub extern "C" fn tickcast_remote_publisher_connect(
    url: *const c_char,
    token: *const c_char,
    publisher_out: *mut *mut tickcast_remote_publisher,
) -> tickcast_result {
    ffi_panic_boundary! {
        let url = try_str!(url);
        let token = try_str!(token);
        let publisher_out = try_not_null!(publisher_out);
        connect_remote(RemoteConfig::new(url, token), publisher_out)
    }
}

/// Like `tickcast_remote_publisher_connect`, for a `wss://` server whose
/// certificate is signed by an authority in the PEM file `ca_file` (NULL: the
/// system bundle, `/etc/ssl/certs/ca-certificates.crt`). An unreadable or
/// empty `ca_file` returns `TICKCAST_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tickcast_remote_publisher_connect_ca(
    url: *const c_char,
    token: *const c_char,
    ca_file: *const c_char,
    publisher_out: *mut *mut tickcast_remote_publisher,
) -> tickcast_result {
    ffi_panic_boundary! {
        let url = try_str!(url);
        let token = try_str!(token);
        let publisher_out = try_not_null!(publisher_out);
        let mut cfg = RemoteConfig::new(url, token);
        if !ca_file.is_null() {
            cfg = cfg.tls_ca_file(try_str!(ca_file));
        }
        connect_remote(cfg, publisher_out)
    }
}

/// Queues an update for `topic`, waiting up to 5 s for room in the send queue
/// (then `TICKCAST_RESULT_QUEUE_FULL`). Returns once queued, not once the
/// server has it: see `tickcast_remote_flush`. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_remote_publish(
    publisher: *mut tickcast_remote_publisher,
    topic: *const c_char,
    update: *const tickcast_update,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_not_null!(publisher);
        match read_update(topic, update) {
            // SAFETY: live handle from tickcast_remote_publisher_connect.
            Ok(u) => result(unsafe { remote_ref(publisher) }.publish(u)),
            Err(r) => r,
        }
    }
}

/// Queues `count` updates in order (`updates[i]` for `topics[i]`); checks them
/// all first, so an invalid one queues none. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_remote_publish_batch(
    publisher: *mut tickcast_remote_publisher,
    topics: *const *const c_char,
    updates: *const tickcast_update,
    count: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_not_null!(publisher);
        let batch = match read_batch(topics, updates, count) {
            Ok(b) => b,
            Err(r) => return r,
        };
        // SAFETY: live handle.
        result(unsafe { remote_ref(publisher) }.publish_batch(batch))
    }
}

/// Waits up to `timeout_ms` until the server has acknowledged every update
/// queued so far. `TICKCAST_RESULT_TIMEOUT` if it has not.
#[no_mangle]
pub extern "C" fn tickcast_remote_flush(
    publisher: *mut tickcast_remote_publisher,
    timeout_ms: u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_not_null!(publisher);
        // SAFETY: live handle.
        result(unsafe { remote_ref(publisher) }.flush(Duration::from_millis(timeout_ms.into())))
    }
}

/// Writes to `*lost_out` how many updates may have been lost because a
/// connection dropped before the server acknowledged them.
#[no_mangle]
pub extern "C" fn tickcast_remote_lost(
    publisher: *const tickcast_remote_publisher,
    lost_out: *mut u64,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_not_null!(publisher);
        let lost_out = try_not_null!(lost_out);
        // SAFETY: live handle, caller's out-pointer.
        unsafe { *lost_out = remote_ref(publisher).lost() };
        tickcast_result::Ok
    }
}

/// Sends what is queued (waiting at most 5 s), closes the connection and frees
/// the handle. NULL is fine. No other call on this handle may run during or after it.
#[no_mangle]
pub extern "C" fn tickcast_remote_publisher_free(publisher: *mut tickcast_remote_publisher) {
    ffi_panic_boundary! {
        if !publisher.is_null() {
            // SAFETY: from tickcast_remote_publisher_connect, freed once.
            let p = unsafe { Box::from_raw(publisher as *mut RemotePublisher) };
            p.close();
        }
    }
}

/// Reads a C string argument: NULL → `NullParameter`, not UTF-8 → `InvalidUtf8`.
fn c_str<'a>(p: *const c_char) -> Result<&'a str, tickcast_result> {
    if p.is_null() {
        return Err(tickcast_result::NullParameter);
    }
    // SAFETY: the caller promises a NUL-terminated string (header docs).
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| tickcast_result::InvalidUtf8)
}

/// Reads one topic and update from the caller into an `Update`.
fn read_update(
    topic: *const c_char,
    update: *const tickcast_update,
) -> Result<Update, tickcast_result> {
    let topic = c_str(topic)?;
    if update.is_null() {
        return Err(tickcast_result::NullParameter);
    }
    // SAFETY: non-NULL, and the caller promises a readable tickcast_update.
    to_update(topic, unsafe { &*update })
}

/// Reads `count` topic/update pairs, checking all of them before anything is
/// published. `count` 0 needs no arrays.
fn read_batch(
    topics: *const *const c_char,
    updates: *const tickcast_update,
    count: usize,
) -> Result<Vec<Update>, tickcast_result> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if topics.is_null() || updates.is_null() {
        return Err(tickcast_result::NullParameter);
    }
    // SAFETY: the caller provides `count` readable elements in each array.
    let (topics, updates) = unsafe {
        (
            std::slice::from_raw_parts(topics, count),
            std::slice::from_raw_parts(updates, count),
        )
    };
    topics
        .iter()
        .zip(updates)
        .map(|(t, u)| to_update(c_str(*t)?, u))
        .collect()
}

/// Connects a remote publisher and writes the handle on success.
fn connect_remote(cfg: RemoteConfig, out: *mut *mut tickcast_remote_publisher) -> tickcast_result {
    match RemotePublisher::connect(cfg) {
        Ok(p) => {
            // SAFETY: non-NULL out-pointer checked by the caller.
            unsafe { *out = Box::into_raw(Box::new(p)) as *mut tickcast_remote_publisher };
            tickcast_result::Ok
        }
        Err(tickcast::Error::InvalidConfig(m)) if m.contains("CA") => {
            tickcast_result::InvalidArgument
        }
        Err(tickcast::Error::InvalidConfig(_)) => tickcast_result::InvalidAddress,
        Err(e) => tickcast_result::from(&e),
    }
}

fn result(r: tickcast::Result<()>) -> tickcast_result {
    match r {
        Ok(()) => tickcast_result::Ok,
        Err(e) => tickcast_result::from(&e),
    }
}

fn to_update(topic: &str, u: &tickcast_update) -> Result<Update, tickcast_result> {
    if u.fields & !ALL_FIELDS != 0 {
        return Err(tickcast_result::InvalidArgument);
    }
    let pick = |bit: u32, v: f64| (u.fields & bit != 0).then_some(v);
    let mut out = Update::new(topic).timestamp_ns(u.timestamp_ns);
    out.prices = tickcast::Prices {
        bid: pick(TICKCAST_FIELD_BID, u.bid),
        ask: pick(TICKCAST_FIELD_ASK, u.ask),
        last: pick(TICKCAST_FIELD_LAST, u.last),
        bid_size: pick(TICKCAST_FIELD_BID_SIZE, u.bid_size),
        ask_size: pick(TICKCAST_FIELD_ASK_SIZE, u.ask_size),
        last_size: pick(TICKCAST_FIELD_LAST_SIZE, u.last_size),
        volume: pick(TICKCAST_FIELD_VOLUME, u.volume),
    };
    Ok(out)
}

fn parse_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry point built exactly like the real ones, whose body panics.
    extern "C" fn panicking_entry_point() -> tickcast_result {
        ffi_panic_boundary! {
            let v: Vec<u8> = std::hint::black_box(Vec::new());
            // Index out of bounds: a real panic, not a simulated result.
            if v[3] == 0 {
                return tickcast_result::InvalidArgument;
            }
            tickcast_result::Ok
        }
    }

    extern "C" fn panicking_constructor() -> *mut tickcast_config {
        ffi_panic_boundary! {
            panic!("boom")
        }
    }

    #[test]
    fn remote_publisher_over_wss_with_a_ca_file() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("tickcast-ffi-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let server = Server::start(
            Config::default()
                .listen("127.0.0.1:0".parse().unwrap())
                .tls("127.0.0.1:0".parse().unwrap(), &cert, &key)
                .publisher_tokens(vec!["ffi-tls-token".into()]),
        )
        .unwrap();
        let url = std::ffi::CString::new(format!(
            "wss://localhost:{}/publish",
            server.tls_addr().unwrap().port()
        ))
        .unwrap();
        let token = c"ffi-tls-token";
        let ca = std::ffi::CString::new(cert.to_str().unwrap()).unwrap();
        let mut p: *mut tickcast_remote_publisher = std::ptr::null_mut();
        // The system bundle does not trust a self-signed test certificate.
        let r = tickcast_remote_publisher_connect_ca(
            url.as_ptr(),
            token.as_ptr(),
            std::ptr::null(),
            &mut p,
        );
        assert_eq!(r, tickcast_result::IoError);
        assert!(p.is_null());
        let bad = c"/nonexistent/ca.pem";
        let r = tickcast_remote_publisher_connect_ca(
            url.as_ptr(),
            token.as_ptr(),
            bad.as_ptr(),
            &mut p,
        );
        assert_eq!(r, tickcast_result::InvalidArgument);
        let r =
            tickcast_remote_publisher_connect_ca(url.as_ptr(), token.as_ptr(), ca.as_ptr(), &mut p);
        assert_eq!(r, tickcast_result::Ok);
        let u = tickcast_update {
            fields: TICKCAST_FIELD_BID,
            bid: 42.5,
            ..Default::default()
        };
        assert_eq!(
            tickcast_remote_publish(p, c"TLS.C".as_ptr(), &u),
            tickcast_result::Ok
        );
        assert_eq!(tickcast_remote_flush(p, 10_000), tickcast_result::Ok);
        // Acknowledged means queued for the router; give it a moment to sequence.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while server.snapshot("TLS.C").is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            server.snapshot("TLS.C").map(|s| s.prices.bid),
            Some(Some(42.5))
        );
        tickcast_remote_publisher_free(p);
    }

    #[test]
    fn a_panic_inside_an_entry_point_becomes_the_panic_code() {
        assert_eq!(panicking_entry_point(), tickcast_result::Panic);
        assert!(panicking_constructor().is_null());
    }

    #[test]
    fn every_exported_function_runs_inside_the_panic_boundary() {
        let src = include_str!("lib.rs");
        let mut checked = 0;
        for chunk in src.split("pub extern \"C\" fn ").skip(1) {
            let body_start = chunk.find('{').unwrap();
            let head = &chunk[..body_start];
            let after = chunk[body_start + 1..].trim_start();
            assert!(
                after.starts_with("ffi_panic_boundary!"),
                "{} is not wrapped in ffi_panic_boundary!",
                head.split('(').next().unwrap()
            );
            checked += 1;
        }
        assert!(checked >= 10, "found only {checked} entry points");
    }
}
