//! Redis's ACL file: one `user NAME rule…` per line. Every line is checked
//! and every fault reported at once, each naming the file, the line and
//! what is wrong in Redis's words; a file with any fault gives no users.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::user::User;

/// The users a node knows, by name (sorted, as ACL USERS lists them).
pub(crate) type UserMap = BTreeMap<String, Arc<User>>;

/// What is wrong with an ACL file: Redis's messages, one per fault, each
/// ending with `. ` as Redis joins them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.trim_end())]
pub struct AclFileError(pub(crate) String);

/// Reads and parses the ACL file at `path`.
pub(crate) fn load(path: &Path) -> Result<UserMap, AclFileError> {
    let text = std::fs::read(path)
        .map_err(|e| AclFileError(format!("Error loading ACLs, opening file '{}': {e}", path.display())))?;
    parse(&path.display().to_string(), &text)
}

/// Parses an ACL file's text; `file` names it in messages. Blank lines and
/// lines starting with `#` are skipped. Without a `default` line, the
/// default user is Redis's: `on nopass ~* &* +@all`.
pub(crate) fn parse(file: &str, text: &[u8]) -> Result<UserMap, AclFileError> {
    let mut users = UserMap::new();
    let mut errors = String::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let words: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
        let (Some(&b"user"), Some(name)) = (words.first(), words.get(1)) else {
            errors.push_str(&format!("{file}:{number} should start with user keyword. "));
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            errors.push_str(&format!(
                "{file}:{number}: username '{}' contains invalid characters. ",
                String::from_utf8_lossy(name)
            ));
            continue;
        };
        if name.bytes().any(|b| b.is_ascii_control()) {
            errors.push_str(&format!("{file}:{number}: username '{name}' contains invalid characters. "));
            continue;
        }
        let mut user = User::new(name);
        let mut valid = true;
        for rule in &words[2..] {
            if let Err(error) = user.apply(rule) {
                errors.push_str(&format!("{file}:{number}: {error}. "));
                valid = false;
            }
        }
        if users.contains_key(name) {
            errors.push_str(&format!("WARNING: Duplicate user '{name}' found on line {number}. "));
            continue;
        }
        if valid {
            users.insert(name.to_owned(), Arc::new(user));
        }
    }
    if !errors.is_empty() {
        return Err(AclFileError(errors));
    }
    users.entry("default".to_owned()).or_insert_with(|| Arc::new(User::with_rules("default", DEFAULT_RULES)));
    Ok(users)
}

/// Redis's default user when nothing else is said.
pub(crate) const DEFAULT_RULES: &[&[u8]] = &[b"on", b"nopass", b"~*", b"&*", b"+@all"];

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse("users.acl", text.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn users_are_read_and_default_is_added() {
        let users =
            parse("f", b"user reader on >pw ~* +@read\n\n# a comment\n  user writer on nopass ~app:* +@all  \r\n")
                .unwrap();
        assert_eq!(users.keys().collect::<Vec<_>>(), ["default", "reader", "writer"]);
        assert!(users["reader"].accepts(b"pw"));
        assert!(users["writer"].accepts(b"x"));
        assert_eq!(users["default"].describe(), "user default on nopass ~* &* +@all");
        let users = parse("f", b"user default off\n").unwrap();
        assert!(!users["default"].enabled(), "a default line replaces Redis's default user");
    }

    #[test]
    fn faults_name_the_file_the_line_and_the_rule() {
        assert_eq!(error("user a on +nosuch"), "users.acl:1: Unknown command or category name in ACL.");
        assert_eq!(error("\nuser a on +@nosuch"), "users.acl:2: Unknown command or category name in ACL.");
        assert_eq!(error("user a bogus"), "users.acl:1: Syntax error.");
        assert_eq!(error("usr a on"), "users.acl:1 should start with user keyword.");
        assert_eq!(error("user"), "users.acl:1 should start with user keyword.");
        assert_eq!(
            error("user a #123"),
            "users.acl:1: The password hash must be exactly 64 characters and contain only lowercase hexadecimal \
             characters."
        );
        assert_eq!(
            error("user a <nope"),
            "users.acl:1: The password you are trying to remove from the user does not exist."
        );
        assert!(
            error("user a allkeys ~x")
                .starts_with("users.acl:1: Adding a pattern after the * pattern (or the 'allkeys'")
        );
        assert!(
            error("user a &* &x")
                .starts_with("users.acl:1: Adding a pattern after the * pattern (or the 'allchannels'")
        );
        assert_eq!(error("user a on\nuser a off"), "WARNING: Duplicate user 'a' found on line 2.");
        // Every fault at once, in order.
        assert_eq!(
            error("user a +nosuch\nuser b on\nuser c bogus -nosuch"),
            "users.acl:1: Unknown command or category name in ACL. users.acl:3: Syntax error. users.acl:3: Unknown \
             command or category name in ACL."
        );
    }
}
