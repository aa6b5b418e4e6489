//! git's command line read the way git reads it, for exec rules that name git subcommands.
//!
//! A rule that compares tokens is not what git compares. git accepts any unique prefix of a long
//! option (`--ha` is `--hard`), bundles short flags (`-qf` is `-q -f`), takes the next argument
//! as an option's value even when it looks like an option (`-e -n` excludes "-n"; it is not a dry
//! run), reads global options before the subcommand (`-C dir`, `-c key=value`), expands an alias
//! defined on its own command line or in its environment (`-c alias.x='reset --hard' x`), and
//! runs `git-clean` (a link to git in git's exec path) as `git clean`.
//!
//! [`parse`] follows git's parse-options for the subcommands in `git::options` (tables taken from
//! git's own `-h` output) and returns a [`GitCommand`]: the subcommand path and each option in the
//! state git will act on, named canonically (`--force`, `--exclude=-n`, `-d`), then the
//! positionals. Rules are matched against that form, and their own option tokens are put in the
//! same form ([`canonical_pattern`]), so `-f` in a rule means what `--force`, `--forc` and `-qf`
//! mean to git. A subcommand without a table keeps its tokens as written.
//!
//! Pure: no I/O. What git reads from files (aliases in ~/.gitconfig, .git/config, a file named
//! by `GIT_CONFIG_GLOBAL`) is not seen here, and need not be: git runs an alias of a builtin as a
//! new git process with the alias's words (`git clean -fdx`), and that exec meets the rules in
//! turn (tests/tests/laundering.rs shows it with the real git). A shell alias (`!cmd`) runs
//! `cmd` through the shell, judged the same way.

use super::alias::{env_aliases, global_options, split_cmdline};
use super::options::{BUILTINS, SUBCOMMANDS};
use super::spec::{OptSpec, Value};

/// One argument of the canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// An option in the state git will act on: `--force`, `--no-force`, `--exclude=-n`.
    Option(String),
    /// `--`: what follows are paths (or refs), never options.
    DashDash,
    Positional(String),
}

/// A git invocation as git will run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitCommand {
    /// `["reset"]`, `["stash", "drop"]`, `["reflog", "expire"]`; empty when git runs no
    /// subcommand (`git --version`, `git` alone).
    pub subcommand: Vec<String>,
    pub args: Vec<Arg>,
    /// Whether the options were read with this subcommand's table. Without one, `args` are the
    /// tokens as written (each a positional).
    pub parsed: bool,
    /// git will refuse to run it as written (an ambiguous or unknown option, a missing value, a
    /// value given to a flag, `-h`): it prints an error or its usage and does nothing else.
    pub refused: bool,
    /// The subcommand is an alias git expands to a shell command (`!...`): what it runs is judged
    /// as its own exec.
    pub shell_alias: bool,
}

impl GitCommand {
    /// The canonical tokens rules' `args` are matched against: the subcommand path, the options,
    /// then the positionals with `--` in its place.
    pub fn tokens(&self) -> Vec<String> {
        let mut out = self.subcommand.clone();
        let (options, rest): (Vec<&Arg>, Vec<&Arg>) =
            self.args.iter().partition(|a| matches!(a, Arg::Option(_)));
        for arg in options.into_iter().chain(rest) {
            out.push(match arg {
                Arg::Option(o) | Arg::Positional(o) => o.clone(),
                Arg::DashDash => "--".to_string(),
            });
        }
        out
    }

    /// The options alone, canonical: what an exec rule's `unless` may match (a path after `--`
    /// named `--dry-run` is not a dry run).
    pub fn options(&self) -> impl Iterator<Item = &str> {
        self.args.iter().filter_map(|a| match a {
            Arg::Option(o) => Some(o.as_str()),
            _ => None,
        })
    }
}

