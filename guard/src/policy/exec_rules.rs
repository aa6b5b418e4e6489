//! Exec rules: programs, with argument patterns, that an agent may not start.
//!
//! A rule names a program by basename and lists glob patterns that must match an ordered
//! subsequence of the arguments, and `unless` patterns of which none may match. For git the
//! arguments are not compared as written: git reads its command line its own way (unique
//! prefixes of long options, bundled flags, option values that look like options, global
//! options, aliases, `git-clean` for `git clean`), so a git rule is matched against
//! [`crate::git::grammar`]'s canonical form of the command, and the rule's own option tokens are
//! put in that form when the policy is loaded. A git command that git itself would refuse (an
//! ambiguous option, `-h`) matches nothing: it does nothing. `unless` then looks at options only,
//! never at a path after `--` that happens to be spelled like one.
//!
//! Pure: matching reads nothing but its arguments.

use std::collections::HashMap;

use globset::GlobMatcher;

use super::TrustedTool;
use crate::git::grammar::{self, GitCommand};
use crate::vocab::Actor;

/// Exec rules indexed by program basename, so an exec looks at only its program's rules.
#[derive(Clone, Debug, Default)]
pub struct ExecRules {
    by_program: HashMap<String, Vec<ExecRule>>,
}

/// One exec rule, compiled.
#[derive(Clone, Debug)]
pub struct ExecRule {
    pub program: String,
    /// Index in the policy's `exec_rules` list (for the rule id in records).
    pub index: usize,
    /// For git rules, in git's canonical form (see the module docs).
    pub args: Vec<GlobMatcher>,
    pub unless: Vec<GlobMatcher>,
    /// Trusted tools whose own subcommands may run the command (see [`RunBy`]).
    pub unless_run_by: Vec<RunBy>,
    pub reason: String,
    /// The rule as written, for messages: `git clean -f*`.
    pub display: String,
}

/// An exec as the rules see it.
#[derive(Clone, Copy, Debug)]
pub struct ExecCall<'a> {
    /// The basenames the program goes by: of the executable, and of argv\[0\].
    pub names: [&'a str; 2],
    /// argv, argv\[0\] included.
    pub argv: &'a [String],
    /// The `NAME=VALUE` environment entries the sensor read for the exec (only those rules need:
    /// see [`ExecCall::needs_env`]).
    pub env: &'a [String],
}

impl ExecCall<'_> {
    /// Whether the program is git: by name, or a `git-SUBCOMMAND` link to it.
    fn is_git(&self) -> bool {
        self.names
            .iter()
            .any(|n| *n == "git" || n.starts_with("git-"))
    }

    /// Whether matching this exec needs its environment: git reads aliases from it
    /// (`GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT`...), and an alias can only stand for a
    /// subcommand that is not one of git's builtins. Sensors read the environment only then.
    pub fn needs_env(&self) -> bool {
        self.is_git() && grammar::may_be_alias(self.argv)
    }
}

/// The arguments of one exec in the form a program's rules are matched against.
struct Arguments {
    tokens: Vec<String>,
    /// The tokens `unless` may match: the options of a parsed git command, else all of them.
    unless_scope: Vec<String>,
}

impl Arguments {
    fn plain(argv: &[String]) -> Arguments {
        let tokens = argv.get(1..).unwrap_or(&[]).to_vec();
        Arguments {
            unless_scope: tokens.clone(),
            tokens,
        }
    }

    /// `None` when git would run nothing of it: it refuses the command line, or the alias is a
    /// shell command (whose own execs are judged one by one).
    fn git(call: &ExecCall) -> Option<Arguments> {
        let command: GitCommand = grammar::parse(call.argv, call.env);
        if command.refused || command.shell_alias {
            return None;
        }
        let tokens = command.tokens();
        let unless_scope = if command.parsed {
            command.options().map(str::to_string).collect()
        } else {
            tokens[command.subcommand.len()..].to_vec()
        };
        Some(Arguments {
            tokens,
            unless_scope,
        })
    }
}

impl ExecRules {
    pub fn new(rules: Vec<ExecRule>) -> ExecRules {
        let mut by_program: HashMap<String, Vec<ExecRule>> = HashMap::new();
        for rule in rules {
            by_program
                .entry(rule.program.clone())
                .or_default()
                .push(rule);
        }
        ExecRules { by_program }
    }

    pub fn len(&self) -> usize {
        self.by_program.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_program.is_empty()
    }

    /// The first rule that matches `call` and that `applies` (to the process that execs).
    pub fn find(&self, call: &ExecCall, applies: impl Fn(&ExecRule) -> bool) -> Option<&ExecRule> {
        let mut programs: Vec<&str> = call.names.to_vec();
        if call.is_git() {
            programs.push("git");
        }
        programs.dedup();
        let mut seen = Vec::new();
        for program in programs {
            if seen.contains(&program) {
                continue;
            }
            seen.push(program);
            let Some(rules) = self.by_program.get(program) else {
                continue;
            };
            let arguments = if program == "git" {
                match Arguments::git(call) {
                    Some(arguments) => arguments,
                    None => continue,
                }
            } else {
                Arguments::plain(call.argv)
            };
            if let Some(rule) = rules.iter().find(|r| r.matches(&arguments) && applies(r)) {
                return Some(rule);
            }
        }
        None
    }
}

impl ExecRule {
    /// `args` patterns match an ordered subsequence of the tokens; no `unless` pattern matches
    /// a token in its scope.
    fn matches(&self, arguments: &Arguments) -> bool {
        if arguments
            .unless_scope
            .iter()
            .any(|a| self.unless.iter().any(|u| u.is_match(a)))
        {
            return false;
        }
        let mut remaining = arguments.tokens.iter();
        self.args
            .iter()
            .all(|pattern| remaining.any(|a| pattern.is_match(a)))
    }
}

/// A trusted tool running one of its subcommands (`git stash`): what it execs for its own
/// operation is not the agent's command. `tool` names an entry of `trusted_tools`, so the tool is
/// known by its real executable, never by a name the agent could give a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunBy {
    pub tool: String,
    pub subcommand: String,
}

impl RunBy {
    /// Whether `actor` (the process that execs) is this tool running this subcommand, as git
    /// reads the tool's command line: `git -c x=y stash` runs stash, `git --git-dir stash x`
    /// runs x (the option took "stash" as its value).
    pub fn matches(&self, actor: &Actor, tools: &[TrustedTool]) -> bool {
        let mut argv = Vec::with_capacity(actor.args.len() + 1);
        argv.push(actor.argv0.clone());
        argv.extend(actor.args.iter().cloned());
        let command = grammar::parse(&argv, &[]);
        !command.refused
            && !command.shell_alias
            && command.subcommand.first().map(String::as_str) == Some(self.subcommand.as_str())
            && tools
                .iter()
                .any(|t| t.name == self.tool && t.identifies(actor))
    }
}
