//! Gossip-port input for a node: up to 8 datagrams and stream frames, SWIM
//! and rumor messages, from its member and from a stranger, decoded and fed
//! with the clock moving (see `rumor::fuzzing::gossip` for the properties).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rumor::fuzzing::gossip::check(data));
