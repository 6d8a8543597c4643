//! `tickcast_server`: an embedded server and publishing into it.

use crate::book::{read_levels, tickcast_level};
use crate::config::tickcast_config;
use crate::error::{result, tickcast_result};
use crate::handle::{free, into_handle, write_message, write_out, Handle};
use crate::panic::{ffi_panic_boundary, try_not_null, try_ref, try_str};
use crate::update::{read_batch, read_update, tickcast_update, write_field};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};
use tickcast::{Publisher, Server};

/// A running embedded server. Publishing functions may be called on one
/// server from many threads at once; `tickcast_server_free` must not race them.
pub struct tickcast_server {
    _private: [u8; 0],
}

pub(crate) struct ServerBox {
    server: Server,
    publisher: Publisher,
    /// The C interest callback in force (`tickcast_set_interest_callback`)
    /// and its generation: each call registers a new Rust callback that
    /// acts only while its generation is the current one.
    interest: Arc<Mutex<(u64, Option<CInterest>)>>,
}

/// Called when a topic (`pattern` false) or a pattern such as `"FX.*"`
/// (`pattern` true) gains its first subscriber on the server (`active`
/// true) or loses its last. `selector` is NUL-terminated and valid only
/// during the call.
pub type tickcast_interest_fn = Option<
    unsafe extern "C" fn(
        selector: *const c_char,
        pattern: bool,
        active: bool,
        user_data: *mut c_void,
    ),
>;

