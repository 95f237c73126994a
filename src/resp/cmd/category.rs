//! Redis's ACL categories (`@read`, `@write`, …) and the command flags that
//! go with them. Every command in the table carries both, so that ACL rules
//! (`+@read -@dangerous`), `ACL CAT` and `maxmemory`'s refusal of commands
//! that add data read them from the one place where commands are listed.

/// A set of ACL categories, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Categories(u32);

impl Categories {
    pub(crate) const KEYSPACE: Categories = Categories(1 << 0);
    pub(crate) const READ: Categories = Categories(1 << 1);
    pub(crate) const WRITE: Categories = Categories(1 << 2);
    pub(crate) const SET: Categories = Categories(1 << 3);
    pub(crate) const SORTEDSET: Categories = Categories(1 << 4);
    pub(crate) const LIST: Categories = Categories(1 << 5);
    pub(crate) const HASH: Categories = Categories(1 << 6);
    pub(crate) const STRING: Categories = Categories(1 << 7);
    pub(crate) const BITMAP: Categories = Categories(1 << 8);
    pub(crate) const HYPERLOGLOG: Categories = Categories(1 << 9);
    pub(crate) const GEO: Categories = Categories(1 << 10);
    pub(crate) const STREAM: Categories = Categories(1 << 11);
    pub(crate) const PUBSUB: Categories = Categories(1 << 12);
    pub(crate) const ADMIN: Categories = Categories(1 << 13);
    pub(crate) const FAST: Categories = Categories(1 << 14);
    pub(crate) const SLOW: Categories = Categories(1 << 15);
    pub(crate) const BLOCKING: Categories = Categories(1 << 16);
    pub(crate) const DANGEROUS: Categories = Categories(1 << 17);
    pub(crate) const CONNECTION: Categories = Categories(1 << 18);
    pub(crate) const TRANSACTION: Categories = Categories(1 << 19);
    pub(crate) const SCRIPTING: Categories = Categories(1 << 20);

    /// Every category, named as `ACL CAT` lists them, in Redis's order.
    pub(crate) const ALL: &'static [(&'static str, Categories)] = &[
        ("keyspace", Categories::KEYSPACE),
        ("read", Categories::READ),
        ("write", Categories::WRITE),
        ("set", Categories::SET),
        ("sortedset", Categories::SORTEDSET),
        ("list", Categories::LIST),
        ("hash", Categories::HASH),
        ("string", Categories::STRING),
        ("bitmap", Categories::BITMAP),
        ("hyperloglog", Categories::HYPERLOGLOG),
        ("geo", Categories::GEO),
        ("stream", Categories::STREAM),
        ("pubsub", Categories::PUBSUB),
        ("admin", Categories::ADMIN),
        ("fast", Categories::FAST),
        ("slow", Categories::SLOW),
        ("blocking", Categories::BLOCKING),
        ("dangerous", Categories::DANGEROUS),
        ("connection", Categories::CONNECTION),
        ("transaction", Categories::TRANSACTION),
        ("scripting", Categories::SCRIPTING),
    ];

    /// The category named `name` (without `@`, any case).
    pub(crate) fn named(name: &[u8]) -> Option<Categories> {
        Categories::ALL.iter().find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes())).map(|&(_, c)| c)
    }

    /// Whether every category of `other` is in `self`.
    pub(crate) const fn contains(self, other: Categories) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a category.
    #[cfg_attr(not(test), expect(dead_code, reason = "for maxmemory's and later checks; tested here"))]
    pub(crate) const fn intersects(self, other: Categories) -> bool {
        self.0 & other.0 != 0
    }

    /// Both sets together.
    pub(crate) const fn with(self, other: Categories) -> Categories {
        Categories(self.0 | other.0)
    }

    /// The names of the categories in `self`, in `ACL CAT` order.
    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        Categories::ALL.iter().filter(move |(_, c)| self.contains(*c)).map(|&(name, _)| name)
    }
}

/// The flags of a command that decide where it may run, beside its
/// categories (Redis's `COMMAND INFO` flags that rumor acts on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// Adds data: refused with `-OOM` above `maxmemory` (Redis's
    /// `denyoom`).
    pub(crate) const DENY_OOM: Flags = Flags(1 << 0);
    /// Allowed before `AUTH` (Redis's `no-auth`).
    pub(crate) const NO_AUTH: Flags = Flags(1 << 1);
    /// Allowed while the node is loading or catching up (Redis's `loading`).
    pub(crate) const LOADING: Flags = Flags(1 << 2);
    /// Refused inside MULTI (Redis's `no_multi`).
    pub(crate) const NO_MULTI: Flags = Flags(1 << 3);

    /// No flag.
    pub(crate) const NONE: Flags = Flags(0);

    /// Whether every flag of `other` is set.
    pub(crate) const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub(crate) const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Categories;

    #[test]
    fn names_round_trip_and_sets_combine() {
        for &(name, category) in Categories::ALL {
            assert_eq!(Categories::named(name.as_bytes()), Some(category));
            assert_eq!(Categories::named(name.to_uppercase().as_bytes()), Some(category));
        }
        assert_eq!(Categories::named(b"nosuch"), None);
        let both = Categories::READ.with(Categories::FAST);
        assert!(both.contains(Categories::READ) && both.contains(Categories::FAST));
        assert!(!both.contains(Categories::WRITE));
        assert!(both.intersects(Categories::FAST.with(Categories::WRITE)));
        assert_eq!(both.names().collect::<Vec<_>>(), ["read", "fast"]);
    }
}
