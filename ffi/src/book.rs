//! `tickcast_level`: one order-book level as C lays it out, and reading a
//! change of a book (`….book` topic) from C arguments.

use crate::error::tickcast_result;
use crate::handle::c_str;
use std::ffi::c_char;
use tickcast::{Side, Update};

/// `tickcast_level.side`: a bid (buyers; best is the highest price).
pub const TICKCAST_SIDE_BID: u32 = 0;
/// `tickcast_level.side`: an ask (sellers; best is the lowest price).
pub const TICKCAST_SIDE_ASK: u32 = 1;

/// `flags` of `tickcast_publish_levels`: the levels are the whole book;
/// every level not among them is removed (none: the book is emptied).
pub const TICKCAST_LEVELS_REPLACE: u32 = 1;

/// One price level of an order book. `size` is the absolute quantity at
/// `price` (not a change); 0 removes the level. Price and size must be
/// finite, size not negative.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tickcast_level {
    /// `TICKCAST_SIDE_BID` or `TICKCAST_SIDE_ASK`.
    pub side: u32,
    /// The level's price.
    pub price: f64,
    /// The quantity at that price; 0 removes the level.
    pub size: f64,
}

/// Reads a book change: `count` levels (`levels` may be NULL when `count`
/// is 0) and `flags`, for `topic`, checking the arguments' shape (the
/// values are checked by the publish call, as every update's are).
pub(crate) fn read_levels(
    topic: *const c_char,
    levels: *const tickcast_level,
    count: usize,
    flags: u32,
) -> Result<Update, tickcast_result> {
    let topic = c_str(topic)?;
    if flags & !TICKCAST_LEVELS_REPLACE != 0 {
        return Err(tickcast_result::InvalidArgument);
    }
    let levels: &[tickcast_level] = match count {
        0 => &[],
        _ if levels.is_null() => return Err(tickcast_result::NullParameter),
        // SAFETY: non-NULL, and the caller provides `count` readable levels.
        _ => unsafe { std::slice::from_raw_parts(levels, count) },
    };
    let mut u = Update::new(topic);
    if flags & TICKCAST_LEVELS_REPLACE != 0 {
        u = u.replace_book();
    }
    for l in levels {
        let side = match l.side {
            TICKCAST_SIDE_BID => Side::Bid,
            TICKCAST_SIDE_ASK => Side::Ask,
            _ => return Err(tickcast_result::InvalidArgument),
        };
        u = u.level(side, l.price, l.size);
    }
    if count == 0 && flags == 0 {
        // Nothing to set and nothing replaced: the publish call says so.
        u.levels = Some(Default::default());
    }
    Ok(u)
}