/// A C callback and its `user_data`.
#[derive(Clone, Copy)]
struct CInterest {
    f: unsafe extern "C" fn(*const c_char, bool, bool, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the caller of tickcast_set_interest_callback promises that
// `user_data` may be used from the tickcast-interest thread (documented).
unsafe impl Send for CInterest {}

impl Handle for tickcast_server {
    type Rust = ServerBox;
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
        let config = try_ref!(config).clone();
        let server_out = try_not_null!(server_out);
        match Server::start(config) {
            Ok(server) => {
                let publisher = server.publisher();
                let interest = Arc::default();
                let handle = into_handle::<tickcast_server>(ServerBox {
                    server,
                    publisher,
                    interest,
                });
                // SAFETY: non-NULL out-pointer supplied by the caller.
                unsafe { write_out(server_out, handle) };
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
        let server = try_ref!(server);
        let port_out = try_not_null!(port_out);
        // SAFETY: the caller's non-NULL out-pointer.
        unsafe { write_out(port_out, server.server.local_addr().port()) };
        tickcast_result::Ok
    }
}

/// Applies a new configuration to the running server without a restart:
/// tokens, JWT key files (read again), allowed origins, limits and the log
/// level take effect for new connections at once; open connections stay,
/// except those whose static token is no longer configured, which are
/// closed with 1008. Settings that need a restart (listen address, shards,
/// topic table sizes, history) keep their running values. A configuration
/// that fails anywhere changes nothing: the result says why
/// (`TICKCAST_RESULT_INVALID_ARGUMENT` for a bad value or an unreadable key
/// file) and the reason is written to `message` as a NUL-terminated string,
/// cut to `message_len` bytes (`message` may be NULL). The configuration is
/// copied. Thread-safe; reloads run one at a time.
#[no_mangle]
pub extern "C" fn tickcast_server_reload(
    server: *const tickcast_server,
    config: *const tickcast_config,
    message: *mut c_char,
    message_len: usize,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_ref!(server);
        let config = try_ref!(config).clone();
        match server.server.reload(config) {
            Ok(_) => {
                write_message(message, message_len, "");
                tickcast_result::Ok
            }
            Err(e) => {
                write_message(message, message_len, &e.to_string());
                tickcast_result::from(&e)
            }
        }
    }
}

/// Sets the function called when a topic or a pattern gains its first
/// subscriber anywhere on the server or loses its last (unsubscribe, close,
/// or a connection that drops), so a feed handler can subscribe upstream
/// only to what is wanted. `callback` is first called once for each topic
/// and pattern wanted at the time. NULL stops the calls. A later call
/// replaces the function and its `user_data`.
///
/// The callback runs on tickcast's `tickcast-interest` thread, one event at
/// a time, in order, never on the caller's thread and never while tickcast
/// holds a lock, so it may call `tickcast_publish` (or block: later events
/// wait). `user_data` is passed back untouched and must be usable from that
/// thread until the callback is replaced or the server is freed. After
/// `tickcast_server_free` returns, it is not called again.
#[no_mangle]
pub extern "C" fn tickcast_set_interest_callback(
    server: *const tickcast_server,
    callback: tickcast_interest_fn,
    user_data: *mut c_void,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_ref!(server);
        let next = callback.map(|f| CInterest { f, user_data });
        let generation = {
            let mut slot = server.interest.lock().unwrap_or_else(|p| p.into_inner());
            slot.0 += 1;
            slot.1 = next;
            slot.0
        };
        if next.is_some() {
            // Registered anew, so it first hears what is wanted now.
            let seen = server.interest.clone();
            server.server.on_interest(move |i| {
                // Copied out, so no lock is held during the call.
                let cb = match *seen.lock().unwrap_or_else(|p| p.into_inner()) {
                    (g, Some(cb)) if g == generation => cb,
                    _ => return,
                };
                // A selector never holds a NUL (topic names are checked).
                let Ok(text) = CString::new(i.selector.as_str()) else {
                    return;
                };
                // SAFETY: a function pointer the caller registered, with
                // its own user_data, and a string valid for the call.
                unsafe { (cb.f)(text.as_ptr(), i.pattern, i.active, cb.user_data) };
            });
        }
        tickcast_result::Ok
    }
}

/// Shuts the server down and frees it: stops accepting, delivers updates
/// already queued, closes every WebSocket with 1001, joins every thread.
/// NULL is fine. No other call on this handle may run during or after it.
#[no_mangle]
pub extern "C" fn tickcast_server_free(server: *mut tickcast_server) {
    ffi_panic_boundary! {
        // From tickcast_server_start, freed once (caller's contract).
        if let Some(b) = free(server) {
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
        let server = try_ref!(server);
        match read_update(topic, update) {
            Ok(u) => result(server.publisher.publish(u)),
            Err(r) => r,
        }
    }
}

/// Writes to `*index_out` the index of the server's extra field `name`
/// (`[fields] extra`): set `extra[index]` and bit `index` of
/// `extra_fields` in a `tickcast_update` to publish it. An unknown name
/// returns `TICKCAST_RESULT_INVALID_ARGUMENT`. Look names up once, not per
/// update.
#[no_mangle]
pub extern "C" fn tickcast_server_field(
    server: *mut tickcast_server,
    name: *const c_char,
    index_out: *mut u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_ref!(server);
        let name = try_str!(name);
        let out = try_not_null!(index_out);
        write_field(server.server.field(name), out)
    }
}

/// Queues a change to the order book of `topic` (its name must end with
/// `.book`): `count` levels, applied in order (size 0 removes a level), or
/// with `TICKCAST_LEVELS_REPLACE` in `flags` the whole book. Waits while the
/// ingest queue is full. A NaN or infinite price, a negative size, or a topic
/// that is not a book returns `TICKCAST_RESULT_INVALID_BOOK` and queues
/// nothing; a change that would cross the book is refused when applied (the
/// book is left as it was; `/metrics` counts it). Thread-safe. The levels
/// are copied.
#[no_mangle]
pub extern "C" fn tickcast_publish_levels(
    server: *mut tickcast_server,
    topic: *const c_char,
    levels: *const tickcast_level,
    count: usize,
    flags: u32,
) -> tickcast_result {
    ffi_panic_boundary! {
        let server = try_ref!(server);
        match read_levels(topic, levels, count, flags) {
            Ok(u) => result(server.publisher.publish(u)),
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
        let server = try_ref!(server);
        match read_update(topic, update) {
            Ok(u) => result(server.publisher.try_publish(u)),
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
        let server = try_ref!(server);
        let batch = match read_batch(topics, updates, count) {
            Ok(b) => b,
            Err(r) => return r,
        };
        result(server.publisher.publish_batch(batch))
    }
}

/// Clears `topic`: subscribers get a `cleared` event, the topic leaves the
/// `topics` list, its value and history are freed, and its next update
/// starts a new epoch at `seq` 1. Subscriptions stay in place. In order with
/// this thread's publishes; waits while the ingest queue is full. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_clear(
    server: *mut tickcast_server,
    topic: *const c_char,
) -> tickcast_result {
    ffi_panic_boundary! {
        topic_op(server, topic, |p, t| p.clear(t))
    }
}

/// Marks `topic` stale: subscribers get `{"event":"status","state":"stale"}`
/// and snapshots say `"stale": true` until its next update or
/// `tickcast_mark_live`. For a feed handler that lost its upstream. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_mark_stale(
    server: *mut tickcast_server,
    topic: *const c_char,
) -> tickcast_result {
    ffi_panic_boundary! {
        topic_op(server, topic, |p, t| p.mark_stale(t))
    }
}

/// Marks a stale `topic` live again without an update. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_mark_live(
    server: *mut tickcast_server,
    topic: *const c_char,
) -> tickcast_result {
    ffi_panic_boundary! {
        topic_op(server, topic, |p, t| p.mark_live(t))
    }
}

/// Sets how long `topic` may go without an update before it is marked stale,
/// in milliseconds; 0 returns it to the server's `stale_after`. Thread-safe.
#[no_mangle]
pub extern "C" fn tickcast_set_stale_after(
    server: *mut tickcast_server,
    topic: *const c_char,
    stale_after_ms: u64,
) -> tickcast_result {
    ffi_panic_boundary! {
        let after = (stale_after_ms > 0).then(|| std::time::Duration::from_millis(stale_after_ms));
        topic_op(server, topic, |p, t| p.set_stale_after(t, after))
    }
}

/// The shared body of the topic operations: the server and topic checked
/// (NULL, UTF-8), then `op` on the server's publisher.
fn topic_op(
    server: *mut tickcast_server,
    topic: *const c_char,
    op: impl FnOnce(&Publisher, &str) -> tickcast::Result<()>,
) -> tickcast_result {
    let server = try_ref!(server);
    result(op(&server.publisher, try_str!(topic)))
}
