//! One ACL user and Redis's rules that shape it (`on`, `>password`,
//! `~pattern`, `+@category`, …), applied left to right as Redis does, and
//! the checks a command goes through: may this user run it, on these keys.

use sha2::{Digest, Sha256};

use super::entries::{self, ENTRIES};
use crate::resp::cmd::category::Categories;
use crate::resp::glob;

/// A password as it is kept: its SHA-256, never the text.
pub(crate) type PasswordHash = [u8; 32];

/// Why a rule cannot be applied, worded as Redis's `ACLSetUserStringError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RuleError {
    /// `+nosuch`, `+@nosuch`, `-select|0`.
    #[error("Unknown command or category name in ACL")]
    UnknownName,
    /// Anything that is not a rule.
    #[error("Syntax error")]
    Syntax,
    /// `~x` after `allkeys`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. \
         Try 'resetkeys' to start with an empty list of patterns"
    )]
    KeyPatternAfterAll,
    /// `&x` after `allchannels`.
    #[error(
        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any \
         effect. Try 'resetchannels' to start with an empty list of channels"
    )]
    ChannelPatternAfterAll,
    /// `<pw` or `!hash` of a password the user does not have.
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    /// `#hash` that is not 64 lower-case hex digits.
    #[error("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")]
    BadHash,
}

/// A key pattern and what it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

/// A user: whether it may log in and with what, and what it may run on
/// which keys. A fresh user is Redis's: `off`, no password, `-@all`, no
/// keys, no channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    name: String,
    enabled: bool,
    nopass: bool,
    passwords: Vec<PasswordHash>,
    /// Per ACL entry (command or subcommand, see `entries`): allowed.
    allowed: Vec<bool>,
    /// First arguments allowed for a command that is otherwise denied
    /// (`+select|0`), per entry.
    first_args: Vec<(usize, Vec<Vec<u8>>)>,
    /// Set by `+@all`: the description starts from `+@all`.
    from_all: bool,
    /// The command rules since the last `+@all`/`-@all`, each name once,
    /// for ACL LIST and GETUSER (as Redis keeps them).
    command_rules: Vec<String>,
    all_keys: bool,
    keys: Vec<KeyPattern>,
    all_channels: bool,
    channels: Vec<Vec<u8>>,
}

