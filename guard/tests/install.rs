//! `agent-guard install / uninstall / init` with the built binary on real files in a throwaway
//! home: merged into settings that already hold the user's own hooks and keys, idempotent, a
//! diff and a backup, `--dry-run` writing nothing, `uninstall` leaving the user's settings as
//! they were, and a clear error for a file that is not what it should be.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_agent-guard");

struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Home { _dir: dir, home }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.home.join(rel)).unwrap_or_default()
    }

    fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// `agent-guard ARGS` with this HOME, bash as the shell and PATH holding only `path`.
    fn run(&self, args: &[&str], path: &str) -> (i32, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("HOME", &self.home)
            .env("SHELL", "/bin/bash")
            .env("PATH", path)
            .env("USER", "dev")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args, "/usr/bin:/bin");
        assert_eq!(code, 0, "agent-guard {args:?}:\n{out}\n{err}");
        out
    }

    fn backups(&self, dir: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.home.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".agent-guard-backup-"))
            .collect();
        found.sort();
        found
    }
}

const OUR_COMMAND: &str = "agent-guard hook claude-code";

fn our_handlers(settings: &Value, event: &str) -> usize {
    settings["hooks"][event]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| h["command"] == OUR_COMMAND)
        .count()
}

const CLAUDE_SETTINGS: &str = r#"{
  "permissions": {"allow": ["Bash(npm test)"], "deny": ["Read(./.env)"]},
  "model": "opus",
  "hooks": {
    "PostToolUse": [
      {"matcher": "Write|Edit", "hooks": [{"type": "command", "command": "prettier --write \"$FILE\""}]}
    ],
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/check-bash"}]}
    ]
  },
  "env": {"FOO": "bar"}
}
"#;

#[test]
fn claude_code_install_merges_keeps_the_users_settings_and_is_idempotent() {
    let h = Home::new();
    let settings = h.write(".claude/settings.json", CLAUDE_SETTINGS);
    h.write(".claude/CLAUDE.md", "# My rules\n\nUse tabs.\n");
    h.write(".bashrc", "export EDITOR=vim\n");

    let out = h.ok(&["install", "claude-code"]);
    // A diff of each file, with the lines put in.
    assert!(
        out.contains("+++ ")
            && out.contains(&format!("+            \"command\": \"{OUR_COMMAND}\"")),
        "{out}"
    );
    assert!(out.contains("backup: "), "{out}");

    let v = h.json(".claude/settings.json");
    // Everything of the user's is still there, in its place in the key order.
    assert_eq!(
        v["permissions"],
        json!({"allow": ["Bash(npm test)"], "deny": ["Read(./.env)"]})
    );
    assert_eq!(v["model"], "opus");
    assert_eq!(v["env"], json!({"FOO": "bar"}));
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["permissions", "model", "hooks", "env"]);
    assert_eq!(v["hooks"]["PostToolUse"][0]["matcher"], "Write|Edit");
    assert_eq!(
        v["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
        "~/bin/check-bash"
    );
    for event in ["PostToolUse", "PostToolUseFailure"] {
        assert_eq!(our_handlers(&v, event), 1, "{v:#}");
    }
    let ours = v["hooks"]["PostToolUse"][1].clone();
    assert_eq!(
        ours["matcher"],
        "Bash|Read|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep"
    );
    // The instructions after the user's own, the alias in agent-guard's block.
    let md = h.read(".claude/CLAUDE.md");
    assert!(md.starts_with("# My rules\n\nUse tabs.\n"), "{md}");
    assert!(md.contains("agent-guard override request"), "{md}");
    let rc = h.read(".bashrc");
    assert!(rc.starts_with("export EDITOR=vim\n"), "{rc}");
    assert!(
        rc.contains("alias claude='agent-guard run -- claude'"),
        "{rc}"
    );
    // The backup is the file as it was.
    let backups = h.backups(".claude");
    assert_eq!(backups.len(), 2, "CLAUDE.md and settings.json: {backups:?}");
    assert_eq!(
        std::fs::read_to_string(&backups[1]).unwrap(),
        CLAUDE_SETTINGS
    );

    // Again: nothing changes, no new backup.
    let snapshot: Vec<String> = [".claude/settings.json", ".claude/CLAUDE.md", ".bashrc"]
        .iter()
        .map(|f| h.read(f))
        .collect();
    let again = h.ok(&["install", "claude-code"]);
    assert!(again.contains("nothing to change"), "{again}");
    let after: Vec<String> = [".claude/settings.json", ".claude/CLAUDE.md", ".bashrc"]
        .iter()
        .map(|f| h.read(f))
        .collect();
    assert_eq!(snapshot, after);
    assert_eq!(h.backups(".claude").len(), 2);

    // Uninstall: the user's settings as they were (same values), agent-guard's gone.
    h.ok(&["uninstall", "claude-code"]);
    let back = h.json(".claude/settings.json");
    let original: Value = serde_json::from_str(CLAUDE_SETTINGS).unwrap();
    assert_eq!(back, original);
    assert_eq!(h.read(".claude/CLAUDE.md"), "# My rules\n\nUse tabs.\n");
    assert_eq!(h.read(".bashrc"), "export EDITOR=vim\n");
    assert!(settings.exists());
}

