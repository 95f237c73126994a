//! Connections to the gossip port's TCP framing (see
//! `rumor::fuzzing::stream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rumor::fuzzing::stream::check(data));
