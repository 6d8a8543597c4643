//! Result codes and their messages.

use crate::panic::ffi_panic_boundary;
use tickcast::{ConfigError, Error};

/// The result of every fallible tickcast function.
///
/// Numbers are part of the ABI: a code keeps its number forever and a retired
/// number is never reused.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tickcast_result {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullParameter = 1,
    /// An argument is out of range or malformed (see the more specific codes below).
    InvalidArgument = 2,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 3,
    /// A topic name is empty, too long, or has a character outside `A-Z a-z 0-9 . _ - : /`.
    InvalidTopic = 4,
    /// A price field flagged as set is NaN or infinite.
    InvalidValue = 5,
    /// An address is not `host:port`.
    InvalidAddress = 6,
    /// The ingest queue is full (`tickcast_try_publish` only); nothing was queued.
    QueueFull = 7,
    /// The server has shut down.
    ServerClosed = 8,
    /// An operating-system error, e.g. the listen address is in use.
    IoError = 9,
    /// A bug inside tickcast was caught at the API boundary. The object it
    /// happened on should be freed and not used further.
    Panic = 10,
    /// An operation did not finish within its timeout (`tickcast_remote_flush`).
    Timeout = 11,
    /// The update sets no price field.
    EmptyUpdate = 12,
    /// The server holds its `max_topics` topics; a new topic is refused.
    TooManyTopics = 13,
    /// The publisher's token does not allow the topic (its JWT's `publish` claim).
    Forbidden = 14,
    /// Cluster mode: Redis cannot be reached and the queue for it is full;
    /// the update was not queued. Try again later.
    Unavailable = 15,
    /// An order-book change is malformed (NaN price, negative size), would
    /// cross the book, or is for a topic whose name does not end with `.book`
    /// (or price fields for one that does).
    InvalidBook = 16,
    /// A remote server refused the connection with an HTTP error: 401 (the
    /// token is not one of its publisher tokens), 403 (network publishing is
    /// off), 404 (the URL's path is not `/publish`). Retrying will not help.
    Refused = 17,
    /// Nothing accepts connections at the remote address (connection
    /// refused): the server is not running, or not on that port.
    Unreachable = 18,
}

impl From<&Error> for tickcast_result {
    /// Exhaustive on purpose: a new error variant does not compile until it
    /// has a code here.
    fn from(e: &Error) -> Self {
        match e {
            Error::Full => tickcast_result::QueueFull,
            Error::Closed => tickcast_result::ServerClosed,
            Error::InvalidTopic(_) => tickcast_result::InvalidTopic,
            Error::InvalidValue(_) => tickcast_result::InvalidValue,
            Error::InvalidConfig(ConfigError::BadAddress { .. }) => tickcast_result::InvalidAddress,
            Error::InvalidConfig(_) | Error::Tls(_) => tickcast_result::InvalidArgument,
            Error::InvalidUrl { .. } => tickcast_result::InvalidAddress,
            Error::Refused { .. } => tickcast_result::Refused,
            // Only a Rust subscriber's commands get this; no C call does.
            Error::Command { .. } => tickcast_result::InvalidArgument,
            Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tickcast_result::Unreachable
            }
            Error::Io(_) => tickcast_result::IoError,
            Error::Timeout => tickcast_result::Timeout,
            Error::EmptyUpdate => tickcast_result::EmptyUpdate,
            Error::TooManyTopics { .. } => tickcast_result::TooManyTopics,
            Error::Forbidden { .. } => tickcast_result::Forbidden,
            Error::Unavailable => tickcast_result::Unavailable,
            Error::InvalidBook(_) => tickcast_result::InvalidBook,
        }
    }
}

/// The code of a call's outcome.
pub(crate) fn result(r: tickcast::Result<()>) -> tickcast_result {
    match r {
        Ok(()) => tickcast_result::Ok,
        Err(e) => tickcast_result::from(&e),
    }
}

