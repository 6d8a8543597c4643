//! `tickcast_remote_publisher`: publishing into a daemon in another process.

use crate::book::{read_levels, tickcast_level};
use crate::error::{result, tickcast_result};
use crate::handle::{free, into_handle, write_out, Handle};
use crate::panic::{ffi_panic_boundary, try_not_null, try_ref, try_str};
use crate::update::{read_batch, read_update, tickcast_update, write_field};
use std::ffi::c_char;
use std::time::Duration;
use tickcast::{RemoteConfig, RemotePublisher};

/// A connection that publishes into a tickcast server in another process
/// (`ws://host:port/publish`). Reconnects by itself with backoff; updates that
/// a dropped connection may have lost are counted (`tickcast_remote_lost`).
/// Publishing functions may be called from many threads at once.
pub struct tickcast_remote_publisher {
    _private: [u8; 0],
}

impl Handle for tickcast_remote_publisher {
    type Rust = RemotePublisher;
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
        let publisher = try_ref!(publisher);
        match read_update(topic, update) {
            Ok(u) => result(publisher.publish(u)),
            Err(r) => r,
        }
    }
}

/// Writes to `*index_out` the index of the server's extra field `name`, as
/// the server announced its fields when this publisher connected (see
/// `tickcast_server_field`). An unknown name returns
/// `TICKCAST_RESULT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tickcast_remote_field(
    publisher: *mut tickcast_remote_publisher,
    name: *const c_char,
    index_out: *mut u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_ref!(publisher);
        let name = try_str!(name);
        let out = try_not_null!(index_out);
        write_field(publisher.field(name), out)
    }
}

/// Queues a change to the order book of `topic` on the server, as
/// `tickcast_publish_levels` does in process (same levels, flags and
/// checks), waiting up to 5 s for room in the send queue. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_remote_publish_levels(
    publisher: *mut tickcast_remote_publisher,
    topic: *const c_char,
    levels: *const tickcast_level,
    count: usize,
    flags: u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_ref!(publisher);
        match read_levels(topic, levels, count, flags) {
            Ok(u) => result(publisher.publish(u)),
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
        let publisher = try_ref!(publisher);
        let batch = match read_batch(topics, updates, count) {
            Ok(b) => b,
            Err(r) => return r,
        };
        result(publisher.publish_batch(batch))
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
        let publisher = try_ref!(publisher);
        result(publisher.flush(Duration::from_millis(timeout_ms.into())))
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
        let publisher = try_ref!(publisher);
        let lost_out = try_not_null!(lost_out);
        // SAFETY: the caller's non-NULL out-pointer.
        unsafe { write_out(lost_out, publisher.lost()) };
        tickcast_result::Ok
    }
}

/// Sends what is queued (waiting at most 5 s), closes the connection and frees
/// the handle. NULL is fine. No other call on this handle may run during or after it.
#[no_mangle]
pub extern "C" fn tickcast_remote_publisher_free(publisher: *mut tickcast_remote_publisher) {
    ffi_panic_boundary! {
        // From tickcast_remote_publisher_connect, freed once (caller's contract).
        if let Some(p) = free(publisher) {
            p.close();
        }
    }
}

/// Connects a remote publisher and writes the handle on success.
fn connect_remote(cfg: RemoteConfig, out: *mut *mut tickcast_remote_publisher) -> tickcast_result {
    match RemotePublisher::connect(cfg) {
        Ok(p) => {
            // SAFETY: non-NULL out-pointer checked by the caller.
            unsafe { write_out(out, into_handle::<tickcast_remote_publisher>(p)) };
            tickcast_result::Ok
        }
        Err(e) => tickcast_result::from(&e),
    }
}

/// Queues a clear of `topic`, in order with this publisher's updates: its
/// subscribers get a `cleared` event and its next update starts a new epoch
/// at `seq` 1. Waits up to 5 s for room like `tickcast_remote_publish`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_remote_clear(
    publisher: *mut tickcast_remote_publisher,
    topic: *const c_char,
) -> tickcast_result {
    ffi_panic_boundary! {
        let publisher = try_ref!(publisher);
        result(publisher.clear(try_str!(topic)))
    }
}
