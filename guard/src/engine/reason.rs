//! The words of a denial: one sentence an AI agent can act on, and the exact command that asks a
//! human for an override. Written for a language model reading its tool output: say what was
//! blocked, why, and what to do instead, without jargon.

use std::path::Path;

use crate::policy::ExecRule;
use crate::vocab::{shell_quote, Action, Denial, OpKind, RuleId};

pub(super) fn denial(
    rule: RuleId,
    action: &Action,
    path: &Path,
    zone: Option<&Path>,
    exec_rule: Option<&ExecRule>,
) -> Denial {
    let op = action.kind();
    let p = path.display();
    let z = zone.map(|z| z.display().to_string()).unwrap_or_default();
    let reason = match &rule {
        RuleId::GuardSelf => match action {
            Action::Signal { .. } => {
                "agent-guard blocked a signal to its own supervisor: AI agents may not stop or trace the guard; ask the user if it must be restarted".to_string()
            }
            _ => format!(
                "agent-guard blocked this {op} of {p}: it is one of agent-guard's own files (policy, overrides, logs), which AI agents may read but never change; ask the user to change it"
            ),
        },
        RuleId::SecretZone => format!(
            "agent-guard blocked this {op} of {p}: {z} holds credentials that AI agents may not read or use; do the task without them, or ask the user to run the step that needs them"
        ),
        RuleId::ExecRule => {
            // The command as it was run, not the rule's pattern: the agent and the human see
            // what was stopped (`git clean -fdx`, not `git clean {-f*,...}`).
            let why = exec_rule
                .map(|r| r.reason.as_str())
                .unwrap_or("the policy forbids it");
            let command = match action {
                Action::Exec { argv, .. } if !argv.is_empty() => quoted(argv),
                _ => exec_rule.map_or("this command".to_string(), |r| r.display.clone()),
            };
            format!("agent-guard blocked `{command}`: {why}")
        }
        RuleId::ReadonlyZone if crate::git::config::is_repository_config(path) => format!(
            "agent-guard blocked this {op} of {p}: AI agents may change a git repository's config only through git and only with keys that run no command (core.fsmonitor, core.hooksPath, core.sshCommand, aliases, filters, credential helpers and the like), because the user's own git runs them later; make the change without such a key, or ask the user to make it"
        ),
        // A glob names the places the user's own tools run later without reading them.
        RuleId::ReadonlyZone if z.contains('*') => format!(
            "agent-guard blocked this {op} of {p}: files matching {z} are read-only for AI agents, because the user's own tools run them later without the user reading them; read it if you need to, and ask the user to make the change"
        ),
        RuleId::ReadonlyZone => format!(
            "agent-guard blocked this {op} of {p}: {z} is read-only for AI agents; read it if you need to, and ask the user to make the change"
        ),
        RuleId::ProtectedDelete => format!(
            "agent-guard blocked deleting {p}: it is in the protected zone {z}, where AI agents may create and edit files but not delete them; leave it in place, or request an override if the user wants it gone"
        ),
        RuleId::ProtectedMoveOut => format!(
            "agent-guard blocked moving {p} out of the protected zone {z} (moving out, or into a cache or build directory, would let it be deleted); rename it within the zone instead (a tool that makes its build directory by renaming a new one into place, as cargo does with target/, works once the directory exists: mkdir it first), or request an override"
        ),
        RuleId::ProtectedClobber => format!(
            "agent-guard blocked replacing the existing file {p} in the protected zone {z} with a file from outside it; write the new content into the zone first and rename it there, or request an override"
        ),
        RuleId::ZoneRootRename => format!(
            "agent-guard blocked renaming {p}: it is, or contains, the root of the zone {z}, which must stay where it is; work inside the zone instead"
        ),
        RuleId::OutsideProcess => {
            let target = match action {
                Action::Trace { target_pid, .. } => format!("process {target_pid}"),
                _ => "another process".to_string(),
            };
            let how = match action {
                Action::Trace { path: Some(_), .. } => format!("through {p}"),
                _ => "with ptrace, its memory or its file descriptors".to_string(),
            };
            format!(
                "agent-guard blocked reaching into {target} {how}: it was not started by this agent, and AI agents may only inspect or change their own processes; ask the user to do it"
            )
        }
        RuleId::Device => match action {
            Action::Device { make: true, .. } => format!(
                "agent-guard blocked making the device node {p}: a device node reaches disks and hardware below every file system, around every zone; AI agents may not make them"
            ),
            _ => format!(
                "agent-guard blocked opening the block device {p}: reading or writing a disk directly goes around every file and zone; work with files instead, and ask the user for anything that needs the raw device"
            ),
        },
        RuleId::CommandServer => {
            let server = match action {
                Action::Connect {
                    server: Some(server),
                    ..
                } => server.display().to_string(),
                _ => "a server".to_string(),
            };
            format!(
                "agent-guard blocked connecting to {p}: {server} listens there outside your process tree and would run commands or use credentials for you that agent-guard cannot see; run the command directly instead, or ask the user"
            )
        }
        RuleId::CommandShadow if matches!(action, Action::Rename { source_is_dir: true, .. }) => format!(
            "agent-guard blocked moving a directory to {}: it would make the user's command directory {z} in one move, with programs that could run instead of the system's; create the commands there one by one instead",
            action.dest().map(|d| d.display().to_string()).unwrap_or_default()
        ),
        RuleId::CommandShadow => {
            let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            format!(
                "agent-guard blocked this {op} of {p}: a program named {name} in {z} would run instead of the system's {name} whenever the user types it; install it under another name (or run it by its path), or ask the user"
            )
        }
        RuleId::NestedSandbox => format!(
            "agent-guard refused a sandbox of the agent's own ({p}), as bwrap, `unshare` or Landlock make: inside agent-guard a nested sandbox could rename and bind files out of its sight, and a Landlock domain would not bind the calls agent-guard makes for the agent; agent-guard is already this agent's sandbox, so run the agent with its own sandbox off under it: `agent-guard run -- codex -s danger-full-access` (approvals stay on), or Claude Code with its sandbox disabled"
        ),
        // Rows that keep rather than deny, and the refusals `engine::keep` words itself; named
        // here only so that every rule has words.
        RuleId::ProtectedReplace
        | RuleId::ProtectedRename
        | RuleId::ProtectedTruncate
        | RuleId::ProtectedFirstWrite
        | RuleId::ProtectedLinkOut
        | RuleId::KeepFailed
        | RuleId::DestructionBrake => format!(
            "agent-guard blocked this {op} of {p} in the protected zone {z} (rule {rule}); request an override if the user wants it"
        ),
        // The engine names only rules it knows.
        RuleId::Unknown(name) => format!("agent-guard blocked this {op} of {p} (rule {name})"),
    };
    let dest = action.dest().map(Path::to_path_buf);
    let hint = match (&rule, action) {
        // Signals to the guard and edits of its own files are never overridable.
        (RuleId::GuardSelf, _) => {
            "ask the user: agent-guard's own files and process cannot be overridden".to_string()
        }
        (RuleId::OutsideProcess | RuleId::Device | RuleId::NestedSandbox, _) => {
            "ask the user: this keeps agent-guard's own sandbox whole and cannot be overridden"
                .to_string()
        }
        // Scoped to the denied command: its arguments follow `--`.
        (RuleId::ExecRule, Action::Exec { argv, .. }) => format!(
            "agent-guard override request {} --op exec --reason {} -- {}",
            shell_quote(&path.display().to_string()),
            shell_quote("<why this command is needed>"),
            quoted(argv.get(1..).unwrap_or(&[]))
        )
        .trim_end()
        .to_string(),
        _ => request_command(path, op),
    };
    Denial {
        rule,
        op,
        path: path.to_path_buf(),
        dest,
        zone: zone.map(Path::to_path_buf),
        reason,
        hint,
    }
}

pub(super) fn request_command(path: &Path, op: OpKind) -> String {
    format!(
        "agent-guard override request {} --op {op} --reason {}",
        shell_quote(&path.display().to_string()),
        shell_quote("<why the user wants this>")
    )
}

/// Words of a command line, each quoted for a shell when needed.
fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}
