//! Every reply agrees with what its command did: the writes the executor
//! reported, and what the host's store held just before. Judged as each
//! operation runs, since only then is the store's state before it known.
//!
//! The executor is the server's own command code, so this is where the
//! simulator notices a command that acknowledges what it did not write,
//! writes what it did not acknowledge, or reads what the store does not
//! hold.

use bytes::Bytes;
use rumor::core::store::Entry;
use rumor::resp::exec::Executed;

use crate::workload::Op;

/// The checker's name in violations.
pub const NAME: &str = "replies";

/// The invariant, in a line.
pub const INVARIANT: &str = "every reply is what its command's writes and the store before it imply";

/// Judges `executed` as [`judge`] does, on a host that was still
/// `catching_up` (refusing with `-LOADING`) or not when it ran: while it
/// is, every command the workload sends must be refused and write nothing;
/// once it is not, `-LOADING` is as wrong as any other unexpected reply.
pub fn judge_at(
    catching_up: bool,
    op: &Op,
    before: &[Option<Entry>],
    now_ms: u64,
    executed: &Executed,
) -> Result<(), String> {
    if !catching_up {
        return judge(op, before, now_ms, executed);
    }
    if !executed.writes.is_empty() {
        return Err(format!("wrote {} while catching up", describe(&executed.writes)));
    }
    if executed.flushed.is_some() {
        return Err("flushed while catching up".to_owned());
    }
    if executed.reply.starts_with(b"-LOADING ") {
        Ok(())
    } else {
        Err(format!("replied {:?} while catching up, expected -LOADING", executed.reply.escape_ascii().to_string()))
    }
}

/// Judges `executed`, the outcome of `op` run at wall-clock `now_ms` on a
/// store that held `before` for each of `op`'s keys. Returns what is wrong.
pub fn judge(op: &Op, before: &[Option<Entry>], now_ms: u64, executed: &Executed) -> Result<(), String> {
    let writes = &executed.writes;
    let reply = executed.reply.as_slice();
    match op {
        Op::Set { key, value, px_ms } => {
            let expires = px_ms.map(|px| now_ms + px);
            expect_reply(reply, b"+OK\r\n")?;
            expect_puts(writes, &[(key, value)], expires)
        }
        Op::Mset { pairs } => {
            expect_reply(reply, b"+OK\r\n")?;
            let pairs: Vec<(&Bytes, &Bytes)> = pairs.iter().map(|(k, v)| (k, v)).collect();
            expect_puts(writes, &pairs, None)
        }
        Op::Del { key } => {
            let live = before.first().and_then(Option::as_ref).and_then(|e| live_value(e, now_ms)).is_some();
            expect_reply(reply, if live { b":1\r\n" } else { b":0\r\n" })?;
            match &writes[..] {
                [] if !live => Ok(()),
                [(k, entry)] if live && k == key && entry.value.is_none() => Ok(()),
                _ => Err(format!("DEL of a {} key wrote {}", if live { "live" } else { "missing" }, describe(writes))),
            }
        }
        Op::Rename { from, to } => {
            let Some(moved) = before.first().and_then(Option::as_ref).filter(|e| live_value(e, now_ms).is_some())
            else {
                expect_reply(reply, b"-ERR no such key\r\n")?;
                return expect_no_writes("RENAME of a missing key", writes);
            };
            expect_reply(reply, b"+OK\r\n")?;
            if from == to {
                return expect_no_writes("RENAME of a key to itself", writes);
            }
            match &writes[..] {
                [(k1, gone), (k2, copy)]
                    if k1 == from
                        && gone.value.is_none()
                        && k2 == to
                        && copy.value == moved.value
                        && copy.expires_at_ms == moved.expires_at_ms =>
                {
                    Ok(())
                }
                _ => {
                    Err(format!("RENAME wrote {}, expected a tombstone of the source and its value", describe(writes)))
                }
            }
        }
        Op::Flushall => {
            expect_reply(reply, b"+OK\r\n")?;
            expect_no_writes("FLUSHALL", writes)?;
            match executed.flushed {
                Some(upto) if before.is_empty() && upto > rumor::core::version::Timestamp::ZERO => Ok(()),
                _ => Err("FLUSHALL acknowledged no flush".to_owned()),
            }
        }
        Op::Get { .. } => {
            if !writes.is_empty() {
                return Err(format!("GET wrote {}", describe(writes)));
            }
            match before.first().and_then(Option::as_ref).and_then(|e| live_value(e, now_ms)) {
                Some(value) => {
                    let mut bulk = format!("${}\r\n", value.len()).into_bytes();
                    bulk.extend_from_slice(value);
                    bulk.extend_from_slice(b"\r\n");
                    expect_reply(reply, &bulk)
                }
                None => expect_reply(reply, b"$-1\r\n"),
            }
        }
        Op::Exists { .. } => {
            if !writes.is_empty() {
                return Err(format!("EXISTS wrote {}", describe(writes)));
            }
            let live = before.iter().flatten().filter(|e| live_value(e, now_ms).is_some()).count();
            expect_reply(reply, format!(":{live}\r\n").as_bytes())
        }
    }
}

