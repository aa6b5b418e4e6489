//! The `agent-guard` command line: one file per subcommand, as Santa does with `santactl`.
//!
//! This is the edge: errors are reported here with context (`anyhow`), and every subcommand
//! returns its exit code. Exit codes: 0 success (for `check`: allowed or only audited),
//! 1 denied (`check`) or a failed operation, 2 bad input (a bad argument, an invalid policy).
//!
//! With `--json` anywhere before a `--` (and not after `run`, whose arguments from CMD on are
//! CMD's), an error that ends the command is one line of JSON on stderr, for scripts and agents:
//! `{"error": {"kind": KIND, "message": "...", "causes": ["..."], "exit_code": N}}`
//! (`usage`: the command line was not understood, exit 2; `failed`: the command could not do
//! its work, exit 2; `refused`, `not_found`, `bad_input`: a command's own [`Exit`], with its
//! code; `causes`: the chain of reasons under `message`, outermost first). The shape is stable:
//! fields may be added, none removed or renamed.

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::paths::process_env;
use crate::policy::{load_for_user, LoadedPolicy};

mod audit;
mod check;
mod completions;
mod daemon;
mod demo;
mod denials;
mod explain;
mod hook;
mod init;
mod install;
mod instructions;
mod mcp;
mod override_cmd;
mod override_status;
mod override_watch;
mod policy;
mod run;
mod status;
mod undo;

/// Kernel-enforced safety net for AI coding agents: stops destructive and credential-reading
/// operations by processes that descend from an agent, and tells the agent why.
#[derive(Parser, Debug)]
#[command(name = "agent-guard", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate, show, print the default of, or print the JSON Schema of the policy.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Dry-run one decision: would this operation by this actor be allowed?
    Check(check::CheckArgs),
    /// A self-contained tour: a scripted agent tries destructive and harmless things under the
    /// supervisor in a throwaway home; prints what was blocked and why.
    Demo(demo::DemoArgs),
    /// Supervise CMD and every process it starts as an AI agent (Linux).
    Run(run::RunArgs),
    /// The macOS Endpoint Security daemon (as root, under launchd): guards every user's
    /// processes that descend from an AI agent.
    Daemon(daemon::DaemonArgs),
    /// Print the denials (from denials.jsonl), optionally following new ones.
    Denials(denials::DenialsArgs),
    /// Query or export the SQLite audit trail of every agent decision.
    Audit(audit::AuditArgs),
    /// The policy in force, running supervisors and their counters, grants, logs.
    Status(status::StatusArgs),
    /// Show a process's parent chain and why it is (or is not) attributed to an AI agent.
    Explain(explain::ExplainArgs),
    /// Ask for, list, approve, deny or revoke temporary overrides of denials.
    #[command(subcommand)]
    Override(override_cmd::OverrideCommand),
    /// Agent feedback shims: explain denials inside the agent's context.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Print the hook settings and the CLAUDE.md / AGENTS.md text that teach an agent the loop.
    Instructions(instructions::InstructionsArgs),
    /// The Model Context Protocol server over stdio that agents start: tools to learn why an
    /// operation was blocked, request an override, follow it, and explain a path.
    Mcp(mcp::McpArgs),
    /// Write a commented starter policy for this user (~/.config/agent-guard/policy.json).
    Init(init::InitArgs),
    /// Merge agent-guard's hook, MCP server and instructions (and on Linux a shell alias) into an
    /// agent's own settings
    /// (a diff shown, a backup kept; running it again changes nothing).
    Install(install::InstallArgs),
    /// Take what `install` put into an agent's settings out again, leaving the rest.
    Uninstall(install::InstallArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Write the man pages (one per command) into a directory.
    Man(completions::ManArgs),
    /// List what agents destroyed and the guard kept, restore it, or purge it.
    #[command(subcommand)]
    Undo(undo::UndoCommand),
}

/// The whole command line as the binary runs it: parse `args` (with the program name first),
/// run the command, report an error (as JSON with `--json`, see the module docs); returns the
/// exit code. Help and version go to stdout with exit 0, as clap prints them.
pub fn main_with(args: Vec<std::ffi::OsString>) -> i32 {
    let json = wants_json(&args);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() || !json => e.exit(),
        Err(e) => {
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string();
            print_json_error("usage", &message, &[], 2);
            return 2;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (kind, code) = match e.downcast_ref::<Exit>() {
                Some(exit) => (exit.kind.as_str(), exit.kind.code()),
                None => ("failed", 2),
            };
            if json {
                let causes: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
                print_json_error(kind, &e.to_string(), &causes, code);
            } else {
                eprintln!("agent-guard: {e:#}");
            }
            code
        }
    }
}

