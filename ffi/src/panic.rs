//! The panic boundary every entry point runs inside, and the NULL checks.
//!
//! Unwinding out of an `extern "C"` function aborts the process; a feed
//! handler must never die because of a bug on our side, so each entry point's
//! body runs under `catch_unwind` and a panic becomes `TICKCAST_RESULT_PANIC`
//! (or NULL / nothing for functions without a result).

/// What a function returns when its body panicked.
pub(crate) trait PanicDefault {
    fn on_panic() -> Self;
}

impl PanicDefault for crate::error::tickcast_result {
    fn on_panic() -> Self {
        crate::error::tickcast_result::Panic
    }
}

impl<T> PanicDefault for *mut T {
    fn on_panic() -> Self {
        std::ptr::null_mut()
    }
}

impl PanicDefault for () {
    fn on_panic() -> Self {}
}

/// Runs `body`, turning a panic into the return type's panic value.
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::panic::PanicDefault::on_panic(),
        }
    };
}
pub(crate) use ffi_panic_boundary;

/// Returns `TICKCAST_RESULT_NULL_PARAMETER` from the enclosing function when
/// the pointer is NULL, otherwise evaluates to the pointer.
macro_rules! try_not_null {
    ($ptr:expr) => {{
        let p = $ptr;
        if p.is_null() {
            return $crate::error::tickcast_result::NullParameter;
        }
        p
    }};
}
pub(crate) use try_not_null;

/// Reads a C string argument: NULL → `NullParameter`, bad UTF-8 → `InvalidUtf8`.
macro_rules! try_str {
    ($ptr:expr) => {{
        let p: *const ::std::ffi::c_char = $ptr;
        if p.is_null() {
            return $crate::error::tickcast_result::NullParameter;
        }
        // SAFETY: the caller promises a NUL-terminated string (header docs).
        match unsafe { ::std::ffi::CStr::from_ptr(p) }.to_str() {
            Ok(s) => s,
            Err(_) => return $crate::error::tickcast_result::InvalidUtf8,
        }
    }};
}
pub(crate) use try_str;
