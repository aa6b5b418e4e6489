//! `agent-guard init`: a commented starter policy for this user, naming the agents and
//! toolchains found on this machine. The policy file may carry whole-line `//` comments.

use std::path::{Path, PathBuf};

use crate::vocab::time::rfc3339_from_secs;

/// The agents `init` looks for on `PATH`, and the pattern that makes their processes agents.
const AGENTS: &[(&str, &str)] = &[
    ("claude", "claude"),
    ("codex", "codex"),
    ("gemini", "gemini"),
    ("cursor-agent", "cursor-agent"),
    ("aider", "aider"),
    ("opencode", "opencode"),
];

/// Toolchains whose build outputs and caches the embedded default carves out of the
/// protected home, and that it trusts within their scope.
const TOOLCHAINS: &[&str] = &[
    "git", "cargo", "npm", "pnpm", "yarn", "go", "python3", "pip",
];

/// What `init` found on `PATH`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detected {
    /// `(command, where)` of each agent found.
    pub agents: Vec<(String, PathBuf)>,
    pub toolchains: Vec<(String, PathBuf)>,
}

/// Look for the known agents and toolchains in the directories of `path` (`$PATH`).
pub fn detect(path: &str) -> Detected {
    let find = |name: &str| {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(name))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    };
    Detected {
        agents: AGENTS
            .iter()
            .filter_map(|(cmd, _)| find(cmd).map(|p| (cmd.to_string(), p)))
            .collect(),
        toolchains: TOOLCHAINS
            .iter()
            .filter_map(|t| find(t).map(|p| (t.to_string(), p)))
            .collect(),
    }
}

/// The starter policy's text for `user`: the agents found added to the default patterns,
/// every other key left to the embedded default (and said so, in comments).
pub fn starter_policy(
    detected: &Detected,
    default_patterns: &[String],
    user: &str,
    now: u64,
) -> String {
    let mut patterns: Vec<String> = default_patterns.to_vec();
    for (cmd, _) in &detected.agents {
        let pattern = AGENTS
            .iter()
            .find(|(c, _)| c == cmd)
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| cmd.clone());
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    let list = |items: &[(String, PathBuf)]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items
                .iter()
                .map(|(n, p)| format!("{n} ({})", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let quoted: Vec<String> = patterns.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "// agent-guard policy for {user}, written by `agent-guard init` on {}.
// Check it with `agent-guard policy check`, see what it means with `agent-guard policy show`.
// Lines starting with // are comments. A key left out takes the embedded default's value
// (`agent-guard policy default` prints it): the whole home protected with caches and build
// outputs carved out, credentials secret, shell start-up files read-only, destructive git
// commands refused.
//
// Agents found on this machine: {}.
// Toolchains found: {} (the default trusts git, and cargo, npm, pnpm, yarn and go within their
// build outputs and caches).
{{
  // enforce: deny. audit: allow, and record what would have been denied.
  \"mode\": \"enforce\",
  // Processes whose name matches one of these, and everything they start, are agents.
  \"ai_agent_patterns\": [{}],
  // The longest an approved override may last.
  \"max_override_ttl\": \"1h\"
  // More, with their object forms, in the README (\"Policy\"):
  //   \"protected_zones\": [\"~\", {{\"path\": \"~/work\", \"except\": [\"**/target/**\"]}}],
  //   \"readonly_zones\": [\"~/.zshrc\"],
  //   \"secret_zones\": [\"~/.ssh\", \"~/.aws\"],
  //   \"trusted_tools\": [\"git\", {{\"name\": \"cargo\", \"paths\": [\"**/target/**\"]}}],
  //   \"exec_rules\": [{{\"program\": \"terraform\", \"args\": [\"destroy\"], \"reason\": \"ask the user\"}}]
}}
",
        rfc3339_from_secs(now),
        list(&detected.agents),
        list(&detected.toolchains),
        quoted.join(", ")
    )
}
