#![no_main]
//! Client commands, publish frames and topic selectors from untrusted bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tickcast::fuzzing::command_parser(data));
