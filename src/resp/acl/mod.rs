//! Client authentication: users, their passwords and permissions, in
//! Redis's ACL model.
//!
//! - `user` — one user and the rules that shape it (`on`, `>pw`, `~k*`,
//!   `+@read`, …), and the checks a command goes through.
//! - `entries` — what command rules name: commands and subcommands.
//! - `file` — Redis's ACL file syntax.
//! - `throttle` — the growing delay on AUTH after failures from one
//!   address.
//!
//! The users live in [`Users`], which ACL LOAD replaces as a whole; each
//! session keeps its user by name and looks it up again when the
//! generation has moved, so a changed user applies from the session's next
//! command and a deleted or disabled one ends it.

pub(crate) mod entries;
mod file;
pub(crate) mod throttle;
pub(crate) mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::RwLock;

pub use self::file::AclFileError;
use self::file::{DEFAULT_RULES, UserMap};
pub use self::throttle::AuthThrottleLimits;
use self::user::User;

/// Where a node's users come from, validated at start.
#[derive(Clone, Debug)]
pub struct UserSource {
    users: UserMap,
    aclfile: Option<PathBuf>,
}

impl UserSource {
    /// Only the `default` user: without `password`, `on nopass ~* &* +@all`;
    /// with it, `on >password ~* &* +@all`.
    pub fn default_user(password: Option<&str>) -> Self {
        let user = match password {
            None => User::with_rules("default", DEFAULT_RULES),
            Some(password) => {
                let mut user = User::with_rules("default", &[b"on", b"~*", b"&*", b"+@all"]);
                let mut rule = b">".to_vec();
                rule.extend_from_slice(password.as_bytes());
                let applied = user.apply(&rule);
                debug_assert!(applied.is_ok());
                user
            }
        };
        UserSource { users: [("default".to_owned(), Arc::new(user))].into(), aclfile: None }
    }

    /// The users of the ACL file at `path`, which ACL LOAD reads again.
    pub fn aclfile(path: &Path) -> Result<Self, AclFileError> {
        Ok(UserSource { users: file::load(path)?, aclfile: Some(path.to_owned()) })
    }

    /// The users of an ACL file's text (for tests).
    #[cfg(test)]
    pub(crate) fn from_text(text: &str) -> Self {
        let users = file::parse("test.acl", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        UserSource { users, aclfile: None }
    }

    /// The ACL file, if the users come from one.
    pub fn aclfile_path(&self) -> Option<&Path> {
        self.aclfile.as_deref()
    }
}

/// The users of a running node.
#[derive(Debug)]
pub struct Users {
    users: RwLock<Arc<UserMap>>,
    /// Moves on every ACL LOAD: sessions look their user up again.
    generation: AtomicU64,
    /// The default user is on and `nopass` (read on every command).
    default_open: AtomicBool,
    aclfile: Option<PathBuf>,
}

impl Users {
    /// The users of `source`.
    pub fn new(source: UserSource) -> Self {
        let default_open = AtomicBool::new(open(&source.users));
        Users {
            users: RwLock::new(Arc::new(source.users)),
            generation: AtomicU64::new(0),
            default_open,
            aclfile: source.aclfile,
        }
    }

    /// The users now.
    pub(crate) fn snapshot(&self) -> Arc<UserMap> {
        self.users.read().clone()
    }

    /// The generation now: a session whose user was looked up in another
    /// generation looks it up again.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The user named `name` now.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// Whether new connections run as `default` without AUTH (Redis's
    /// rule: the default user is on and `nopass`).
    pub(crate) fn default_is_open(&self) -> bool {
        self.default_open.load(Ordering::Acquire)
    }

    /// Whether the default user is `nopass` (on or off): `AUTH password`
    /// is then a configuration mistake, as Redis says.
    pub(crate) fn default_is_nopass(&self) -> bool {
        self.users.read().get("default").is_some_and(|u| u.nopass())
    }

    /// ACL LOAD: reads the ACL file again; on any fault the users stay as
    /// they were.
    pub(crate) fn reload(&self) -> Result<(), AclFileError> {
        let Some(path) = &self.aclfile else {
            return Err(AclFileError(
                "This node is not configured to use an ACL file: set aclfile (--aclfile) to define users".into(),
            ));
        };
        let users = file::load(path)?;
        let mut current = self.users.write();
        self.default_open.store(open(&users), Ordering::Release);
        *current = Arc::new(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

fn open(users: &UserMap) -> bool {
    users.get("default").is_some_and(|u| u.enabled() && u.nopass())
}

/// Why AUTH failed: one answer for an unknown user, a disabled one and a
/// wrong password, as Redis gives, so that AUTH does not tell which names
/// exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("WRONGPASS invalid username-password pair or user is disabled.")]
pub(crate) struct WrongPass;

/// Checks `password` for the user `name`: the one check behind `AUTH` (and
/// `HELLO … AUTH`).
pub(crate) fn authenticate(users: &Users, name: &[u8], password: &[u8]) -> Result<Arc<User>, WrongPass> {
    let name = std::str::from_utf8(name).map_err(|_| WrongPass)?;
    let user = users.get(name).ok_or(WrongPass)?;
    if user.accepts(password) { Ok(user) } else { Err(WrongPass) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_checks_name_password_and_state() {
        let users = Users::new(UserSource::default_user(Some("sesame")));
        assert!(authenticate(&users, b"default", b"sesame").is_ok());
        assert_eq!(authenticate(&users, b"default", b"nope").unwrap_err(), WrongPass);
        assert_eq!(authenticate(&users, b"nobody", b"sesame").unwrap_err(), WrongPass);
        assert!(!users.default_is_open());
        let open = Users::new(UserSource::default_user(None));
        assert!(open.default_is_open());
        assert!(authenticate(&open, b"default", b"anything").is_ok());
    }

    #[test]
    fn reload_keeps_the_old_users_on_error() {
        let dir = std::env::temp_dir().join(format!("rumor-acl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.acl");
        std::fs::write(&path, "user alice on >one +@all ~*\n").unwrap();
        let users = Users::new(UserSource::aclfile(&path).unwrap());
        assert!(authenticate(&users, b"alice", b"one").is_ok());
        std::fs::write(&path, "user alice on >two +@all ~*\nuser bob +nosuch\n").unwrap();
        let error = users.reload().unwrap_err().to_string();
        assert_eq!(error, format!("{}:2: Unknown command or category name in ACL.", path.display()));
        assert!(authenticate(&users, b"alice", b"one").is_ok());
        assert_eq!(users.generation(), 0);
        std::fs::write(&path, "user alice on >two +@all ~*\n").unwrap();
        users.reload().unwrap();
        assert!(authenticate(&users, b"alice", b"one").is_err() && authenticate(&users, b"alice", b"two").is_ok());
        assert_eq!(users.generation(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