impl tickcast_result {
    pub(crate) fn message(self) -> &'static std::ffi::CStr {
        match self {
            tickcast_result::Ok => c"ok",
            tickcast_result::NullParameter => c"a required pointer argument was NULL",
            tickcast_result::InvalidArgument => c"invalid argument",
            tickcast_result::InvalidUtf8 => c"string argument is not valid UTF-8",
            tickcast_result::InvalidTopic => {
                c"invalid topic: must be 1-64 bytes of A-Z a-z 0-9 . _ - : /"
            }
            tickcast_result::InvalidValue => c"a price field is NaN or infinite",
            tickcast_result::InvalidAddress => c"address is not host:port",
            tickcast_result::QueueFull => c"ingest queue is full",
            tickcast_result::ServerClosed => c"server is shut down",
            tickcast_result::IoError => c"I/O error",
            tickcast_result::Panic => c"internal error (panic caught at the API boundary)",
            tickcast_result::Timeout => c"timed out",
            tickcast_result::EmptyUpdate => c"the update sets no price field",
            tickcast_result::TooManyTopics => {
                c"the server holds its limit of topics (max_topics); clear one first"
            }
            tickcast_result::Forbidden => {
                c"the publisher's token does not allow this topic (its publish claim)"
            }
            tickcast_result::Unavailable => {
                c"the cluster's Redis cannot be reached and the queue for it is full; not queued"
            }
            tickcast_result::InvalidBook => {
                c"invalid book update: bad level, crossed book, or levels for a non-book topic"
            }
            tickcast_result::Refused => {
                c"the server refused the connection: a wrong token (HTTP 401), publishing off (403) or a path that is not /publish (404)"
            }
            tickcast_result::Unreachable => {
                c"could not connect: nothing listens at that address (is the server running, on that port?)"
            }
        }
    }
}

/// Every code, for turning a number from C back into one.
const ALL: [tickcast_result; 19] = [
    tickcast_result::Ok,
    tickcast_result::NullParameter,
    tickcast_result::InvalidArgument,
    tickcast_result::InvalidUtf8,
    tickcast_result::InvalidTopic,
    tickcast_result::InvalidValue,
    tickcast_result::InvalidAddress,
    tickcast_result::QueueFull,
    tickcast_result::ServerClosed,
    tickcast_result::IoError,
    tickcast_result::Panic,
    tickcast_result::Timeout,
    tickcast_result::EmptyUpdate,
    tickcast_result::TooManyTopics,
    tickcast_result::Forbidden,
    tickcast_result::Unavailable,
    tickcast_result::InvalidBook,
    tickcast_result::Refused,
    tickcast_result::Unreachable,
];

impl tickcast_result {
    /// The code with this number, if there is one. C may pass any integer
    /// where a `tickcast_result` is expected; turning an unknown one into the
    /// enum would be undefined behaviour, so entry points take the number.
    pub(crate) fn from_number(n: u32) -> Option<tickcast_result> {
        ALL.into_iter().find(|r| *r as u32 == n)
    }
}

/// A static, NUL-terminated English description of `result` (a
/// `tickcast_result` value; any other number gets "unknown result code").
/// Never NULL; the string must not be freed.
#[no_mangle]
pub extern "C" fn tickcast_result_str(result: u32) -> *const std::ffi::c_char {
    ffi_panic_boundary! {
        match tickcast_result::from_number(result) {
            Some(r) => r.message().as_ptr(),
            None => c"unknown result code".as_ptr(),
        }
    }
}

impl crate::panic::Fallback for tickcast_result {
    fn on_panic() -> Self {
        tickcast_result::Panic
    }
    fn on_null() -> Self {
        tickcast_result::NullParameter
    }
}

/// The library's version, `"MAJOR.MINOR.PATCH"` (static, never NULL, not to
/// be freed). Compare with the header's `TICKCAST_VERSION` to catch a program
/// running against another release than it was compiled with.
#[no_mangle]
pub extern "C" fn tickcast_version() -> *const std::ffi::c_char {
    ffi_panic_boundary! {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const std::ffi::c_char
    }
}
