//! The options every command takes (`--agent`, `--json`, `--offline`, `-C`, `-v`), parsed without
//! clap's copies of them.
//!
//! clap gives an argument declared `global = true` to each subcommand by cloning it into every one
//! when the command above is built: the five globals into the 40 subcommands at every start.
//! Without those copies, `whoami` at 10k tasks went from 239 to 177 page faults and from 2.33 to
//! 1.62-1.80 ms of CPU (medians of interleaved rounds). A command line is therefore
//! parsed first with its globals moved in front of the subcommand, where the top command takes
//! them as its own arguments; only when that parse fails (a usage error, `--help`, `--version`) or
//! may have read the line differently (below) is it parsed again, as declared, so what clap prints
//! is always what the declared command prints.
//!
//! Moving a token changes its meaning in two places only, and both go to the declared parse: a
//! global written where an option's value belongs (`--reason --json` is an error as declared,
//! `--reason` would take the next word once `--json` is moved out), and a command whose arguments
//! take anything (`hook NAME ARGS...`). Nothing after `--` is moved.

use std::ffi::OsString;

/// A command line with its globals moved to the front, and, for each run of moved tokens, the
/// token that stood just before it (whatever it is, the declared parse settles what it meant).
pub(super) struct Hoisted {
    pub(super) argv: Vec<OsString>,
    pub(super) before_moved: Vec<OsString>,
}

/// Moves the globals of `args` (program name first) in front of everything else.
pub(super) fn hoist(args: Vec<OsString>) -> Hoisted {
    let mut args = args.into_iter();
    let mut front: Vec<OsString> = args.next().into_iter().collect();
    let mut rest: Vec<OsString> = Vec::new();
    let mut before_moved = Vec::new();
    while let Some(arg) = args.next() {
        let taken = match arg.to_str() {
            Some("--") => {
                rest.push(arg);
                rest.extend(args.by_ref());
                break;
            }
            Some(s) => global_tokens(s),
            None => Taken::Not,
        };
        let value = match taken {
            Taken::Not => {
                rest.push(arg);
                continue;
            }
            Taken::Alone => None,
            Taken::WithValue => match args.as_slice().first() {
                Some(next) if !next.as_encoded_bytes().starts_with(b"-") => args.next(),
                // No value, or one that looks like an option: clap says what is wrong.
                _ => {
                    rest.push(arg);
                    continue;
                }
            },
        };
        if let Some(last) = rest.last() {
            before_moved.push(last.clone());
        }
        front.push(arg);
        front.extend(value);
    }
    front.append(&mut rest);
    Hoisted {
        argv: front,
        before_moved,
    }
}

enum Taken {
    Not,
    Alone,
    WithValue,
}

/// Whether `s` is a global option, and whether it takes the next token as its value.
fn global_tokens(s: &str) -> Taken {
    match s {
        "--json" | "--offline" | "--verbose" => Taken::Alone,
        "--agent" | "-C" => Taken::WithValue,
        _ if s.starts_with("--agent=") => Taken::Alone,
        _ if s.starts_with("-C") => Taken::Alone,
        _ if s.len() > 1 && s.starts_with('-') && s[1..].bytes().all(|b| b == b'v') => Taken::Alone,
        _ => Taken::Not,
    }
}

/// Whether the parse of the hoisted line can be trusted for the command that `leaf` is: no moved
/// token followed an option that takes a value, and the command does not take hyphenated words as
/// its arguments. A token this cannot place counts as doubt.
pub(super) fn trusted(leaf: &clap::Command, before_moved: &[OsString]) -> bool {
    if before_moved.is_empty() {
        return true;
    }
    if leaf
        .get_arguments()
        .any(|a| a.is_allow_hyphen_values_set() || a.is_trailing_var_arg_set())
    {
        return false;
    }
    before_moved.iter().all(|token| {
        let Some(token) = token.to_str() else {
            return true;
        };
        if token == "--" || !token.starts_with('-') || token.contains('=') {
            return true;
        }
        let takes_value =
            |arg: Option<&clap::Arg>| arg.is_none_or(|a| a.get_action().takes_values());
        if let Some(long) = token.strip_prefix("--") {
            let arg = leaf.get_arguments().find(|a| {
                a.get_long() == Some(long)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&long))
            });
            return !takes_value(arg);
        }
        token[1..].chars().all(|c| {
            let arg = leaf.get_arguments().find(|a| {
                a.get_short() == Some(c)
                    || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
            });
            !takes_value(arg)
        })
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::hoist;

    fn line(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    fn hoisted(s: &str) -> (String, Vec<String>) {
        let h = hoist(line(s));
        let join = |v: &[OsString]| {
            v.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        (join(&h.argv).join(" "), join(&h.before_moved))
    }

    #[test]
    fn globals_move_in_front_with_their_values_and_say_what_stood_before_them() {
        assert_eq!(
            hoisted("gc task claim --next --json --agent bob -vv"),
            (
                "gc --json --agent bob -vv task claim --next".into(),
                vec!["--next".into(), "--next".into(), "--next".into()]
            )
        );
        assert_eq!(
            hoisted("gc -C /x --agent=a task list -C/y --offline"),
            (
                "gc -C /x --agent=a -C/y --offline task list".into(),
                vec!["list".into(), "list".into()]
            )
        );
    }

    /// Trusted: a global after a flag or a word. Not: after an option that takes a value (long,
    /// short or in a cluster), after an option the command does not have, or in `hook`'s words.
    #[test]
    fn a_moved_global_is_trusted_only_where_it_meant_the_same_before() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        cli.build();
        let leaf = |path: &[&str]| {
            path.iter().fold(&cli, |cmd, name| {
                cmd.find_subcommand(name).expect("a subcommand")
            })
        };
        let trusted = |path: &[&str], before: &[&str]| {
            let before: Vec<OsString> = before.iter().map(OsString::from).collect();
            super::trusted(leaf(path), &before)
        };
        assert!(trusted(&["task", "claim"], &["--next", "claim", "-"]));
        assert!(trusted(&["task", "block"], &["--reason=x", "ID"]));
        assert!(!trusted(&["task", "block"], &["--reason"]));
        assert!(!trusted(&["task", "new"], &["-d"]));
        assert!(!trusted(&["task", "new"], &["-Fd"]));
        assert!(!trusted(&["task", "claim"], &["--no-such-option"]));
        assert!(!trusted(&["hook"], &["pre-push"]));
        assert!(trusted(&["hook"], &[]));
    }

    #[test]
    fn nothing_after_a_double_dash_moves_nor_a_global_without_its_value() {
        assert_eq!(
            hoisted("gc task comment 1 -- --json -v"),
            ("gc task comment 1 -- --json -v".into(), vec![])
        );
        assert_eq!(
            hoisted("gc task list --agent --json"),
            ("gc --json task list --agent".into(), vec!["--agent".into()])
        );
        assert_eq!(hoisted("gc -vx -d v"), ("gc -vx -d v".into(), vec![]));
    }
}
