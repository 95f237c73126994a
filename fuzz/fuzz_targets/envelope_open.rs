//! Payloads, clocks and tampering for the cluster-key envelope (see
//! `rumor::fuzzing::envelope`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rumor::fuzzing::envelope::check(data));
