//! Client bytes for the RESP request parser under fuzzer-chosen limits,
//! parsed whole, byte by byte and in chunks (see `rumor::fuzzing::resp`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rumor::fuzzing::resp::check(data));
