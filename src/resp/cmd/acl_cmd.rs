//! `ACL`: who am I, who exists, what categories mean, and reloading the
//! ACL file. Users are defined only in the ACL file, per node: SETUSER,
//! DELUSER and SAVE are refused, since a change made on one node would
//! not reach the others (nothing replicates users across the mesh).

use super::category::Categories;
use super::{CommandError, Ctx, is, unknown_subcommand};
use crate::resp::acl::entries::ENTRIES;
use crate::resp::parse::Args;
use crate::resp::reply;

/// `ACL WHOAMI|LIST|USERS|CAT|GETUSER|LOAD|HELP` (and the refused
/// SETUSER, DELUSER, SAVE).
pub(super) fn acl(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let sub = args.arg(1);
    let users = &ctx.shared.users;
    if is(sub, "WHOAMI") {
        reply::bulk(ctx.out, ctx.session.user_name().as_bytes());
    } else if is(sub, "USERS") {
        let all = users.snapshot();
        reply::array(ctx.out, all.len());
        for name in all.keys() {
            reply::bulk(ctx.out, name.as_bytes());
        }
    } else if is(sub, "LIST") {
        let all = users.snapshot();
        reply::array(ctx.out, all.len());
        for user in all.values() {
            reply::bulk(ctx.out, user.describe().as_bytes());
        }
    } else if is(sub, "GETUSER") {
        let name = String::from_utf8_lossy(args.arg(2));
        let Some(user) = users.get(&name) else {
            reply::null(ctx.out);
            return Ok(());
        };
        // A map: in RESP2, field names and values alternate, as Redis sends.
        reply::map(ctx.out, 6);
        reply::bulk(ctx.out, b"flags");
        let flags = user.flags();
        reply::array(ctx.out, flags.len());
        for flag in flags {
            reply::bulk(ctx.out, flag.as_bytes());
        }
        reply::bulk(ctx.out, b"passwords");
        let hexes: Vec<String> = user.password_hexes().collect();
        reply::array(ctx.out, hexes.len());
        for hex in &hexes {
            reply::bulk(ctx.out, hex.as_bytes());
        }
        reply::bulk(ctx.out, b"commands");
        reply::bulk(ctx.out, user.describe_commands().as_bytes());
        reply::bulk(ctx.out, b"keys");
        reply::bulk(ctx.out, user.describe_keys().as_bytes());
        reply::bulk(ctx.out, b"channels");
        reply::bulk(ctx.out, user.describe_channels().as_bytes());
        reply::bulk(ctx.out, b"selectors");
        reply::array(ctx.out, 0);
    } else if is(sub, "CAT") {
        match args.get(2) {
            None => {
                reply::array(ctx.out, Categories::ALL.len());
                for (name, _) in Categories::ALL {
                    reply::bulk(ctx.out, name.as_bytes());
                }
            }
            Some(name) if args.len() == 3 => {
                let Some(category) = Categories::named(name) else {
                    return Err(CommandError::echoing("ERR Unknown category '", name, "'"));
                };
                let members: Vec<&str> = ENTRIES
                    .iter()
                    .filter(|entry| entry.categories.contains(category))
                    .map(|entry| entry.name.as_str())
                    .collect();
                reply::array(ctx.out, members.len());
                for name in members {
                    reply::bulk(ctx.out, name.as_bytes());
                }
            }
            Some(_) => return Err(CommandError::Arity("acl|cat")),
        }
    } else if is(sub, "LOAD") {
        if let Err(error) = users.reload() {
            tracing::warn!(%error, "ACL LOAD failed; the users stay as they were");
            return Err(CommandError::Message(format!("ERR {error}").into()));
        }
        reply::ok(ctx.out);
    } else if is(sub, "SETUSER") || is(sub, "DELUSER") || is(sub, "SAVE") {
        return Err(CommandError::fixed(
            "ERR users are defined in the aclfile on each node (nothing replicates them across the mesh): edit \
             the file and run ACL LOAD",
        ));
    } else if is(sub, "HELP") {
        reply::array(ctx.out, HELP.len());
        for line in HELP {
            reply::simple(ctx.out, line.as_bytes());
        }
    } else {
        return Err(unknown_subcommand(args, "ACL"));
    }
    Ok(())
}

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "GETUSER <username>",
    "    Get the user's details.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "(SETUSER, DELUSER and SAVE are refused: users are defined in each node's aclfile.)",
    "HELP",
    "    Print this help.",
];