/// A command's own way of ending without doing its work: reported by [`main_with`] as every
/// error is (one JSON line under `--json`), but with its kind and exit code instead of `failed`
/// and 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub kind: ExitKind,
    pub message: String,
}

/// The `kind` of an [`Exit`] in the JSON error; it decides the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Not allowed for this caller (an agent), or an override operation refused: exit 1.
    Refused,
    /// Nothing matched what the command was asked about: exit 1.
    NotFound,
    /// The input named something that is not there or not valid (a pid): exit 2.
    BadInput,
}

impl ExitKind {
    fn as_str(self) -> &'static str {
        match self {
            ExitKind::Refused => "refused",
            ExitKind::NotFound => "not_found",
            ExitKind::BadInput => "bad_input",
        }
    }

    pub fn code(self) -> i32 {
        match self {
            ExitKind::Refused | ExitKind::NotFound => 1,
            ExitKind::BadInput => 2,
        }
    }
}

impl Exit {
    fn error(kind: ExitKind, message: impl Into<String>) -> anyhow::Error {
        Exit {
            kind,
            message: message.into(),
        }
        .into()
    }

    /// Refused for this caller or this request: exit 1.
    pub fn refused(message: impl Into<String>) -> anyhow::Error {
        Exit::error(ExitKind::Refused, message)
    }

    /// Nothing matches: exit 1.
    pub fn not_found(message: impl Into<String>) -> anyhow::Error {
        Exit::error(ExitKind::NotFound, message)
    }

    /// The input names what is not there: exit 2.
    pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
        Exit::error(ExitKind::BadInput, message)
    }
}

/// Whether the command line asks for JSON: `--json` before any `--`, and not among the
/// arguments of `run` (CMD's own).
fn wants_json(args: &[std::ffi::OsString]) -> bool {
    if args.get(1).is_some_and(|a| a == "run") {
        return false;
    }
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

fn print_json_error(kind: &str, message: &str, causes: &[String], exit_code: i32) {
    let error = serde_json::json!({"error": {
        "kind": kind,
        "message": message,
        "causes": causes,
        "exit_code": exit_code,
    }});
    eprintln!("{error}");
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Policy(cmd) => policy::run(cmd),
        Command::Check(args) => check::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Daemon(args) => daemon::run(&args),
        Command::Denials(args) => denials::run(&args, &user_locations()),
        Command::Audit(args) => audit::run(&args, &user_locations()),
        Command::Status(args) => status::run(&args),
        Command::Explain(args) => {
            let loaded = load_policy(args.policy.as_deref())?;
            explain::run(&args, &loaded.policy.agent_patterns)
        }
        Command::Override(cmd) => override_cmd::run(cmd),
        Command::Hook(cmd) => hook::run(cmd),
        Command::Instructions(args) => instructions::run(&args),
        Command::Mcp(args) => mcp::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Install(args) => install::run(&args, crate::install::Direction::Install),
        Command::Uninstall(args) => install::run(&args, crate::install::Direction::Uninstall),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
        Command::Undo(cmd) => undo::run(cmd),
    }
}

/// clap's value parser for every `--since` (and `--until`): a duration ago (30s, 2m, 1h, 1d) or
/// an RFC 3339 time. One parser, so that every subcommand takes the same forms; clap prefixes
/// its error with the argument's name.
pub(crate) fn parse_when(
    value: &str,
) -> Result<std::time::SystemTime, crate::duration::DurationError> {
    crate::duration::parse_time_bound(value, std::time::SystemTime::now())
}

/// clap's value parser for a duration (`--wait 30s`, `--ttl 10m`).
pub(crate) fn parse_duration(
    value: &str,
) -> Result<std::time::Duration, crate::duration::DurationError> {
    crate::duration::parse_duration(value)
}

fn user_locations() -> crate::paths::Locations {
    crate::paths::Locations::for_user(&crate::paths::process_env)
}

/// The policy a command applies (see [`crate::policy::load_for_user`]), with its error as the
/// edge reports it.
fn load_policy(explicit: Option<&Path>) -> anyhow::Result<LoadedPolicy> {
    Ok(load_for_user(explicit, &process_env)?)
}
