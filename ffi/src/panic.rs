//! The panic boundary every entry point runs inside, and the NULL checks.
//!
//! Unwinding out of an `extern "C"` function aborts the process; a feed
//! handler must never die because of a bug on our side, so each entry point's
//! body runs under `catch_unwind` and a panic becomes `TICKCAST_RESULT_PANIC`.
//! A NULL argument becomes `TICKCAST_RESULT_NULL_PARAMETER`. Functions that
//! return no result code return NULL or nothing instead: [`Fallback`] says
//! which, per return type, so one set of macros serves every entry point.

/// What an entry point returns when it cannot do its work.
pub(crate) trait Fallback {
    /// Its body panicked.
    fn on_panic() -> Self;
    /// A required pointer argument was NULL.
    fn on_null() -> Self;
}

impl<T> Fallback for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
    fn on_null() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> Fallback for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
    fn on_null() -> Self {
        std::ptr::null()
    }
}

impl Fallback for () {
    fn on_panic() -> Self {}
    fn on_null() -> Self {}
}

/// Runs `body`, turning a panic into the return type's panic value.
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::panic::Fallback::on_panic(),
        }
    };
}
pub(crate) use ffi_panic_boundary;

/// Returns the return type's NULL value from the enclosing function when the
/// pointer is NULL, otherwise evaluates to the pointer.
macro_rules! try_not_null {
    ($ptr:expr) => {{
        let p = $ptr;
        if p.is_null() {
            return $crate::panic::Fallback::on_null();
        }
        p
    }};
}
pub(crate) use try_not_null;

/// The Rust object behind a handle, shared: NULL returns like `try_not_null!`.
macro_rules! try_ref {
    ($ptr:expr) => {{
        let p = $crate::panic::try_not_null!($ptr);
        // SAFETY: non-NULL, and the header's ownership rules make it a live
        // handle from the matching constructor.
        unsafe { $crate::handle::as_ref(p) }
    }};
}
pub(crate) use try_ref;

/// The Rust object behind a handle, exclusive: NULL returns like `try_not_null!`.
macro_rules! try_mut {
    ($ptr:expr) => {{
        let p = $crate::panic::try_not_null!($ptr);
        // SAFETY: as for try_ref!; the header says the object is not shared
        // with another thread during the call.
        unsafe { $crate::handle::as_mut(p) }
    }};
}
pub(crate) use try_mut;

/// Reads a C string argument: NULL → `NullParameter`, bad UTF-8 → `InvalidUtf8`.
macro_rules! try_str {
    ($ptr:expr) => {
        match $crate::handle::c_str($ptr) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}
pub(crate) use try_str;
