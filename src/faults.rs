//! Fault injection for the tests of what a bug costs: a panic while one
//! connection is handled must close that connection alone (1011), and a
//! panic in a shard's loop must fail `/healthz` and end `tickcastd` with a
//! non-zero status. Production code reads one relaxed atomic where a fault
//! can be injected; nothing is armed unless a test arms it (or sets
//! `TICKCAST_FAULT` for a daemon it starts).

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Where to panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Nothing armed.
    None = 0,
    /// The next `subscribe` to the topic `tickcast-test-panic` panics
    /// inside its connection's handling.
    Subscribe = 1,
    /// The next loop turn of a shard other than the accepting one (shard
    /// 0, which then still answers `/healthz`) panics outside any
    /// connection's handling.
    ShardLoop = 2,
    /// `Server::start` fails after its shard threads have started.
    Start = 3,
    /// Not a panic and not disarmed once seen: while armed, every shard
    /// cuts every router batch after its first `EVENTS_PER_CLOCK` events
    /// as if its mail slice had run out, so tests see the rest delivered
    /// in order in later turns.
    CutBatches = 4,
}

static ARMED: AtomicU8 = AtomicU8::new(Fault::None as u8);

/// The topic whose subscribe panics while `Fault::Subscribe` is armed.
pub const PANIC_TOPIC: &str = "tickcast-test-panic";

/// Arms a fault (for tests only).
pub fn arm(f: Fault) {
    ARMED.store(f as u8, Relaxed);
}

/// Arms the fault `TICKCAST_FAULT` names (`subscribe` or `shard_loop`),
/// if it is set: how a test arms a daemon it starts.
pub fn arm_from_env() {
    match std::env::var("TICKCAST_FAULT").as_deref() {
        Ok("subscribe") => arm(Fault::Subscribe),
        Ok("shard_loop") => arm(Fault::ShardLoop),
        _ => {}
    }
}

/// True while `f` is armed (it stays armed): for a fault that is a mode.
#[inline]
pub(crate) fn armed(f: Fault) -> bool {
    ARMED.load(Relaxed) == f as u8
}

/// True once when `f` is armed (and disarms it): for a fault that is an
/// error returned, not a panic.
pub(crate) fn fails(f: Fault) -> bool {
    ARMED.load(Relaxed) == f as u8
        && ARMED
            .compare_exchange(f as u8, Fault::None as u8, Relaxed, Relaxed)
            .is_ok()
}

#[inline]
pub(crate) fn hit(f: Fault) {
    hit_if(f, || true);
}

/// Panics once if `f` is armed and `here` says this is the place (and
/// disarms it). `here` runs only while `f` is armed, so an unarmed fault
/// costs one relaxed load, whatever `here` would cost.
#[inline]
pub(crate) fn hit_if(f: Fault, here: impl FnOnce() -> bool) {
    if ARMED.load(Relaxed) == f as u8
        && here()
        && ARMED
            .compare_exchange(f as u8, Fault::None as u8, Relaxed, Relaxed)
            .is_ok()
    {
        panic!("injected fault: {f:?}");
    }
}