/// Read `argv` (argv\[0\] included, as the kernel passes it) as git does. `env` holds the
/// exec's `NAME=VALUE` environment entries that can define aliases (`GIT_CONFIG_PARAMETERS`,
/// `GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`, and those `--config-env` names);
/// entries it does not need may be absent.
pub fn parse(argv: &[String], env: &[String]) -> GitCommand {
    let env = |name: &str| {
        env.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    };
    let argv0 = argv.first().map(String::as_str).unwrap_or("git");
    let name = argv0.rsplit('/').next().unwrap_or(argv0);
    let mut aliases = env_aliases(&env);
    let mut args: Vec<String> = argv.get(1..).unwrap_or(&[]).to_vec();
    // `git-clean ARGS` is `git clean ARGS`, without global options in between.
    if let Some(sub) = name.strip_prefix("git-") {
        args.insert(0, sub.to_string());
    } else if global_options(&mut args, &mut aliases, &env).is_err() {
        return refused(Vec::new());
    }
    // Aliases may name aliases; git stops at a loop, we at a depth no alias chain needs.
    for _ in 0..16 {
        let Some(sub) = args.first().cloned() else {
            return GitCommand {
                subcommand: Vec::new(),
                args: Vec::new(),
                parsed: true,
                refused: false,
                shell_alias: false,
            };
        };
        if BUILTINS.contains(&sub.as_str()) {
            return subcommand(&args);
        }
        // Not a builtin: an alias of the command line or environment, else an external
        // `git-SUB` (or an alias from a config file, which is not visible here).
        let lower = sub.to_ascii_lowercase();
        let Some((_, value)) = aliases.iter().rev().find(|(k, _)| *k == lower) else {
            return subcommand(&args);
        };
        if value.starts_with('!') {
            return GitCommand {
                subcommand: vec![sub],
                args: Vec::new(),
                parsed: false,
                refused: false,
                shell_alias: true,
            };
        }
        let Some(words) = split_cmdline(value) else {
            return refused(vec![sub]);
        };
        args.splice(0..1, words);
        // An alias may start with global options (git then refuses those that change the
        // environment; reading them again only finds more, never less).
        if global_options(&mut args, &mut aliases, &env).is_err() {
            return refused(vec![sub]);
        }
    }
    refused(Vec::new())
}

/// Whether git could read an alias for this command line from its environment: the subcommand
/// as written is not a builtin (aliases never replace builtins), or `--config-env` names a
/// variable. Sensors read an exec's environment only then.
pub fn may_be_alias(argv: &[String]) -> bool {
    if argv
        .iter()
        .any(|a| a == "--config-env" || a.starts_with("--config-env="))
    {
        return true;
    }
    let command = parse(argv, &[]);
    !command.refused
        && !command.shell_alias
        && command
            .subcommand
            .first()
            .is_some_and(|s| !BUILTINS.contains(&s.as_str()))
}

fn refused(subcommand: Vec<String>) -> GitCommand {
    GitCommand {
        subcommand,
        args: Vec::new(),
        parsed: true,
        refused: true,
        shell_alias: false,
    }
}

/// The options table of a subcommand path, and how many words the path takes.
fn table_for(args: &[String]) -> Option<(usize, &'static [OptSpec])> {
    let first = args.first()?;
    let mut top_level = None;
    for (path, specs) in SUBCOMMANDS {
        if path[0] != first {
            continue;
        }
        match path.get(1) {
            None => top_level = Some((1, *specs)),
            Some(second) if args.get(1).is_some_and(|a| a == second) => return Some((2, specs)),
            Some(_) => {}
        }
    }
    if top_level.is_some() {
        return top_level;
    }
    // `git stash` without a subcommand (or with options first) is `git stash push`.
    if first == "stash" {
        return SUBCOMMANDS
            .iter()
            .find(|(path, _)| path == &["stash", "push"])
            .map(|(_, specs)| (1, *specs));
    }
    None
}

fn subcommand(args: &[String]) -> GitCommand {
    let Some((words, specs)) = table_for(args) else {
        // No table: the tokens as written.
        let mut it = args.iter();
        let subcommand = it.next().cloned().into_iter().collect();
        return GitCommand {
            subcommand,
            args: it.map(|a| Arg::Positional(a.clone())).collect(),
            parsed: false,
            refused: false,
            shell_alias: false,
        };
    };
    let mut path: Vec<String> = args[..words].to_vec();
    if path == ["stash"] {
        path.push("push".to_string());
    }
    match parse_options(&args[words..], specs) {
        Some(mut parsed) => {
            implied(&path, &mut parsed);
            GitCommand {
                subcommand: path,
                args: parsed,
                parsed: true,
                refused: false,
                shell_alias: false,
            }
        }
        None => refused(path),
    }
}

