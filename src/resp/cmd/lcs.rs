//! `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`: the
//! longest common subsequence of two values, by Redis's dynamic
//! programming table and its walk back from the ends, so the string and
//! the matches (listed from the end of the values) are Redis's.
//!
//! The table holds `(len1 + 1) × (len2 + 1)` counters, so its size is
//! bounded by `max_bulk_bytes` before it is allocated.

use bytes::Bytes;

use super::{CommandError, Ctx, is};
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// One match: ranges in the first and second value, and its length.
struct Match {
    a: (usize, usize),
    b: (usize, usize),
    len: usize,
}

/// `LCS`.
pub(super) fn lcs(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let (k1, k2) = (ctx.key(args.arg(1))?, ctx.key(args.arg(2))?);
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0usize);
    let mut index = 3;
    while let Some(option) = args.get(index) {
        if is(option, "LEN") {
            len_only = true;
        } else if is(option, "IDX") {
            idx = true;
        } else if is(option, "WITHMATCHLEN") {
            with_len = true;
        } else if is(option, "MINMATCHLEN") && args.get(index + 1).is_some() {
            index += 1;
            let n = parse_i64(args.arg(index)).ok_or(CommandError::NotInteger)?;
            min_len = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        } else {
            return Err(CommandError::Syntax);
        }
        index += 1;
    }
    if len_only && idx {
        return Err(CommandError::fixed("ERR If you want both the length and indexes, please just use IDX."));
    }
    let now_ms = ctx.now_ms();
    let a = ctx.shared.store.get(k1, now_ms).unwrap_or_default();
    let b = ctx.shared.store.get(k2, now_ms).unwrap_or_default();
    let cells = (a.len() + 1).saturating_mul(b.len() + 1);
    if cells > ctx.shared.limits.max_bulk_bytes() / std::mem::size_of::<u32>() {
        return Err(CommandError::fixed(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let (common, matches) = longest_common(&a, &b, idx, min_len);
    if idx {
        reply::map(ctx.out, 2);
        reply::bulk(ctx.out, b"matches");
        reply::array(ctx.out, matches.len());
        for m in &matches {
            reply::array(ctx.out, 2 + usize::from(with_len));
            for (start, end) in [m.a, m.b] {
                reply::array(ctx.out, 2);
                reply::count(ctx.out, start);
                reply::count(ctx.out, end);
            }
            if with_len {
                reply::count(ctx.out, m.len);
            }
        }
        reply::bulk(ctx.out, b"len");
        reply::count(ctx.out, common.len());
    } else if len_only {
        reply::count(ctx.out, common.len());
    } else {
        ctx.out.bulk_shared(Bytes::from(common));
    }
    Ok(())
}

/// The LCS of `a` and `b`, and (with `want_matches`) its matching runs of
/// at least `min_len` bytes, from the ends back, as Redis walks them.
fn longest_common(a: &[u8], b: &[u8], want_matches: bool, min_len: usize) -> (Vec<u8>, Vec<Match>) {
    let width = b.len() + 1;
    let mut table = vec![0u32; (a.len() + 1) * width];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let at = |i: usize, j: usize| table[i * width + j];
    let mut left = at(a.len(), b.len()) as usize;
    let mut common = vec![0u8; left];
    let mut matches = Vec::new();
    // The run being tracked, as starts and ends in `a` and `b`; `None`
    // between runs.
    let mut run: Option<((usize, usize), (usize, usize))> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[left - 1] = a[i - 1];
            run = Some(match run {
                None => ((i - 1, i - 1), (j - 1, j - 1)),
                Some(((a_start, a_end), (b_start, b_end))) if a_start == i && b_start == j => {
                    ((a_start - 1, a_end), (b_start - 1, b_end))
                }
                Some(other) => {
                    emit = true;
                    other
                }
            });
            if run.is_some_and(|((a_start, _), (b_start, _))| a_start == 0 || b_start == 0) {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = run.is_some();
        }
        if emit && let Some((a_run, b_run)) = run.take() {
            let len = a_run.1 - a_run.0 + 1;
            if want_matches && (min_len == 0 || len >= min_len) {
                matches.push(Match { a: a_run, b: b_run, len });
            }
        }
    }
    (common, matches)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn lcs_as_redis() {
        let mut h = Harness::new();
        h.run(&["MSET", "key1", "ohmytext", "key2", "mynewtext"]).await;
        assert_eq!(h.run(&["LCS", "key1", "key2"]).await, "$6\r\nmytext\r\n");
        assert_eq!(h.run(&["LCS", "key1", "key2", "LEN"]).await, ":6\r\n");
        assert_eq!(
            h.run(&["LCS", "key1", "key2", "IDX"]).await,
            "*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n\
             $3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(
            h.run(&["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]).await,
            "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"
        );
        assert_eq!(
            h.run(&["LCS", "key1", "key2", "LEN", "IDX"]).await,
            "-ERR If you want both the length and indexes, please just use IDX.\r\n"
        );
        assert_eq!(h.run(&["LCS", "key1", "nosuch"]).await, "$0\r\n\r\n");
        assert_eq!(h.run(&["LCS", "key1", "key2", "FOO"]).await, "-ERR syntax error\r\n");
        assert_eq!(
            h.run(&["LCS", "key1", "key2", "MINMATCHLEN", "x"]).await,
            "-ERR value is not an integer or out of range\r\n"
        );
        assert!(h.run(&["HELLO", "3"]).await.starts_with('%'));
        assert!(h.run(&["LCS", "key1", "key2", "IDX"]).await.starts_with("%2\r\n$7\r\nmatches\r\n"));
    }

    #[tokio::test]
    async fn the_table_is_bounded_before_it_is_allocated() {
        let limits = crate::resp::shared::ClientLimits { max_bulk_bytes: 4096, ..super::super::testkit::limits() };
        let mut h = Harness::with_limits(limits);
        h.run(&["SET", "a", &"x".repeat(100)]).await;
        h.run(&["SET", "b", &"y".repeat(100)]).await;
        assert_eq!(
            h.run(&["LCS", "a", "b"]).await,
            "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
        assert_eq!(
            h.run(&["LCS", "a", "a", "LEN"]).await,
            "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
        );
        h.run(&["SET", "c", "xyx"]).await;
        assert_eq!(h.run(&["LCS", "c", "c"]).await, "$3\r\nxyx\r\n");
    }
}
