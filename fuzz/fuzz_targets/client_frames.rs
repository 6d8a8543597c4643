#![no_main]
//! Client WebSocket frames, compressed or not, from untrusted bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tickcast::fuzzing::client_frames(data));
