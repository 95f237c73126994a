//! Splits an inline command line (`SET k "a b"`) into arguments with
//! Redis's quoting rules (`sdssplitargs` in Redis's `sds.c`).
//!
//! Outside quotes, space, tab, CR and LF end an argument. `"…"` understands
//! `\n \r \t \b \a`, `\xHH` and `\<any>`; `'…'` understands only `\'`. A
//! closing quote must be followed by a space or the end of the line, and an
//! unclosed quote is an error. A quote may start in the middle of a word
//! (`a"b c"` is one argument, `ab c`), as in Redis.

use std::ops::Range;

/// The line has a quote that is never closed, or a closing quote followed
/// by something other than a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnbalancedQuotes;

/// Appends the unquoted arguments of `line` to `scratch`, and each one's
/// place in `scratch` to `ranges`. On error both may hold partial output.
pub(crate) fn split(
    line: &[u8],
    scratch: &mut Vec<u8>,
    ranges: &mut Vec<Range<usize>>,
) -> Result<(), UnbalancedQuotes> {
    let at = |i: usize| line.get(i).copied();
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_space) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(());
        }
        let start = scratch.len();
        let mut quote = Quote::None;
        let mut done = false;
        while !done {
            let c = at(p);
            match (quote, c) {
                (Quote::Double, Some(b'\\'))
                    if at(p + 1) == Some(b'x')
                        && at(p + 2).is_some_and(|b| b.is_ascii_hexdigit())
                        && at(p + 3).is_some_and(|b| b.is_ascii_hexdigit()) =>
                {
                    scratch.push(hex(line[p + 2]) * 16 + hex(line[p + 3]));
                    p += 3;
                }
                (Quote::Double, Some(b'\\')) if p + 1 < line.len() => {
                    p += 1;
                    scratch.push(match line[p] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                }
                (Quote::Single, Some(b'\\')) if at(p + 1) == Some(b'\'') => {
                    p += 1;
                    scratch.push(b'\'');
                }
                (Quote::Double, Some(b'"')) | (Quote::Single, Some(b'\'')) => {
                    if at(p + 1).is_some_and(|b| !is_space(b)) {
                        return Err(UnbalancedQuotes);
                    }
                    done = true;
                }
                (Quote::Double | Quote::Single, None) => return Err(UnbalancedQuotes),
                (Quote::None, None | Some(b' ' | b'\n' | b'\r' | b'\t')) => done = true,
                (Quote::None, Some(b'"')) => quote = Quote::Double,
                (Quote::None, Some(b'\'')) => quote = Quote::Single,
                (_, Some(byte)) => scratch.push(byte),
            }
            if c.is_some() {
                p += 1;
            }
        }
        ranges.push(start..scratch.len());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The value of an ASCII hex digit (callers check it is one).
fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        let mut scratch = Vec::new();
        let mut ranges = Vec::new();
        split(line, &mut scratch, &mut ranges)?;
        Ok(ranges.into_iter().map(|r| scratch[r].to_vec()).collect())
    }

    fn ok(line: &str) -> Vec<String> {
        args(line.as_bytes()).unwrap().into_iter().map(|a| String::from_utf8(a).unwrap()).collect()
    }

    #[test]
    fn splits_on_blanks() {
        assert_eq!(ok("SET k v"), ["SET", "k", "v"]);
        assert_eq!(ok("  PING  \t "), ["PING"]);
        assert!(ok("").is_empty());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn double_quotes_understand_escapes() {
        assert_eq!(ok(r#"SET "a b" "c\nd""#), ["SET", "a b", "c\nd"]);
        assert_eq!(ok(r#""\x41\x62" "\q""#), ["Ab", "q"]);
        assert_eq!(ok(r#""\xZZ""#), ["xZZ"], "a bad \\x escape is just x");
        assert_eq!(ok(r#""""#), [""]);
        assert_eq!(args(br#""\xff\x00""#).unwrap(), [vec![0xff, 0x00]], "binary bytes");
    }

    #[test]
    fn single_quotes_only_escape_the_quote() {
        assert_eq!(ok(r"'it\'s' '\n'"), ["it's", "\\n"]);
    }

    #[test]
    fn quotes_may_start_mid_word() {
        assert_eq!(ok(r#"a"b c""#), ["ab c"]);
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert_eq!(args(br#"SET "k"#), Err(UnbalancedQuotes));
        assert_eq!(args(b"SET 'k"), Err(UnbalancedQuotes));
        assert_eq!(args(br#"SET "k"v"#), Err(UnbalancedQuotes));
        assert_eq!(args(br#"SET "k\"#), Err(UnbalancedQuotes));
    }
}