impl User {
    /// A fresh user named `name`.
    pub(crate) fn new(name: &str) -> Self {
        User {
            name: name.to_owned(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            allowed: vec![false; ENTRIES.len()],
            first_args: Vec::new(),
            from_all: false,
            command_rules: Vec::new(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
        }
    }

    /// A user built from `rules` (which are known to be valid).
    pub(crate) fn with_rules(name: &str, rules: &[&[u8]]) -> Self {
        let mut user = User::new(name);
        for rule in rules {
            let applied = user.apply(rule);
            debug_assert!(applied.is_ok(), "{:?}", String::from_utf8_lossy(rule));
        }
        user
    }

    /// The user's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `on`: may authenticate and run commands.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// `nopass`: any password (or none) is accepted.
    pub(crate) fn nopass(&self) -> bool {
        self.nopass
    }

    /// Whether `password` opens this user (an enabled one).
    pub(crate) fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let given = hash(password);
        // Every stored hash is compared in full: the time taken does not
        // tell which one (or how much of one) matched.
        self.passwords.iter().fold(false, |found, stored| same_hash(stored, &given) | found)
    }

    /// Applies one rule, as `ACL SETUSER` and the ACL file do.
    pub(crate) fn apply(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let word = |w: &str| rule.eq_ignore_ascii_case(w.as_bytes());
        if word("on") {
            self.enabled = true;
        } else if word("off") {
            self.enabled = false;
        } else if word("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if word("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if word("allkeys") || rule == b"~*" {
            self.all_keys = true;
            self.keys.clear();
        } else if word("resetkeys") {
            self.all_keys = false;
            self.keys.clear();
        } else if word("allchannels") || rule == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if word("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if word("allcommands") || word("+@all") {
            self.set_all_commands(true);
        } else if word("nocommands") || word("-@all") {
            self.set_all_commands(false);
        } else if word("reset") {
            for rule in ["resetpass", "resetkeys", "resetchannels", "off", "-@all"] {
                self.apply(rule.as_bytes())?;
            }
        } else if let Some(password) = rule.strip_prefix(b">") {
            self.add_password(hash(password));
        } else if let Some(password) = rule.strip_prefix(b"<") {
            self.remove_password(&hash(password))?;
        } else if let Some(hex) = rule.strip_prefix(b"#") {
            self.add_password(parse_hash(hex)?);
        } else if let Some(hex) = rule.strip_prefix(b"!") {
            self.remove_password(&parse_hash(hex)?)?;
        } else if let Some(pattern) = rule.strip_prefix(b"~") {
            self.add_key_pattern(pattern, true, true)?;
        } else if let Some(rest) = rule.strip_prefix(b"%") {
            if self.all_keys {
                return Err(RuleError::KeyPatternAfterAll);
            }
            let tilde = rest.iter().position(|&b| b == b'~').ok_or(RuleError::Syntax)?;
            let (mut read, mut write) = (false, false);
            for flag in &rest[..tilde] {
                match flag.to_ascii_uppercase() {
                    b'R' => read = true,
                    b'W' => write = true,
                    _ => return Err(RuleError::Syntax),
                }
            }
            if !read && !write {
                return Err(RuleError::Syntax);
            }
            self.add_key_pattern(&rest[tilde + 1..], read, write)?;
        } else if let Some(pattern) = rule.strip_prefix(b"&") {
            if self.all_channels {
                return Err(RuleError::ChannelPatternAfterAll);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(pattern.to_vec());
            }
        } else if let Some(name) = rule.strip_prefix(b"+@") {
            self.set_category(name, true)?;
        } else if let Some(name) = rule.strip_prefix(b"-@") {
            self.set_category(name, false)?;
        } else if let Some(name) = rule.strip_prefix(b"+") {
            self.allow_command(name)?;
        } else if let Some(name) = rule.strip_prefix(b"-") {
            self.deny_command(name)?;
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_password(&mut self, hash: PasswordHash) {
        self.nopass = false;
        if !self.passwords.contains(&hash) {
            self.passwords.push(hash);
        }
    }

    fn remove_password(&mut self, hash: &PasswordHash) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|stored| stored != hash);
        if self.passwords.len() == before {
            return Err(RuleError::NoSuchPassword);
        }
        self.nopass = false;
        Ok(())
    }

    fn add_key_pattern(&mut self, pattern: &[u8], read: bool, write: bool) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeyPatternAfterAll);
        }
        if read && write && pattern == b"*" {
            self.all_keys = true;
            self.keys.clear();
            return Ok(());
        }
        match self.keys.iter_mut().find(|k| k.pattern == pattern) {
            Some(known) => {
                known.read |= read;
                known.write |= write;
            }
            None => self.keys.push(KeyPattern { pattern: pattern.to_vec(), read, write }),
        }
        Ok(())
    }

    fn set_all_commands(&mut self, allowed: bool) {
        self.allowed.iter_mut().for_each(|a| *a = allowed);
        self.first_args.clear();
        self.from_all = allowed;
        self.command_rules.clear();
    }

    fn set_category(&mut self, name: &[u8], allowed: bool) -> Result<(), RuleError> {
        let category = Categories::named(name).ok_or(RuleError::UnknownName)?;
        for (id, entry) in ENTRIES.iter().enumerate() {
            // Each entry by its own categories: a command's subcommands
            // have theirs (`acl|whoami` is not `@dangerous`).
            if entry.categories.contains(category) {
                self.set_entries(id..id + 1, allowed);
            }
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.note_rule(&format!("@{name}"), allowed);
        Ok(())
    }

    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        if let Some(id) = entries::lookup(name) {
            self.set_entries(entries::with_subcommands(id), true);
        } else {
            // `+select|0`: a first argument of a command without
            // subcommands (Redis allows it, deprecated).
            let bar = name.iter().position(|&b| b == b'|').ok_or(RuleError::UnknownName)?;
            let (command, arg) = (&name[..bar], &name[bar + 1..]);
            if arg.is_empty() || arg.contains(&b'|') {
                return Err(RuleError::Syntax);
            }
            let id = entries::lookup(command).ok_or(RuleError::UnknownName)?;
            if entries::has_subcommands(id) {
                return Err(RuleError::UnknownName);
            }
            let arg = arg.to_ascii_lowercase();
            match self.first_args.iter_mut().find(|(known, _)| *known == id) {
                Some((_, args)) if args.contains(&arg) => {}
                Some((_, args)) => args.push(arg),
                None => self.first_args.push((id, vec![arg])),
            }
        }
        self.note_rule(&String::from_utf8_lossy(name).to_ascii_lowercase(), true);
        Ok(())
    }

    fn deny_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let id = entries::lookup(name).ok_or(RuleError::UnknownName)?;
        self.set_entries(entries::with_subcommands(id), false);
        self.note_rule(&String::from_utf8_lossy(name).to_ascii_lowercase(), false);
        Ok(())
    }

    /// Allows or denies entries (a command by name brings its subcommands
    /// along); either way their allowed first arguments are forgotten, as
    /// Redis does.
    fn set_entries(&mut self, ids: std::ops::Range<usize>, allowed: bool) {
        for sub in ids {
            if let Some(slot) = self.allowed.get_mut(sub) {
                *slot = allowed;
            }
            self.first_args.retain(|(known, _)| *known != sub);
        }
    }

    /// Records a command rule for the description: an earlier rule on the
    /// same name goes, the new one is appended.
    fn note_rule(&mut self, name: &str, allowed: bool) {
        self.command_rules.retain(|rule| &rule[1..] != name);
        self.command_rules.push(format!("{}{name}", if allowed { '+' } else { '-' }));
    }

    /// Whether the user may run entry `id` with `first_arg` after it.
    pub(crate) fn may_run(&self, id: usize, first_arg: Option<&[u8]>) -> bool {
        if self.allowed.get(id).copied().unwrap_or(false) {
            return true;
        }
        let Some(arg) = first_arg else { return false };
        self.first_args
            .iter()
            .find(|(known, _)| *known == id)
            .is_some_and(|(_, args)| args.iter().any(|a| arg.eq_ignore_ascii_case(a)))
    }

    /// Whether every key is allowed whatever the access (`~*`).
    pub(crate) fn all_keys(&self) -> bool {
        self.all_keys
    }

    /// Whether `key` may be used for a read and/or a write (neither: any
    /// pattern matching the key allows it, as Redis checks EXISTS).
    pub(crate) fn may_use_key(&self, key: &[u8], read: bool, write: bool) -> bool {
        self.all_keys
            || self
                .keys
                .iter()
                .any(|k| (k.read || !read) && (k.write || !write) && glob::matches(&k.pattern, key, false))
    }

    /// ACL GETUSER's `flags`.
    pub(crate) fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        flags
    }

    /// The password hashes, in hex.
    pub(crate) fn password_hexes(&self) -> impl Iterator<Item = String> + '_ {
        self.passwords.iter().map(|hash| hex(hash))
    }

    /// The command rules, as Redis 7 describes them (`-@all +@read -keys`).
    pub(crate) fn describe_commands(&self) -> String {
        let mut text = String::from(if self.from_all { "+@all" } else { "-@all" });
        for rule in &self.command_rules {
            text.push(' ');
            text.push_str(rule);
        }
        text
    }

    /// The key patterns (`~*`, `%R~app:* ~cache:*`), space-separated.
    pub(crate) fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".to_owned();
        }
        let patterns = self.keys.iter().map(|k| {
            let prefix = match (k.read, k.write) {
                (true, true) => "~",
                (true, false) => "%R~",
                _ => "%W~",
            };
            format!("{prefix}{}", String::from_utf8_lossy(&k.pattern))
        });
        patterns.collect::<Vec<_>>().join(" ")
    }

    /// The channel patterns (`&*`, `&news.*`), space-separated.
    pub(crate) fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".to_owned();
        }
        self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
    }

    /// ACL LIST's line: `user NAME on #hash… ~keys &channels commands`,
    /// rules that rebuild the user when read back.
    pub(crate) fn describe(&self) -> String {
        let mut parts: Vec<String> = vec!["user".into(), self.name.clone()];
        parts.extend(self.flags().into_iter().map(str::to_owned));
        parts.extend(self.password_hexes().map(|h| format!("#{h}")));
        let keys = self.describe_keys();
        parts.push(if keys.is_empty() { "resetkeys".to_owned() } else { keys });
        let channels = self.describe_channels();
        if !self.all_channels {
            parts.push("resetchannels".to_owned());
        }
        if !channels.is_empty() {
            parts.push(channels);
        }
        parts.push(self.describe_commands());
        parts.join(" ")
    }
}

