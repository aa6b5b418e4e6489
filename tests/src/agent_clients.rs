//! The real agent clients, Claude Code, Codex and Gemini CLI (installed from the npm registry into
//! `tests/agents/node_modules` by `scripts/test`), run under `agent-guard run` in a throwaway
//! home against a [`FakeModel`], with agent-guard's hook installed in their own settings files.
//!
//! A test writes the model's script, runs the client and reads what the model was told:
//!
//! ```no_run
//! use agent_guard_e2e::agent_clients::{AgentHome, ClaudeCode};
//! use agent_guard_e2e::fake_model::{Api, FakeModel, Turn};
//! let home = AgentHome::new();
//! let notes = home.write("project/notes.txt", "keep me\n");
//! let model = FakeModel::start(Api::AnthropicMessages, vec![
//!     Turn::tool("Bash", serde_json::json!({"command": "rm notes.txt"})),
//!     Turn::text("done"),
//! ]);
//! let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "delete the notes");
//! let told = model.told_after(0); // the tool result and the hook's context
//! ```
//!
//! The home's policy is agent-guard's embedded default (`agent-guard policy default`), which
//! protects the whole home: the project inside it is a protected zone. Nothing here reaches
//! outside the throwaway directory or 127.0.0.1; the clients' telemetry, update checks and
//! other side traffic are switched off.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fake_model::{FakeModel, Told};

/// Liveness bound for one client run (a few seconds normally): a hung client fails the test
/// instead of hanging CI. Never a speed target.
pub const CLIENT_RUN_BOUND: Duration = Duration::from_secs(120);

/// `tests/agents`, where `package.json` and the installed clients are.
pub fn agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agents")
}

/// An installed client's command (`claude`, `codex`, `gemini`, `mcp-inspector`). Panics, saying how to
/// install them, when missing: a missing client is a failed set-up, not a reason to skip.
pub fn npm_bin(name: &str) -> PathBuf {
    let bin = agents_dir().join("node_modules/.bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: install the agent clients with `npm ci --prefix tests/agents` \
         (scripts/test does)",
        bin.display()
    );
    bin
}

/// A throwaway home for one client run: `home/` (the agent's HOME, protected as a whole by the
/// default policy), `home/project/` (its working directory), `state/` (agent-guard's state dir,
/// outside the home), `policy.json`, and `bin/` holding `agent-guard` for the hooks' PATH.
pub struct AgentHome {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub project: PathBuf,
    pub state: PathBuf,
    pub policy: PathBuf,
    bin_dir: PathBuf,
    /// Numbers each run's output files.
    runs: std::cell::Cell<usize>,
}

