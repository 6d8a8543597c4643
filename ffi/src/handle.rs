//! Handles: how each opaque C type maps to the Rust object behind it, and
//! the few helpers that hold this crate's pointer casts. Every handle is a
//! `Box` made by its constructor and taken back by its `_free`.

use crate::error::tickcast_result;
use std::ffi::{c_char, CStr};

/// An opaque C type and the Rust type its pointer stands for.
pub(crate) trait Handle {
    type Rust;
}

/// Gives `value` to C as a new handle (freed with [`free`]).
pub(crate) fn into_handle<H: Handle>(value: H::Rust) -> *mut H {
    Box::into_raw(Box::new(value)) as *mut H
}

/// SAFETY: `p` is non-NULL, from [`into_handle`] for the same `H`, not freed.
pub(crate) unsafe fn as_ref<'a, H: Handle>(p: *const H) -> &'a H::Rust {
    &*(p as *const H::Rust)
}

/// SAFETY: as for [`as_ref`], and nothing else uses the object meanwhile.
pub(crate) unsafe fn as_mut<'a, H: Handle>(p: *mut H) -> &'a mut H::Rust {
    &mut *(p as *mut H::Rust)
}

/// Takes a handle back; NULL gives `None`. Safe to call as rustls-ffi's
/// `free_box` is: the C caller's contract (the header's "free once, with
/// the matching `_free`") is what makes the pointer valid.
pub(crate) fn free<H: Handle>(p: *mut H) -> Option<H::Rust> {
    // SAFETY: NULL or from `into_handle` for the same `H`, freed once.
    (!p.is_null()).then(|| unsafe { *Box::from_raw(p as *mut H::Rust) })
}

/// Writes an out-parameter (outputs are written only on success).
///
/// SAFETY: `out` is non-NULL and writable, as the caller's contract says.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    out.write(value)
}

/// Reads a C string argument: NULL → `NullParameter`, not UTF-8 → `InvalidUtf8`.
pub(crate) fn c_str<'a>(p: *const c_char) -> Result<&'a str, tickcast_result> {
    if p.is_null() {
        return Err(tickcast_result::NullParameter);
    }
    // SAFETY: the caller promises a NUL-terminated string (header docs).
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| tickcast_result::InvalidUtf8)
}

/// Copies `text` into the caller's buffer as a C string, cut to fit (at a
/// character boundary). Nothing happens for a NULL or empty buffer.
pub(crate) fn write_message(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    // A buffer of TICKCAST_MESSAGE_MAX bytes always holds the whole message.
    let mut n = text
        .len()
        .min(len - 1)
        .min(crate::config::TICKCAST_MESSAGE_MAX - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the caller gives `len` writable bytes at `buf`; n + 1 <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr() as *const c_char, buf, n);
        *buf.add(n) = 0;
    }
}