#[test]
fn a_hook_group_the_user_shares_with_agent_guard_keeps_their_handler() {
    let h = Home::new();
    // An older agent-guard entry the user added their own handler to, with their own matcher.
    let shared = json!({"hooks": {"PostToolUse": [
        {"matcher": "Bash", "hooks": [
            {"type": "command", "command": "~/bin/log-it"},
            {"type": "command", "command": OUR_COMMAND, "timeout": 3}]}]}});
    h.write(".claude/settings.json", &shared.to_string());
    h.ok(&["install", "claude-code", "--no-alias"]);
    let v = h.json(".claude/settings.json");
    let group = &v["hooks"]["PostToolUse"][0];
    assert_eq!(group["matcher"], "Bash");
    assert_eq!(group["hooks"][0]["command"], "~/bin/log-it");
    assert_eq!(group["hooks"][1]["timeout"], 10, "{v:#}");
    assert_eq!(v["hooks"]["PostToolUse"].as_array().unwrap().len(), 1);
    h.ok(&["uninstall", "claude-code", "--no-alias"]);
    let v = h.json(".claude/settings.json");
    assert_eq!(
        v,
        json!({"hooks": {"PostToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/log-it"}]}]}})
    );
}

#[test]
fn dry_run_shows_the_diff_and_writes_nothing() {
    let h = Home::new();
    h.write(".gemini/settings.json", "{\"theme\": \"GitHub\"}\n");
    let out = h.ok(&["install", "gemini-cli", "--dry-run"]);
    assert!(out.contains("Dry run: nothing was written"), "{out}");
    assert!(out.contains("+  \"hooks\": {"), "{out}");
    assert!(
        out.contains("--- /dev/null\n+++ ") && out.contains("GEMINI.md"),
        "{out}"
    );
    assert_eq!(h.read(".gemini/settings.json"), "{\"theme\": \"GitHub\"}\n");
    assert!(!h.home.join(".gemini/GEMINI.md").exists());
    assert!(!h.home.join(".bashrc").exists());
    assert!(h.backups(".gemini").is_empty());
}

#[test]
fn gemini_cli_gets_an_after_tool_hook() {
    let h = Home::new();
    h.write(
        ".gemini/settings.json",
        r#"{"theme": "GitHub", "mcpServers": {"fs": {"command": "fs-mcp"}}, "hooks": {"BeforeTool": [{"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "audit.sh"}]}]}}"#,
    );
    h.ok(&["install", "gemini-cli"]);
    let v = h.json(".gemini/settings.json");
    assert_eq!(v["theme"], "GitHub");
    assert_eq!(v["mcpServers"]["fs"]["command"], "fs-mcp");
    assert_eq!(
        v["hooks"]["BeforeTool"][0]["hooks"][0]["command"],
        "audit.sh"
    );
    let after = &v["hooks"]["AfterTool"][0];
    assert!(
        after["matcher"]
            .as_str()
            .unwrap()
            .contains("run_shell_command"),
        "{v:#}"
    );
    assert_eq!(after["hooks"][0]["command"], OUR_COMMAND);
    assert_eq!(
        v["mcpServers"]["agent-guard"],
        json!({"command": "agent-guard", "args": ["mcp"]})
    );
    assert!(h.read(".gemini/GEMINI.md").contains("## agent-guard"));
    assert!(h
        .read(".bashrc")
        .contains("alias gemini='agent-guard run -- gemini'"));
    h.ok(&["uninstall", "gemini-cli"]);
    let v = h.json(".gemini/settings.json");
    assert!(v.get("hooks").unwrap().get("AfterTool").is_none(), "{v:#}");
    assert_eq!(v["mcpServers"]["fs"]["command"], "fs-mcp");
    assert!(v["mcpServers"].get("agent-guard").is_none(), "{v:#}");
    assert_eq!(h.read(".gemini/GEMINI.md"), "");
}