/// SHA-256 of a password.
pub(crate) fn hash(password: &[u8]) -> PasswordHash {
    Sha256::digest(password).into()
}

fn same_hash(a: &PasswordHash, b: &PasswordHash) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A `#hash` rule's hash: exactly 64 lower-case hex digits.
fn parse_hash(hex: &[u8]) -> Result<PasswordHash, RuleError> {
    if hex.len() != 64 {
        return Err(RuleError::BadHash);
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        _ => Err(RuleError::BadHash),
    };
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Ok(hash)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &str) -> User {
        let mut user = User::new("u");
        for rule in rules.split_whitespace() {
            user.apply(rule.as_bytes()).unwrap_or_else(|e| panic!("{rule}: {e}"));
        }
        user
    }

    fn id(name: &str) -> usize {
        entries::lookup(name.as_bytes()).unwrap()
    }

    #[test]
    fn a_fresh_user_is_off_and_may_do_nothing() {
        let u = User::new("u");
        assert!(!u.enabled() && !u.nopass() && !u.accepts(b""));
        assert!(!u.may_run(id("get"), None));
        assert!(!u.may_use_key(b"k", false, false));
        assert_eq!(u.describe(), "user u off resetkeys resetchannels -@all");
    }

    #[test]
    fn passwords_by_text_and_by_hash() {
        let mut u = user("on >secret");
        assert!(u.accepts(b"secret") && !u.accepts(b"Secret") && !u.accepts(b""));
        let sha = hex(&hash(b"other"));
        u.apply(format!("#{sha}").as_bytes()).unwrap();
        assert!(u.accepts(b"other") && u.accepts(b"secret"));
        assert_eq!(u.password_hexes().count(), 2);
        u.apply(b"<secret").unwrap();
        assert!(!u.accepts(b"secret") && u.accepts(b"other"));
        assert_eq!(u.apply(b"<secret"), Err(RuleError::NoSuchPassword));
        u.apply(format!("!{sha}").as_bytes()).unwrap();
        assert!(!u.accepts(b"other"));
        assert_eq!(u.apply(format!("!{sha}").as_bytes()), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(b"#abc"), Err(RuleError::BadHash));
        assert_eq!(u.apply(format!("#{}", sha.to_uppercase()).as_bytes()), Err(RuleError::BadHash));
        // The text is never kept: only its SHA-256.
        u.apply(b">pw").unwrap();
        assert_eq!(u.password_hexes().next().unwrap(), hex(&hash(b"pw")));
        assert!(!format!("{u:?}").contains("pw\""));
    }

    #[test]
    fn nopass_resetpass_on_off() {
        let mut u = user("on nopass");
        assert!(u.accepts(b"anything") && u.nopass());
        u.apply(b">pw").unwrap();
        assert!(!u.nopass() && !u.accepts(b"anything") && u.accepts(b"pw"));
        u.apply(b"resetpass").unwrap();
        assert!(!u.accepts(b"pw") && !u.nopass());
        u.apply(b"nopass").unwrap();
        u.apply(b"OFF").unwrap();
        assert!(!u.accepts(b"x"), "a disabled user accepts nothing");
        assert_eq!(u.flags(), ["off", "nopass"]);
    }

    #[test]
    fn key_patterns_read_write_and_all() {
        let u = user("~app:* %R~ro:* %W~wo:*");
        assert!(u.may_use_key(b"app:1", true, true));
        assert!(u.may_use_key(b"ro:1", true, false) && !u.may_use_key(b"ro:1", false, true));
        assert!(u.may_use_key(b"wo:1", false, true) && !u.may_use_key(b"wo:1", true, false));
        assert!(u.may_use_key(b"wo:1", false, false), "existence needs any pattern");
        assert!(!u.may_use_key(b"other", false, false));
        assert_eq!(u.describe_keys(), "~app:* %R~ro:* %W~wo:*");
        let mut u = user("%RW~x allkeys");
        assert!(u.all_keys() && u.may_use_key(b"anything", true, true));
        assert_eq!(u.apply(b"~more"), Err(RuleError::KeyPatternAfterAll));
        assert_eq!(u.apply(b"%R~more"), Err(RuleError::KeyPatternAfterAll));
        u.apply(b"resetkeys").unwrap();
        assert!(!u.may_use_key(b"anything", false, false));
        assert_eq!(u.apply(b"%X~k"), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"%R"), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"%~k"), Err(RuleError::Syntax));
        assert!(user("%RW~*").all_keys(), "%RW~* is allkeys");
        assert!(!user("%R~*").all_keys());
        // A pattern given twice merges its permissions.
        assert_eq!(user("%R~k %W~k").describe_keys(), "~k");
    }

    #[test]
    fn channels_are_accepted_and_described() {
        let mut u = user("&news.* &chat");
        assert_eq!(u.describe_channels(), "&news.* &chat");
        u.apply(b"allchannels").unwrap();
        assert_eq!(u.describe_channels(), "&*");
        assert_eq!(u.apply(b"&more"), Err(RuleError::ChannelPatternAfterAll));
        u.apply(b"resetchannels").unwrap();
        assert_eq!(u.describe_channels(), "");
    }

    #[test]
    fn categories_and_commands_apply_left_to_right() {
        let u = user("+@read");
        assert!(u.may_run(id("get"), None) && u.may_run(id("mget"), None));
        assert!(!u.may_run(id("set"), None));
        assert_eq!(u.describe_commands(), "-@all +@read");
        let u = user("+@all -@dangerous +keys");
        assert!(u.may_run(id("set"), None) && u.may_run(id("keys"), None));
        assert!(!u.may_run(id("config"), None) && !u.may_run(id("config|get"), None));
        assert!(!u.may_run(id("info"), None));
        assert_eq!(u.describe_commands(), "+@all -@dangerous +keys");
        let u = user("+@read -get");
        assert!(!u.may_run(id("get"), None) && u.may_run(id("mget"), None));
        // A later rule on the same name replaces the earlier in the description.
        assert_eq!(user("+get -get +get").describe_commands(), "-@all +get");
        assert_eq!(user("+@read allcommands").describe_commands(), "+@all");
        assert_eq!(user("+@all nocommands +ping").describe_commands(), "-@all +ping");
        assert_eq!(user("+@READ").describe_commands(), "-@all +@read");
    }

    #[test]
    fn subcommands_and_first_args() {
        let u = user("+config|get");
        assert!(u.may_run(id("config|get"), None));
        assert!(!u.may_run(id("config|set"), None) && !u.may_run(id("config"), None));
        let u = user("+config -config|set");
        assert!(u.may_run(id("config|get"), None) && !u.may_run(id("config|set"), None));
        let u = user("+acl -@dangerous");
        assert!(u.may_run(id("acl|whoami"), None) && u.may_run(id("acl|cat"), None));
        assert!(!u.may_run(id("acl|list"), None));
        let u = user("+select|0");
        assert!(u.may_run(id("select"), Some(b"0")) && !u.may_run(id("select"), Some(b"1")));
        assert!(!u.may_run(id("select"), None));
        assert!(!user("+select|0 -select").may_run(id("select"), Some(b"0")));
        let mut u = User::new("u");
        assert_eq!(u.apply(b"+nosuch"), Err(RuleError::UnknownName));
        assert_eq!(u.apply(b"-nosuch"), Err(RuleError::UnknownName));
        assert_eq!(u.apply(b"+@nosuch"), Err(RuleError::UnknownName));
        assert_eq!(u.apply(b"-select|0"), Err(RuleError::UnknownName));
        assert_eq!(u.apply(b"+config|nosuch"), Err(RuleError::UnknownName));
        assert_eq!(u.apply(b"+select|"), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"whatever"), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"(+get ~k)"), Err(RuleError::Syntax));
    }

    #[test]
    fn reset_returns_to_a_fresh_user() {
        let mut u = user("on >pw ~* &* +@all");
        u.apply(b"reset").unwrap();
        assert_eq!(u, User::new("u"));
    }

    #[test]
    fn described_users_read_back_the_same() {
        for rules in ["on nopass ~* &* +@all", "on >pw %R~a:* ~b &c +@read -mget +config|get", "off resetchannels"] {
            let u = user(rules);
            let line = u.describe();
            let again = user(line.strip_prefix("user u ").unwrap());
            assert_eq!(again, u, "{line}");
        }
    }
}
