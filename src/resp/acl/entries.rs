//! What ACL command rules name: every command of the table and every
//! subcommand it lists (`config|get`), each with its categories, numbered
//! so that a user's permissions are one flag per entry.

use std::sync::LazyLock;

use crate::resp::cmd::COMMANDS;
use crate::resp::cmd::category::Categories;

/// One command or subcommand.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `get`, `config|get`.
    pub(crate) name: String,
    /// Its ACL categories.
    pub(crate) categories: Categories,
    /// How many subcommand entries follow it (0 for a subcommand).
    subcommands: usize,
}

/// Every entry: a command, then its subcommands, in table order.
pub(crate) static ENTRIES: LazyLock<Vec<Entry>> = LazyLock::new(|| {
    let mut entries = Vec::new();
    for spec in COMMANDS {
        entries.push(Entry {
            name: spec.name.to_owned(),
            categories: spec.categories,
            subcommands: spec.subcommands.len(),
        });
        for sub in spec.subcommands {
            let name = format!("{}|{}", spec.name, sub.name);
            entries.push(Entry { name, categories: sub.categories, subcommands: 0 });
        }
    }
    entries
});

/// The entry of each command of the table, by table index.
static COMMAND_ENTRIES: LazyLock<Vec<usize>> = LazyLock::new(|| {
    let mut next = 0;
    COMMANDS
        .iter()
        .map(|spec| {
            let id = next;
            next += 1 + spec.subcommands.len();
            id
        })
        .collect()
});

/// The entry named `name` (`get`, `CONFIG|GET`), any case.
pub(crate) fn lookup(name: &[u8]) -> Option<usize> {
    ENTRIES.iter().position(|entry| name.eq_ignore_ascii_case(entry.name.as_bytes()))
}

/// Whether entry `id` is a command with subcommands.
pub(crate) fn has_subcommands(id: usize) -> bool {
    ENTRIES.get(id).is_some_and(|entry| entry.subcommands > 0)
}

/// Entry `id` and, for a command, its subcommands' entries.
pub(crate) fn with_subcommands(id: usize) -> std::ops::Range<usize> {
    let subcommands = ENTRIES.get(id).map_or(0, |entry| entry.subcommands);
    id..id + 1 + subcommands
}

/// The entry a call of the command at table index `command` checks: the
/// subcommand named by `first_arg` if the command lists it, else the
/// command itself.
pub(crate) fn for_call(command: usize, first_arg: Option<&[u8]>) -> usize {
    let id = COMMAND_ENTRIES.get(command).copied().unwrap_or(0);
    let subs = COMMANDS.get(command).map_or(&[][..], |spec| spec.subcommands);
    match first_arg.and_then(|arg| subs.iter().position(|sub| arg.eq_ignore_ascii_case(sub.name.as_bytes()))) {
        Some(sub) => id + 1 + sub,
        None => id,
    }
}

/// The name of entry `id`.
pub(crate) fn name(id: usize) -> &'static str {
    ENTRIES.get(id).map_or("", |entry| entry.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_subcommands_are_numbered_in_table_order() {
        let config = COMMANDS.iter().position(|spec| spec.name == "config").unwrap();
        let id = for_call(config, None);
        assert_eq!(name(id), "config");
        assert_eq!(name(for_call(config, Some(b"GET"))), "config|get");
        assert_eq!(name(for_call(config, Some(b"nosuch"))), "config");
        assert_eq!(lookup(b"Config|Set"), Some(id + 2));
        assert!(has_subcommands(id) && !has_subcommands(id + 1));
        assert_eq!(with_subcommands(id), id..id + 1 + COMMANDS[config].subcommands.len());
        let get = COMMANDS.iter().position(|spec| spec.name == "get").unwrap();
        assert_eq!(name(for_call(get, Some(b"k"))), "get");
        assert_eq!(ENTRIES.len(), COMMANDS.iter().map(|s| 1 + s.subcommands.len()).sum::<usize>());
    }
}