#[test]
fn cursor_gets_the_alias_of_its_cli_and_a_note_for_its_rules() {
    let h = Home::new();
    let out = h.ok(&["install", "cursor"]);
    assert!(out.contains("note: ") && out.contains("Rules"), "{out}");
    assert!(h
        .read(".bashrc")
        .contains("alias cursor-agent='agent-guard run -- cursor-agent'"));
    assert_eq!(
        h.json(".cursor/mcp.json"),
        json!({"mcpServers": {"agent-guard": {"command": "agent-guard", "args": ["mcp"]}}})
    );
    h.ok(&["uninstall", "cursor"]);
    assert_eq!(h.read(".bashrc"), "");
    // What is left means what an absent file means to Cursor; the file is not removed, as the
    // user may have made it.
    assert_eq!(h.json(".cursor/mcp.json"), json!({}));
}

/// The MCP server entry `agent-guard mcp` in each agent's own list of user-wide servers: beside
/// the user's servers (which keep their places and settings), once however often `install`
/// runs, and out again with `uninstall`, leaving the file as it was.
#[test]
fn install_registers_the_mcp_server_beside_the_users_servers_and_uninstall_takes_it_out() {
    let h = Home::new();
    // ~/.claude.json as Claude Code keeps it: its own state, a project's local-scope servers,
    // and a user-scope server of the user's.
    let claude = r#"{
  "numStartups": 12,
  "theme": "dark",
  "projects": {
    "/home/dev/app": {"allowedTools": [], "mcpServers": {"db": {"type": "stdio", "command": "db-mcp", "args": [], "env": {}}}}
  },
  "mcpServers": {
    "github": {"type": "stdio", "command": "npx", "args": ["-y", "github-mcp"], "env": {"TOKEN": "x"}}
  },
  "userID": "abc"
}
"#;
    h.write(".claude.json", claude);
    let cursor = r#"{"mcpServers": {"linear": {"url": "https://mcp.linear.app/sse"}}}"#;
    h.write(".cursor/mcp.json", cursor);
    let codex = "# my codex config\nmodel = \"o3\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\" # the docs\n\n[mcp_servers.docs.env]\nKEY = \"v\"\n";
    h.write(".codex/config.toml", codex);

    let dry = h.ok(&["install", "claude-code", "--dry-run", "--no-alias"]);
    assert!(
        dry.contains(".claude.json: MCP server agent-guard")
            && dry.contains("+    \"agent-guard\""),
        "{dry}"
    );
    assert_eq!(h.read(".claude.json"), claude, "--dry-run writes nothing");

    for agent in ["claude-code", "cursor", "codex"] {
        h.ok(&["install", agent, "--no-alias"]);
    }
    let v = h.json(".claude.json");
    assert_eq!(
        v["mcpServers"]["agent-guard"],
        json!({"type": "stdio", "command": "agent-guard", "args": ["mcp"], "env": {}})
    );
    let original: Value = serde_json::from_str(claude).unwrap();
    assert_eq!(v["mcpServers"]["github"], original["mcpServers"]["github"]);
    assert_eq!(v["projects"], original["projects"], "local scope untouched");
    assert_eq!(
        (&v["numStartups"], &v["userID"]),
        (&json!(12), &json!("abc"))
    );
    assert_eq!(h.backups(".").len(), 1, "a backup of ~/.claude.json");

    let v = h.json(".cursor/mcp.json");
    assert_eq!(
        v["mcpServers"]["linear"]["url"],
        "https://mcp.linear.app/sse"
    );
    assert_eq!(v["mcpServers"]["agent-guard"]["args"], json!(["mcp"]));

    let toml = h.read(".codex/config.toml");
    assert!(
        toml.starts_with(codex),
        "the user's lines, comments included: {toml}"
    );
    assert!(
        toml.contains("[mcp_servers.agent-guard]\ncommand = \"agent-guard\"\nargs = [\"mcp\"]\nenv_vars = [\"AGENT_GUARD_AGENT\", \"AGENT_GUARD_STATE_DIR\", \"AGENT_GUARD_POLICY\"]\n"),
        "{toml}"
    );

    let files = [".claude.json", ".cursor/mcp.json", ".codex/config.toml"];
    let installed: Vec<String> = files.iter().map(|f| h.read(f)).collect();
    for agent in ["claude-code", "cursor", "codex"] {
        let again = h.ok(&["install", agent, "--no-alias"]);
        assert!(again.contains("nothing to change"), "{agent}: {again}");
    }
    let again: Vec<String> = files.iter().map(|f| h.read(f)).collect();
    assert_eq!(again, installed, "a second install changes nothing");

    for agent in ["claude-code", "cursor", "codex"] {
        h.ok(&["uninstall", agent, "--no-alias"]);
    }
    assert_eq!(h.json(".claude.json"), original);
    assert_eq!(
        h.json(".cursor/mcp.json"),
        serde_json::from_str::<Value>(cursor).unwrap()
    );
    assert_eq!(h.read(".codex/config.toml"), codex);
    let again = h.ok(&["uninstall", "codex", "--no-alias"]);
    assert!(again.contains("nothing to change"), "{again}");
}