/// What git does without being told, made explicit so a rule can name it:
/// - `git restore` acts on the working tree unless only `--staged` is given (`--worktree` is its
///   default): a rule for `restore --worktree` must see `git restore f` and `-S -W` alike.
/// - `git checkout TREE-ISH PATH...` takes the first of two or more positionals as the tree-ish
///   and the rest as paths, as if `--` followed the first: a rule for `checkout --` must see it.
fn implied(path: &[String], args: &mut Vec<Arg>) {
    let has = |args: &[Arg], name: &str| {
        args.iter()
            .any(|a| matches!(a, Arg::Option(o) if o == name))
    };
    match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["restore"]
            if !has(args, "--staged")
                && !has(args, "--worktree")
                && !has(args, "--no-worktree") =>
        {
            let at = args
                .iter()
                .take_while(|a| matches!(a, Arg::Option(_)))
                .count();
            args.insert(at, Arg::Option("--worktree".to_string()));
        }
        ["checkout"] => {
            let dashdash = args.iter().any(|a| matches!(a, Arg::DashDash));
            let positionals: Vec<usize> = args
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Arg::Positional(_)))
                .map(|(i, _)| i)
                .collect();
            if !dashdash && positionals.len() >= 2 {
                args.insert(positionals[0] + 1, Arg::DashDash);
            }
        }
        _ => {}
    }
}

/// The state of one option after every occurrence has been read.
enum OptState {
    Set,
    Unset,
    Values(Vec<String>),
}

/// git's parse-options over a subcommand's arguments: `None` when git would refuse them.
fn parse_options(args: &[String], specs: &'static [OptSpec]) -> Option<Vec<Arg>> {
    // Option states in the order options were last touched, then the rest in order.
    let mut states: Vec<(&'static OptSpec, OptState)> = Vec::new();
    let mut unknown = Vec::new();
    let mut rest = Vec::new();
    let mut set = |spec: &'static OptSpec, unset: bool, value: Option<String>| {
        let i = match states.iter().position(|(s, _)| std::ptr::eq(*s, spec)) {
            Some(i) => i,
            None => {
                states.push((spec, OptState::Unset));
                states.len() - 1
            }
        };
        let state = &mut states[i].1;
        *state = match (unset, value, std::mem::replace(state, OptState::Unset)) {
            (true, _, _) => OptState::Unset,
            (false, Some(v), OptState::Values(mut vs)) => {
                vs.push(v);
                OptState::Values(vs)
            }
            (false, Some(v), _) => OptState::Values(vec![v]),
            (false, None, _) => OptState::Set,
        };
    };
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if arg == "--" {
            rest.push(Arg::DashDash);
            rest.extend(args[i..].iter().map(|a| Arg::Positional(a.clone())));
            break;
        }
        if arg == "--end-of-options" {
            rest.extend(args[i..].iter().map(|a| Arg::Positional(a.clone())));
            break;
        }
        if arg == "-h" || arg == "--help" {
            return None;
        }
        if let Some(long) = arg.strip_prefix("--") {
            // An option this table does not know may be one a newer git has: assume it is a
            // flag that git accepts, so that a stale table can make a rule match more, never
            // less (git itself refuses what it does not know, which runs nothing).
            let (spec, unset, attached) = match find_long(long, specs) {
                Long::Found(found) => found,
                Long::Ambiguous => return None,
                Long::Unknown => {
                    unknown.push(Arg::Option(arg.clone()));
                    continue;
                }
            };
            let value = match (spec.value, unset, attached) {
                (_, true, Some(_)) | (Value::Flag, _, Some(_)) => return None,
                (Value::Flag, _, None) | (_, true, None) | (Value::Optional, _, None) => None,
                (_, false, Some(v)) => Some(v.to_string()),
                (Value::Required, false, None) => {
                    let v = args.get(i)?.clone();
                    i += 1;
                    Some(v)
                }
            };
            set(spec, unset, value);
            continue;
        }
        let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) else {
            rest.push(Arg::Positional(arg.clone()));
            continue;
        };
        for (at, c) in shorts.char_indices() {
            let Some(spec) = specs.iter().find(|s| s.short == Some(c)) else {
                unknown.push(Arg::Option(format!("-{c}")));
                continue;
            };
            let attached = &shorts[at + c.len_utf8()..];
            match spec.value {
                Value::Flag => set(spec, false, None),
                Value::Optional => {
                    set(
                        spec,
                        false,
                        (!attached.is_empty()).then(|| attached.to_string()),
                    );
                    break;
                }
                Value::Required => {
                    let v = if attached.is_empty() {
                        let v = args.get(i)?.clone();
                        i += 1;
                        v
                    } else {
                        attached.to_string()
                    };
                    set(spec, false, Some(v));
                    break;
                }
            }
        }
    }
    let mut out: Vec<Arg> = Vec::new();
    for (spec, state) in states {
        match state {
            OptState::Set => out.push(Arg::Option(spec.name())),
            OptState::Unset => out.push(Arg::Option(spec.negated_name())),
            OptState::Values(values) => {
                let name = spec.name();
                out.extend(
                    values
                        .into_iter()
                        .map(|v| Arg::Option(format!("{name}={v}"))),
                );
            }
        }
    }
    out.extend(unknown);
    out.extend(rest);
    Some(out)
}

