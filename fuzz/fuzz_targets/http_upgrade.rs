#![no_main]
//! The HTTP request head in front of every connection, from untrusted bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tickcast::fuzzing::http_upgrade(data));