#[test]
fn codex_install_trusts_its_hook_by_position_and_keeps_config_toml_lines() {
    let h = Home::new();
    let config = "# my codex config\nmodel = \"o3\"  # keep this comment\n\n[profiles.fast]\nmodel = \"o4-mini\"\n";
    h.write(".codex/config.toml", config);
    // The user's own PostToolUse group comes first: agent-guard's goes at index 1.
    h.write(
        ".codex/hooks.json",
        r#"{"hooks": {"PostToolUse": [{"matcher": "apply_patch", "hooks": [{"type": "command", "command": "fmt.sh"}]}]}}"#,
    );
    h.ok(&["install", "codex"]);
    let hooks_json = h.home.join(".codex/hooks.json");
    let v = h.json(".codex/hooks.json");
    assert_eq!(
        v["hooks"]["PostToolUse"][0]["hooks"][0]["command"],
        "fmt.sh"
    );
    assert_eq!(v["hooks"]["PostToolUse"][1]["matcher"], "Bash");
    let toml = h.read(".codex/config.toml");
    assert!(toml.starts_with(config), "{toml}");
    let ours = agent_guard::install::codex_hook_trust(&hooks_json, &v);
    let (key, hash) = &ours[1];
    assert!(key.ends_with(":post_tool_use:1:0"), "{key}");
    // Only agent-guard's own hook is trusted; the user's stays as Codex's /hooks left it.
    assert!(
        toml.contains(&format!(
            "[hooks.state.\"{key}\"]\ntrusted_hash = \"{hash}\"\n"
        )),
        "{toml}"
    );
    assert!(!toml.contains(":post_tool_use:0:0"), "{toml}");

    let again = h.ok(&["install", "codex"]);
    assert!(again.contains("nothing to change"), "{again}");
    assert_eq!(h.read(".codex/config.toml"), toml);

    h.ok(&["uninstall", "codex"]);
    assert_eq!(h.read(".codex/config.toml"), config);
    assert_eq!(
        h.json(".codex/hooks.json"),
        json!({"hooks": {"PostToolUse": [{"matcher": "apply_patch", "hooks": [{"type": "command", "command": "fmt.sh"}]}]}})
    );
}