impl AgentHome {
    /// A home under agent-guard's embedded default policy, except that its protected zones deny
    /// (`on_destroy: deny`) rather than keep: these tests show a denial reaching the model,
    /// and in a zone that keeps an `rm` succeeds (tests/tests/keep*.rs show that side).
    pub fn new() -> AgentHome {
        let out = Command::new(crate::bin())
            .args(["policy", "default"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::text(&out));
        let mut policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for zone in policy["protected_zones"].as_array_mut().unwrap() {
            zone["on_destroy"] = "deny".into();
        }
        AgentHome::with_policy(&policy.to_string())
    }

    pub fn with_policy(policy: &str) -> AgentHome {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let project = home.join("project");
        let bin_dir = root.join("bin");
        for d in [&project, &bin_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        // The hooks run `agent-guard` by name, as the documented settings snippets do.
        std::os::unix::fs::symlink(crate::bin(), bin_dir.join("agent-guard")).unwrap();
        let policy_path = root.join("policy.json");
        std::fs::write(&policy_path, policy).unwrap();
        AgentHome {
            _dir: dir,
            state: root.join("state"),
            root,
            home,
            project,
            policy: policy_path,
            bin_dir,
            runs: std::cell::Cell::new(0),
        }
    }

    /// Write `content` to `rel` under the home (parents created); returns the path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.home.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    /// `agent-guard ARGS` as the human at the keyboard: this HOME, no shell (so no alias),
    /// outside any supervisor. Panics unless it exits 0; returns its stdout.
    pub fn agent_guard(&self, args: &[&str]) -> String {
        let out = Command::new(crate::bin())
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("HOME", &self.home)
            .env("AGENT_GUARD_STATE_DIR", &self.state)
            .env("AGENT_GUARD_POLICY", &self.policy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "agent-guard {args:?}: {}",
            crate::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The denial records written so far.
    pub fn denials(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.join("denials.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad denial {l:?}: {e}")))
            .collect()
    }

    /// Run `program args` in the project directory, under `agent-guard run` when `guarded`,
    /// with a clean environment (PATH with `agent-guard` first, HOME, agent-guard's state dir
    /// and policy) plus `env`; stdin is /dev/null. Killed after [`CLIENT_RUN_BOUND`].
    pub fn run(
        &self,
        guarded: bool,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> AgentRun {
        let mut cmd = if guarded {
            let mut c = Command::new(crate::bin());
            c.args(["run", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        );
        let n = self.runs.get();
        self.runs.set(n + 1);
        let stdout_path = self.root.join(format!("run{n}.stdout"));
        let stderr_path = self.root.join(format!("run{n}.stderr"));
        cmd.args(args)
            .current_dir(&self.project)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("AGENT_GUARD_STATE_DIR", &self.state)
            .env("AGENT_GUARD_POLICY", &self.policy)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            // Files, not pipes: nothing to drain while waiting with a bound.
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > CLIENT_RUN_BOUND {
                // The whole process group: the client and whatever it started.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                panic!(
                    "{} still running after {CLIENT_RUN_BOUND:?}; stderr:\n{}",
                    program.display(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        AgentRun {
            output: Output {
                status,
                stdout: std::fs::read(&stdout_path).unwrap(),
                stderr: std::fs::read(&stderr_path).unwrap(),
            },
            elapsed: start.elapsed(),
        }
    }
}

impl Default for AgentHome {
    fn default() -> Self {
        AgentHome::new()
    }
}

/// One finished client run.
pub struct AgentRun {
    pub output: Output,
    pub elapsed: Duration,
}

impl AgentRun {
    pub fn text(&self) -> String {
        format!("{}\nelapsed: {:?}", crate::text(&self.output), self.elapsed)
    }

    /// Panics with the run's output unless it exited 0.
    pub fn assert_success(&self) -> &AgentRun {
        assert!(self.output.status.success(), "{}", self.text());
        self
    }

    /// Stdout's JSON lines (Claude Code's `stream-json` events).
    pub fn events(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Check that the only denial so far is `op` on `path` by a process of the agent `ancestor`,
/// and that `told` (what the model heard after the tool call) explains it: the denial's id,
/// its reason word for word, and the command that requests an override of that path.
/// Returns the denial record.
pub fn assert_denial_explained(
    home: &AgentHome,
    told: &Told,
    ancestor: &str,
    op: &str,
    path: &Path,
) -> Value {
    let denials = home.denials();
    assert_eq!(
        denials.len(),
        1,
        "expected one denial, of {op} {}: {denials:#?}",
        path.display()
    );
    let denial = denials[0].clone();
    assert_eq!(denial["op"], op, "{denial:#}");
    assert_eq!(denial["path"], path.to_str().unwrap(), "{denial:#}");
    assert_eq!(denial["ancestor"], ancestor, "{denial:#}");
    let context = told.context.join("\n");
    let reason = denial["reason"].as_str().unwrap();
    let request = format!("agent-guard override request {}", path.display());
    for expected in [denial["id"].as_str().unwrap(), reason, &request] {
        assert!(
            context.contains(expected),
            "the model must be told {expected:?}; it was told:\n{}",
            told.all()
        );
    }
    denial
}

/// The tools whose calls agent-guard's hook explains (docs/closed-loop.md).
pub const CLAUDE_HOOK_MATCHER: &str = "Bash|Read|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep";

/// The command every hook entry runs.
pub const HOOK_COMMAND: &str = "agent-guard hook claude-code";

/// Claude Code (`claude`), in print mode with `stream-json` output.
pub struct ClaudeCode {
    /// Written to `~/.claude/settings.json` before the run.
    pub settings: Value,
}

impl ClaudeCode {
    /// Settings with agent-guard's PostToolUse and PostToolUseFailure hooks as
    /// docs/closed-loop.md gives them, and a permission rule that lets print mode run Bash.
    ///
    /// The rule, not `--dangerously-skip-permissions`: Claude Code refuses that flag as root
    /// (CI runs as root), and without a rule print mode refuses any command that changes files
    /// ("rm in '…' needs approval") before it reaches the kernel. Read-only commands (`echo`)
    /// run without it.
    pub fn with_agent_guard_hook() -> ClaudeCode {
        let hook = json!([{"matcher": CLAUDE_HOOK_MATCHER,
            "hooks": [{"type": "command", "command": HOOK_COMMAND, "timeout": 10}]}]);
        ClaudeCode {
            settings: json!({
                "permissions": {"allow": ["Bash"]},
                "hooks": {"PostToolUse": hook, "PostToolUseFailure": hook},
            }),
        }
    }

    /// Run `claude -p PROMPT` under `agent-guard run` against `model`.
    pub fn run(&self, home: &AgentHome, model: &FakeModel, prompt: &str) -> AgentRun {
        let settings = home.home.join(".claude/settings.json");
        std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
        std::fs::write(
            &settings,
            serde_json::to_string_pretty(&self.settings).unwrap(),
        )
        .unwrap();
        ClaudeCode::exec(home, model, prompt)
    }

    /// Run `claude -p PROMPT` under `agent-guard run` with the settings already in the home.
    pub fn exec(home: &AgentHome, model: &FakeModel, prompt: &str) -> AgentRun {
        let base_url = model.base_url();
        home.run(
            true,
            &npm_bin("claude"),
            &["-p", prompt, "--output-format", "stream-json", "--verbose"],
            &[
                ("ANTHROPIC_BASE_URL", &base_url),
                ("ANTHROPIC_API_KEY", "sk-ant-fake"),
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("DISABLE_TELEMETRY", "1"),
                ("DISABLE_ERROR_REPORTING", "1"),
            ],
        )
    }
}

/// Codex's sandbox for the model's commands (`codex exec -s`).
#[derive(Clone, Copy, Debug)]
pub enum CodexSandbox {
    /// `danger-full-access`: commands run directly, so agent-guard alone judges them.
    DangerFullAccess,
    /// `read-only`, Codex's default: commands run inside its bundled bubblewrap.
    ReadOnly,
}

/// Codex (`codex exec`) with a model provider pointing at the fake (Responses API).
pub struct Codex {
    /// Written to `~/.codex/hooks.json`.
    pub hooks: Value,
    /// Whether `config.toml` records the hooks as trusted (Codex skips untrusted user hooks).
    pub trust_hooks: bool,
    pub sandbox: CodexSandbox,
}

impl Codex {
    /// A trusted PostToolUse hook for Codex's shell tool (named `Bash` in hook matchers and
    /// input) running agent-guard's Claude Code hook unchanged; sandbox off.
    pub fn with_agent_guard_hook() -> Codex {
        Codex {
            hooks: json!({"hooks": {"PostToolUse": [{"matcher": "Bash",
                "hooks": [{"type": "command", "command": HOOK_COMMAND, "timeout": 10}]}]}}),
            trust_hooks: true,
            sandbox: CodexSandbox::DangerFullAccess,
        }
    }

    /// `~/.codex/config.toml`: the fake as model provider, no update check, analytics or
    /// feedback, and the hooks' trust entries when `trust_hooks`.
    pub fn config_toml(&self, home: &AgentHome, model: &FakeModel) -> String {
        let mut toml = format!(
            "model = \"fake-model\"\nmodel_provider = \"fake\"\ncheck_for_update_on_startup = false\n\n\
             [analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n\
             [model_providers.fake]\nname = \"fake\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\n",
            model.base_url()
        );
        if self.trust_hooks {
            let hooks_json = home.home.join(".codex/hooks.json");
            for (key, hash) in codex_hook_trust(&hooks_json, &self.hooks) {
                let _ = write!(
                    toml,
                    "\n[hooks.state.{}]\ntrusted_hash = \"{hash}\"\n",
                    toml_string(&key)
                );
            }
        }
        toml
    }

    /// Write `~/.codex/config.toml` and `hooks.json` for a run against `model`.
    pub fn install(&self, home: &AgentHome, model: &FakeModel) {
        let dir = home.home.join(".codex");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), self.config_toml(home, model)).unwrap();
        std::fs::write(dir.join("hooks.json"), self.hooks.to_string()).unwrap();
    }

    /// Run `codex exec PROMPT` under `agent-guard run` against `model`.
    pub fn run(&self, home: &AgentHome, model: &FakeModel, prompt: &str) -> AgentRun {
        self.install(home, model);
        self.exec(home, prompt)
    }

    /// Run `codex exec PROMPT` under `agent-guard run` with the files already in the home.
    pub fn exec(&self, home: &AgentHome, prompt: &str) -> AgentRun {
        let sandbox = match self.sandbox {
            CodexSandbox::DangerFullAccess => "danger-full-access",
            CodexSandbox::ReadOnly => "read-only",
        };
        // --strict-config: a key this Codex does not know fails the run instead of being
        // ignored, so the config above cannot silently stop meaning what it says. No --json:
        // its events leave out the hook runs that the plain stderr log shows
        // ("hook: PostToolUse Completed").
        home.run(
            true,
            &npm_bin("codex"),
            &[
                "exec",
                "--strict-config",
                "--skip-git-repo-check",
                "-s",
                sandbox,
                prompt,
            ],
            &[],
        )
    }
}

/// The model Gemini CLI is told to use (`-m`): without one it asks a small routing model
/// first (a `generateContent` call expecting a JSON complexity score) to pick one.
pub const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// Gemini CLI (`gemini -p`, headless) with API-key auth against the fake
/// (`GOOGLE_GEMINI_BASE_URL`), every tool call approved (`--yolo`).
pub struct GeminiCli {
    /// Written to `~/.gemini/settings.json` before `agent-guard install gemini-cli` merges into
    /// it: the user's own settings.
    pub settings: Value,
    /// Whether `~/.gemini/trustedFolders.json` trusts the project, as the user's answer to
    /// Gemini CLI's trust dialog does. In an untrusted folder Gemini CLI runs no hook and starts
    /// no MCP server from the settings, user-wide ones included.
    pub trust_project: bool,
}

impl GeminiCli {
    /// A user's settings before agent-guard: the API key as auth method (Gemini CLI asks for
    /// one otherwise; `GOOGLE_GEMINI_BASE_URL` alone selects a "gateway" auth that headless
    /// mode refuses), no update check or usage statistics; the project trusted.
    pub fn user_setup() -> GeminiCli {
        GeminiCli {
            settings: json!({
                "security": {"auth": {"selectedType": "gemini-api-key"}},
                "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
                "privacy": {"usageStatisticsEnabled": false},
            }),
            trust_project: true,
        }
    }

    /// Write the user's `~/.gemini/settings.json` and, when `trust_project`,
    /// `~/.gemini/trustedFolders.json` (`{"/path/of/project": "TRUST_FOLDER"}`).
    pub fn install(&self, home: &AgentHome) {
        let dir = home.home.join(".gemini");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("settings.json"),
            serde_json::to_string_pretty(&self.settings).unwrap(),
        )
        .unwrap();
        if self.trust_project {
            let trusted = json!({home.project.to_str().unwrap(): "TRUST_FOLDER"});
            std::fs::write(dir.join("trustedFolders.json"), trusted.to_string()).unwrap();
        }
    }

    /// Run `gemini -p PROMPT` under `agent-guard run` against `model`, with the files already
    /// in the home.
    pub fn exec(home: &AgentHome, model: &FakeModel, prompt: &str) -> AgentRun {
        let base_url = model.base_url();
        home.run(
            true,
            &npm_bin("gemini"),
            &["-p", prompt, "--yolo", "-m", GEMINI_MODEL],
            &[
                ("GOOGLE_GEMINI_BASE_URL", &base_url),
                ("GEMINI_API_KEY", "gemini-fake-key"),
            ],
        )
    }

    /// `gemini ARGS` (e.g. `mcp list`) under `agent-guard run`, no model.
    pub fn command(home: &AgentHome, args: &[&str]) -> AgentRun {
        home.run(true, &npm_bin("gemini"), args, &[])
    }
}

/// The `[hooks.state]` entries that make Codex trust every command hook of `hooks`: agent-guard's
/// own computation (what `agent-guard install codex` writes), so that
/// `agents_codex::trust_entries_match_codex_own_hashes` checks it against Codex's own.
pub use agent_guard::install::codex_hook_trust;

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_are_quoted() {
        assert_eq!(toml_string(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
    }
}
