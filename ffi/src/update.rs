//! `tickcast_update`: one price update as C lays it out, and reading updates
//! and batches from C arguments (every one checked before anything is published).

use crate::error::tickcast_result;
use crate::handle::c_str;
use std::ffi::c_char;
use tickcast::Update;

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
    /// Bit `i` set: `extra[i]` is published, as the server's extra field of
    /// index `i` (`[fields] extra`; `tickcast_server_field` or
    /// `tickcast_remote_field` give the index of a name).
    pub extra_fields: u32,
    /// Values of the server's extra fields, by index.
    pub extra: [f64; TICKCAST_MAX_EXTRA],
}

/// How many extra fields a server may declare (`tickcast_update.extra`).
pub const TICKCAST_MAX_EXTRA: usize = 8;

/// Reads one topic and update from the caller into an `Update`.
pub(crate) fn read_update(
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
pub(crate) fn read_batch(
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

fn to_update(topic: &str, u: &tickcast_update) -> Result<Update, tickcast_result> {
    if u.fields & !ALL_FIELDS != 0 || u.extra_fields >> TICKCAST_MAX_EXTRA != 0 {
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
        ..Default::default()
    };
    for (i, v) in u.extra.iter().enumerate() {
        if u.extra_fields & (1 << i) != 0 {
            out.prices.extra.set(i, *v);
        }
    }
    Ok(out)
}

/// Writes a field's index to `out` (the `tickcast_*_field` lookups), or
/// says the name is unknown.
pub(crate) fn write_field(field: Option<tickcast::Field>, out: *mut u32) -> tickcast_result {
    match field {
        Some(f) => {
            // SAFETY: the caller checked `out` is not NULL, and provides a
            // writable u32.
            unsafe { *out = f.index() as u32 };
            tickcast_result::Ok
        }
        None => tickcast_result::InvalidArgument,
    }
}