/// What git's `parse_long_opt` finds for `--NAME[=VALUE]`.
enum Long<'a> {
    /// The option, whether it is negated, and a value attached with `=`.
    Found((&'static OptSpec, bool, Option<&'a str>)),
    /// A prefix of two different options: git refuses it.
    Ambiguous,
    /// Not in the table.
    Unknown,
}

/// git's `parse_long_opt`: an exact name wins; else a unique prefix (of a name or of its
/// negation); two different candidates are ambiguous.
fn find_long<'a>(arg: &'a str, specs: &'static [OptSpec]) -> Long<'a> {
    let (name, attached) = match arg.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (arg, None),
    };
    let mut abbrev: Option<(&'static OptSpec, bool)> = None;
    let mut ambiguous = false;
    for spec in specs {
        let Some(long) = spec.long else { continue };
        // Each option answers to its name, and (when negatable) to its negated name.
        let mut forms: Vec<(String, bool)> = vec![(long.to_string(), false)];
        if spec.negatable {
            match long.strip_prefix("no-") {
                Some(positive) => forms.push((positive.to_string(), true)),
                None => forms.push((format!("no-{long}"), true)),
            }
        }
        for (form, negated) in forms {
            if form == name {
                return Long::Found((spec, negated, attached));
            }
            if !name.is_empty() && form.starts_with(name) {
                match abbrev {
                    Some((other, _)) if !std::ptr::eq(other, spec) => ambiguous = true,
                    _ => abbrev = Some((spec, negated)),
                }
            }
        }
    }
    match abbrev {
        _ if ambiguous => Long::Ambiguous,
        Some((spec, negated)) => Long::Found((spec, negated, attached)),
        None => Long::Unknown,
    }
}

/// A rule's pattern in the canonical form of [`GitCommand::tokens`], for the rule of a subcommand
/// whose first word is `first`: an option a table of that subcommand knows, as written or as one
/// of a `{a,b}` group's alternatives, becomes its canonical name (`-f` → `--force`, `-n` →
/// `--dry-run` for `clean`); everything else is kept (`+*`, `--expire*=now`, a subcommand word).
/// Exact names only: a rule says what it means, abbreviations are git's business.
pub fn canonical_pattern(first: &str, pattern: &str) -> String {
    let map = |token: &str| canonical_option(first, token).unwrap_or_else(|| token.to_string());
    match pattern
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .filter(|inner| !inner.contains(['{', '}']))
    {
        Some(inner) => {
            let alternatives: Vec<String> = inner.split(',').map(map).collect();
            format!("{{{}}}", alternatives.join(","))
        }
        None => map(pattern),
    }
}

/// The canonical name of `token` in the tables of subcommands whose first word is `first`, when
/// they all agree on it.
fn canonical_option(first: &str, token: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for (_, specs) in SUBCOMMANDS.iter().filter(|(path, _)| path[0] == first) {
        let Some(name) = option_in(specs, token) else {
            continue;
        };
        match &found {
            Some(other) if *other != name => return None,
            _ => found = Some(name),
        }
    }
    found
}

fn option_in(specs: &[OptSpec], token: &str) -> Option<String> {
    if let Some(long) = token.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let spec = specs.iter().find(|s| s.long == Some(name))?;
        return Some(match value {
            Some(v) => format!("{}={v}", spec.name()),
            None => spec.name(),
        });
    }
    let mut chars = token.strip_prefix('-')?.chars();
    let (c, more) = (chars.next()?, chars.next());
    if more.is_some() {
        return None;
    }
    specs.iter().find(|s| s.short == Some(c)).map(OptSpec::name)
}

#[cfg(test)]
mod tests;