#[test]
fn codex_uninstall_moves_the_trust_of_later_hooks_up() {
    let h = Home::new();
    h.ok(&["install", "codex", "--no-alias"]);
    // The user adds a hook after agent-guard's and trusts it (as Codex's /hooks would).
    let hooks_json = h.home.join(".codex/hooks.json");
    let mut v = h.json(".codex/hooks.json");
    v["hooks"]["PostToolUse"]
        .as_array_mut()
        .unwrap()
        .push(json!({"matcher": "Bash", "hooks": [{"type": "command", "command": "notify.sh"}]}));
    std::fs::write(&hooks_json, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let (key, hash) = agent_guard::install::codex_hook_trust(&hooks_json, &v)[1].clone();
    let mut toml = h.read(".codex/config.toml");
    toml.push_str(&format!(
        "\n[hooks.state.\"{key}\"]\ntrusted_hash = \"{hash}\"\n"
    ));
    std::fs::write(h.home.join(".codex/config.toml"), &toml).unwrap();

    h.ok(&["uninstall", "codex", "--no-alias"]);
    let v = h.json(".codex/hooks.json");
    assert_eq!(v["hooks"]["PostToolUse"].as_array().unwrap().len(), 1);
    let (key, hash2) = agent_guard::install::codex_hook_trust(&hooks_json, &v)[0].clone();
    assert_eq!(hash2, hash);
    let toml = h.read(".codex/config.toml");
    assert!(
        toml.contains(&format!(
            "[hooks.state.\"{key}\"]\ntrusted_hash = \"{hash}\""
        )),
        "{toml}"
    );
    assert_eq!(toml.matches("[hooks.state.").count(), 1, "{toml}");
}

#[test]
fn a_settings_file_that_is_not_json_is_named_and_left_alone() {
    let h = Home::new();
    let bad = "{\"model\": \"opus\",\n  // a comment Claude Code would not accept either\n}\n";
    h.write(".claude/settings.json", bad);
    let (code, out, err) = h.run(&["install", "claude-code"], "/usr/bin:/bin");
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains(".claude/settings.json") && err.contains("not valid JSON"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(h.read(".claude/settings.json"), bad);
    assert!(!h.home.join(".claude/CLAUDE.md").exists());
    assert!(!h.home.join(".bashrc").exists());

    h.write(".claude/settings.json", "[1, 2]");
    let (code, _, err) = h.run(&["install", "claude-code"], "/usr/bin:/bin");
    assert_ne!(code, 0);
    assert!(err.contains("expected a JSON object"), "{err}");
}

#[test]
fn an_unknown_agent_is_a_usage_error_naming_the_choices() {
    let h = Home::new();
    let (code, _, err) = h.run(&["install", "vscode"], "/usr/bin:/bin");
    assert_eq!(code, 2);
    assert!(
        err.contains("claude-code") && err.contains("gemini-cli"),
        "{err}"
    );
}

fn fake_exe(dir: &Path, name: &str) {
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn init_writes_a_commented_policy_that_every_command_then_uses() {
    let h = Home::new();
    let bin = h.home.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_exe(&bin, "claude");
    fake_exe(&bin, "codex");
    fake_exe(&bin, "cargo");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let (code, out, err) = h.run(&["init"], &path);
    assert_eq!(code, 0, "{out}{err}");
    let file = h.home.join(".config/agent-guard/policy.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("// agent-guard policy for dev"), "{text}");
    assert!(
        text.contains(&format!("claude ({}/claude)", bin.display())),
        "{text}"
    );
    assert!(
        out.contains("agent-guard install claude-code")
            && out.contains("agent-guard install codex"),
        "{out}"
    );

    // The commented file is the policy `policy check` finds and accepts.
    let (code, out, err) = h.run(&["policy", "check"], &path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains(&file.display().to_string()),
        "{out}{err}"
    );

    // A second init refuses to overwrite; --force keeps a backup.
    let (code, _, err) = h.run(&["init"], &path);
    assert_ne!(code, 0);
    assert!(
        err.contains("exists already") && err.contains("--force"),
        "{err}"
    );
    std::fs::write(&file, "{\"mode\": \"audit\"}\n").unwrap();
    let (code, out, _) = h.run(&["init", "--force"], &path);
    assert_eq!(code, 0);
    assert!(out.contains("backup: "), "{out}");
    let backups = h.backups(".config/agent-guard");
    assert_eq!(
        std::fs::read_to_string(&backups[0]).unwrap(),
        "{\"mode\": \"audit\"}\n"
    );
}

#[test]
fn the_users_policy_directory_is_guarded_even_before_init() {
    // An agent must not create ~/.config/agent-guard/policy.json for the next command to find.
    let h = Home::new();
    let target = h.home.join(".config/agent-guard/policy.json");
    let (code, out, err) = h.run(
        &[
            "check",
            "--op",
            "create",
            "--path",
            target.to_str().unwrap(),
            "--as-agent",
            "claude",
        ],
        "/usr/bin:/bin",
    );
    assert_eq!(code, 1, "{out}{err}");
}
