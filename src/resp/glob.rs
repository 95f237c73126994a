//! Redis's glob matcher (`stringmatchlen` in Redis's `util.c`), used by
//! `KEYS`, `SCAN … MATCH` and `CONFIG GET`.
//!
//! `*` any run, `?` any one byte, `[abc]`, `[a-c]`, `[^x]` classes, and `\`
//! to take the next byte literally. Ported branch for branch so that odd
//! patterns (`[a-]`, an unterminated `[`, a trailing `\`) behave as in Redis,
//! including its guard against exponential backtracking: once the rest of a
//! pattern fails to match anywhere after a `*`, no earlier `*` retries.
//! Bytes compare unsigned (Redis compares C `char`s, signed on x86, which
//! only matters inside ranges of non-ASCII bytes).

/// Whether `text` matches the glob `pattern`; `nocase` folds ASCII case.
pub(crate) fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_from(pattern, text, nocase, &mut skip_longer, 0)
}

fn match_from(pattern: &[u8], text: &[u8], nocase: bool, skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let same = |a: u8, b: u8| {
        if nocase { a.eq_ignore_ascii_case(&b) } else { a == b }
    };
    let (mut p, mut t) = (0, 0);
    while p < pattern.len() && t < text.len() {
        match pattern[p] {
            b'*' => {
                while pattern.get(p + 1) == Some(&b'*') {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while t < text.len() {
                    if match_from(&pattern[p + 1..], &text[t..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    t += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => t += 1,
            b'[' => {
                p += 1;
                let negate = pattern.get(p) == Some(&b'^');
                if negate {
                    p += 1;
                }
                let c = text[t];
                let mut hit = false;
                loop {
                    if p >= pattern.len() {
                        // Unterminated class: step back so the shared
                        // `p += 1` below lands exactly on the end.
                        p -= 1;
                        break;
                    }
                    let left = pattern.len() - p;
                    if pattern[p] == b'\\' && left >= 2 {
                        p += 1;
                        hit |= same(pattern[p], c);
                    } else if pattern[p] == b']' {
                        break;
                    } else if left >= 3 && pattern[p + 1] == b'-' {
                        let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let c = if nocase { c.to_ascii_lowercase() } else { c };
                        if nocase {
                            lo = lo.to_ascii_lowercase();
                            hi = hi.to_ascii_lowercase();
                        }
                        hit |= (lo..=hi).contains(&c);
                        p += 2;
                    } else {
                        hit |= same(pattern[p], c);
                    }
                    p += 1;
                }
                if hit == negate {
                    return false;
                }
                t += 1;
            }
            b'\\' => {
                if pattern.len() - p >= 2 {
                    p += 1;
                }
                if !same(pattern[p], text[t]) {
                    return false;
                }
                t += 1;
            }
            literal => {
                if !same(literal, text[t]) {
                    return false;
                }
                t += 1;
            }
        }
        p += 1;
        if t == text.len() {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && t == text.len()
}

/// Deepest `*` recursion before a pattern is refused as abusive (Redis's
/// bound too).
const MAX_NESTING: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        matches(pattern.as_bytes(), text.as_bytes(), false)
    }

    #[test]
    fn star_matches_any_run() {
        // As in Redis's matcher, a pattern never matches an empty string
        // (KEYS and SCAN treat a lone `*` as "everything" before matching).
        assert!(!m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:1"));
        assert!(m("user:*", "user:"));
        assert!(!m("user:*", "use"));
        assert!(m("*:1", "user:1"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("a**", "a"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn question_mark_matches_one_byte() {
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(!m("?", ""));
    }

    #[test]
    fn classes_ranges_and_negation() {
        assert!(m("h[ae]llo", "hello"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("[a-c]", "b"));
        assert!(m("[c-a]", "b"), "reversed ranges are swapped");
        assert!(!m("[a-c]", "d"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("[\\]]", "]"));
        assert!(m("[a-]", "]"), "Redis reads `a-]` as a range up to `]`");
        assert!(!m("[abc", "d"), "an unterminated class still has to match");
        assert!(m("[abc", "a"));
    }

    #[test]
    fn backslash_escapes_the_next_byte() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("a\\?", "a?"));
        assert!(!m("a\\?", "ab"));
        assert!(m("a\\", "a\\"), "a trailing backslash is literal");
    }

    #[test]
    fn nocase_folds_ascii() {
        assert!(matches(b"PROTO-*", b"proto-max-bulk-len", true));
        assert!(matches(b"[A-Z]x", b"qX", true));
        assert!(!matches(b"PROTO-*", b"proto-max-bulk-len", false));
    }

    #[test]
    fn binary_keys_match() {
        assert!(matches(b"k\xff*", b"k\xff\x00z", false));
        assert!(matches(b"[\x80-\xff]", b"\x90", false));
    }

    #[test]
    fn abusive_patterns_finish_quickly() {
        let pattern = "a*".repeat(40) + "b";
        let text = "a".repeat(200);
        assert!(!m(&pattern, &text));
        let deep = "*?".repeat(5_000);
        assert!(!m(&deep, "short"));
    }
}