/// The value `entry` shows at `now_ms`: none once deleted or expired.
fn live_value(entry: &Entry, now_ms: u64) -> Option<&Bytes> {
    entry.value.as_ref().filter(|_| entry.expires_at_ms.is_none_or(|at| at > now_ms))
}

fn expect_no_writes(what: &str, writes: &[(Bytes, Entry)]) -> Result<(), String> {
    if writes.is_empty() { Ok(()) } else { Err(format!("{what} wrote {}", describe(writes))) }
}

fn expect_reply(reply: &[u8], expected: &[u8]) -> Result<(), String> {
    if reply == expected {
        Ok(())
    } else {
        Err(format!(
            "replied {:?}, expected {:?}",
            reply.escape_ascii().to_string(),
            expected.escape_ascii().to_string()
        ))
    }
}

/// One value write per pair, in order, each with deadline `expires`.
fn expect_puts(writes: &[(Bytes, Entry)], pairs: &[(&Bytes, &Bytes)], expires: Option<u64>) -> Result<(), String> {
    let matches = writes.len() == pairs.len()
        && writes.iter().zip(pairs).all(|((key, entry), (k, v))| {
            key == *k && entry.value.as_ref() == Some(*v) && entry.expires_at_ms == expires
        });
    if matches { Ok(()) } else { Err(format!("acknowledged {} pair(s) but wrote {}", pairs.len(), describe(writes))) }
}

fn describe(writes: &[(Bytes, Entry)]) -> String {
    let each: Vec<String> = writes
        .iter()
        .map(|(key, entry)| match &entry.value {
            Some(value) => format!("{key:?}={} bytes", value.len()),
            None => format!("{key:?}=tombstone"),
        })
        .collect();
    format!("[{}]", each.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor::core::version::{NodeId, Timestamp, Version};

    fn entry(value: Option<&'static [u8]>, expires_at_ms: Option<u64>) -> Entry {
        let timestamp = Timestamp::from_packed(1 << 20);
        Entry {
            value: value.map(Bytes::from_static),
            version: Version { timestamp, writer: NodeId::from_random_bytes([2; 16]) },
            expires_at_ms,
            deadline_set_at: timestamp,
        }
    }

    fn executed(reply: &[u8], writes: Vec<(Bytes, Entry)>) -> Executed {
        Executed { reply: reply.to_vec(), writes, flushed: None, closed: false }
    }

    #[test]
    fn while_catching_up_only_loading_is_right_and_after_it_loading_is_wrong() {
        let op = Op::Get { key: Bytes::from_static(b"k") };
        let loading = executed(b"-LOADING rumor is loading the dataset from its peers\r\n", Vec::new());
        assert_eq!(judge_at(true, &op, &[None], 5, &loading), Ok(()));
        assert!(judge_at(false, &op, &[None], 5, &loading).is_err());
        assert!(judge_at(true, &op, &[None], 5, &executed(b"$-1\r\n", Vec::new())).is_err(), "nil while catching up");
    }

    #[test]
    fn mset_must_write_every_pair_it_acknowledges() {
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        let op = Op::Mset { pairs: [(a.clone(), Bytes::from_static(b"1")), (b.clone(), Bytes::from_static(b"2"))] };
        let both = vec![(a.clone(), entry(Some(b"1"), None)), (b, entry(Some(b"2"), None))];
        assert_eq!(judge(&op, &[None, None], 5, &executed(b"+OK\r\n", both)), Ok(()));
        let one = vec![(a, entry(Some(b"1"), None))];
        let wrong = judge(&op, &[None, None], 5, &executed(b"+OK\r\n", one)).unwrap_err();
        assert!(wrong.contains("acknowledged 2 pair(s)"), "{wrong}");
        assert!(judge(&op, &[None, None], 5, &executed(b"-ERR no\r\n", Vec::new())).is_err());
    }

    #[test]
    fn get_and_del_must_agree_with_the_store_before() {
        let k = Bytes::from_static(b"k");
        let held = [Some(entry(Some(b"v"), Some(100)))];
        let get = Op::Get { key: k.clone() };
        assert_eq!(judge(&get, &held, 99, &executed(b"$1\r\nv\r\n", Vec::new())), Ok(()));
        assert!(judge(&get, &held, 100, &executed(b"$1\r\nv\r\n", Vec::new())).is_err(), "expired at 100");
        assert_eq!(judge(&get, &held, 100, &executed(b"$-1\r\n", Vec::new())), Ok(()));
        let del = Op::Del { key: k.clone() };
        let tombstone = vec![(k, entry(None, None))];
        assert_eq!(judge(&del, &held, 99, &executed(b":1\r\n", tombstone.clone())), Ok(()));
        assert!(judge(&del, &held, 100, &executed(b":1\r\n", tombstone)).is_err(), "nothing live to delete");
        assert_eq!(judge(&del, &held, 100, &executed(b":0\r\n", Vec::new())), Ok(()));
        let exists = Op::Exists { keys: [Bytes::from_static(b"k"), Bytes::from_static(b"k")] };
        let twice = [held[0].clone(), held[0].clone()];
        assert_eq!(judge(&exists, &twice, 99, &executed(b":2\r\n", Vec::new())), Ok(()), "counted twice");
        assert!(judge(&exists, &twice, 100, &executed(b":2\r\n", Vec::new())).is_err());
    }
}
