//! The closed loop end to end on Linux (issue 5, item 5), with the built binary and real
//! processes: a fake agent under `agent-guard run` deletes a protected file and gets EPERM and a
//! denial; the hook, fed the tool-call JSON from inside the agent's tree, explains it; the agent
//! files a request and cannot approve it itself (neither politely nor by unsetting
//! `AGENT_GUARD_AGENT`: the kernel refuses its write of the state dir); a human process (this
//! test) approves; the agent's retry succeeds; after the TTL the same delete is denied again.
//!
//! The agent and the test hand over through marker files in a directory outside every zone.
//! Bounds are generous liveness bounds; the approve-to-enforce latency is printed here and
//! measured by `benches/grant_reload.rs`.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const LIVENESS: Duration = Duration::from_secs(10);

/// The fake agent. `$AG` is the agent-guard binary, `$IO` the hand-over directory, `$TARGET` the
/// protected file, `$HOOK_INPUT` a recorded PostToolUseFailure input.
const AGENT: &str = r#"
set -u
say() { printf '%s\n' "$2" > "$IO/$1.tmp" && mv "$IO/$1.tmp" "$IO/$1"; }
wait_for() { while [ ! -e "$IO/$1" ]; do sleep 0.01; done; }

# 1. The delete is refused by the kernel.
if rm "$TARGET" 2> "$IO/rm1.err"; then say rm1 deleted; else say rm1 "refused $?"; fi

# 2. The hook explains it (run inside the agent's tree, as Claude Code would run it).
"$AG" hook claude-code < "$HOOK_INPUT" > "$IO/hook.out" 2> "$IO/hook.err"; say hook "$?"

# 3. The agent asks, taking path and op from the denial the hook named.
denial=$(sed -n 's/.*, denial \([0-9a-z-]*\)).*/\1/p' "$IO/hook.out" | head -n 1)
"$AG" override request --denial "$denial" --reason 'the user asked to delete the old notes' --ttl 3s --json \
  > "$IO/request.json" 2> "$IO/request.err"; say request "$?"
id=$(sed -n 's/^  "id": "\(r-[0-9a-f]*\)",$/\1/p' "$IO/request.json")

# 4. It cannot approve its own request: politely refused, and refused by the kernel when it
#    hides that it is an agent.
"$AG" override approve "$id" > /dev/null 2> "$IO/self1.err"; say self1 "$?"
env -u AGENT_GUARD_AGENT "$AG" override approve "$id" > /dev/null 2> "$IO/self2.err"; say self2 "$?"

# The spool's contents are the agent's, the spool itself is not: it cannot be moved away and
# replaced by a symlink for a human's command to follow.
if mv "$SPOOL" "$IO/spool-moved" 2> "$IO/mv.err"; then say mvspool moved; else say mvspool "refused $?"; fi
if ln -s "$IO" "$SPOOL.new" 2> /dev/null && mv -T "$SPOOL.new" "$SPOOL" 2>> "$IO/mv.err"; then
  say swapspool swapped; else say swapspool refused; fi

# 5. A human approves; the agent retries until the delete goes through.
say asked "$id"
wait_for approved
until rm "$TARGET" 2> /dev/null; do sleep 0.005; done
if [ -e "$TARGET" ]; then gone=present; else gone=gone; fi
say retried "$(date +%s.%N) $gone"

# 6. After the TTL the same delete is denied again.
echo again > "$TARGET"
wait_for expired
if rm "$TARGET" 2> "$IO/rm3.err"; then say rm3 deleted; else say rm3 "refused $?"; fi
"#;

struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    state: PathBuf,
    io: PathBuf,
    target: PathBuf,
    policy: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let project = home.join("src/project");
        let io = root.join("io");
        std::fs::create_dir_all(project.join("notes")).unwrap();
        std::fs::create_dir_all(&io).unwrap();
        let target = project.join("notes/old-plan.md");
        std::fs::write(&target, "old plan").unwrap();
        let policy = root.join("policy.json");
        std::fs::write(
            &policy,
            serde_json::json!({"ai_agent_patterns": ["claude"],
                "protected_zones": [{"path": project, "on_destroy": "deny"}]})
            .to_string(),
        )
        .unwrap();
        World {
            _dir: dir,
            home,
            state: root.join("state"),
            io,
            target,
            policy,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(agent_guard_e2e::bin());
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AGENT_GUARD_STATE_DIR", &self.state)
            .env("AGENT_GUARD_POLICY", &self.policy);
        c
    }

    /// Wait for the agent's marker `name` and return its content.
    fn wait(&self, name: &str, agent: &mut std::process::Child) -> String {
        let path = self.io.join(name);
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text.trim().to_string();
            }
            if let Ok(Some(status)) = agent.try_wait() {
                panic!(
                    "the agent exited ({status}) before {name}; io: {:?}",
                    self.dump()
                );
            }
            assert!(
                start.elapsed() < LIVENESS,
                "no {name} from the agent; io: {:?}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn dump(&self) -> Vec<(String, String)> {
        std::fs::read_dir(&self.io)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.io.join(name)).unwrap_or_default()
    }

    fn mark(&self, name: &str) {
        std::fs::write(self.io.join(name), "").unwrap();
    }
}

fn hook_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guard/tests/data/hooks/post_tool_use_failure_bash.json")
}

fn unix_now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn denied_explained_requested_approved_retried_expired() {
    let w = World::new();
    let script = w.io.join("agent.sh");
    std::fs::write(&script, AGENT).unwrap();
    let mut agent = w
        .cmd()
        .args(["run", "--agent", "claude", "--", "bash"])
        .arg(&script)
        .env("AG", agent_guard_e2e::bin())
        .env("IO", &w.io)
        .env("TARGET", &w.target)
        .env("HOOK_INPUT", hook_input())
        .env("SPOOL", w.state.join("requests"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // 1. EPERM, and a denial record naming the file.
    assert_eq!(
        w.wait("rm1", &mut agent),
        "refused 1",
        "{}",
        w.read("rm1.err")
    );
    assert!(
        w.read("rm1.err").contains("Operation not permitted"),
        "{}",
        w.read("rm1.err")
    );
    assert!(w.target.exists());

    // 2. The hook's answer, from inside the tree.
    assert_eq!(w.wait("hook", &mut agent), "0", "{}", w.read("hook.err"));
    let answer: Value = serde_json::from_str(&w.read("hook.out"))
        .unwrap_or_else(|e| panic!("hook output ({e}): {:?}", w.read("hook.out")));
    let context = answer["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        answer["hookSpecificOutput"]["hookEventName"],
        "PostToolUseFailure"
    );
    let target = w.target.display().to_string();
    assert!(context.contains(&target), "{context}");
    assert!(context.contains("protected_delete"), "{context}");
    assert!(
        context.contains(&format!(
            "agent-guard override request {target} --op unlink"
        )),
        "{context}"
    );

    // 3. The request, filed by the agent into the spool it may write.
    assert_eq!(
        w.wait("request", &mut agent),
        "0",
        "{}",
        w.read("request.err")
    );
    let request: Value = serde_json::from_str(&w.read("request.json")).unwrap();
    assert_eq!(request["path"], target.as_str());
    assert_eq!(request["ops"], serde_json::json!(["unlink"]));
    assert!(request["requester"]["agent"]
        .as_str()
        .unwrap()
        .starts_with("claude:"));

    // 4. The agent approving its own request: refused both ways, nothing granted.
    assert_eq!(w.wait("self1", &mut agent), "1", "{}", w.read("self1.err"));
    assert_eq!(w.wait("self2", &mut agent), "1", "{}", w.read("self2.err"));
    for err in [w.read("self1.err"), w.read("self2.err")] {
        assert!(
            err.contains("agent-guard override approve must be run by a human, not by an agent"),
            "{err}"
        );
    }
    assert!(
        w.read("self2.err").contains("refused"),
        "the kernel refused the write: {}",
        w.read("self2.err")
    );
    assert!(
        !w.state.join("grants.json").exists()
            || std::fs::read_to_string(w.state.join("grants.json"))
                .unwrap()
                .contains("\"grants\": []")
    );

    // The spool directory stays in place.
    assert_eq!(
        w.wait("mvspool", &mut agent),
        "refused 1",
        "{}",
        w.read("mv.err")
    );
    assert_eq!(
        w.wait("swapspool", &mut agent),
        "refused",
        "{}",
        w.read("mv.err")
    );
    assert!(std::fs::symlink_metadata(w.state.join("requests"))
        .unwrap()
        .is_dir());

    // 5. A human approves; the agent's retry goes through.
    let id = w.wait("asked", &mut agent);
    assert_eq!(id, request["id"].as_str().unwrap());
    let out = w.cmd().args(["override", "approve", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved_at = unix_now_f64();
    w.mark("approved");
    let retried = w.wait("retried", &mut agent);
    let (when, gone) = retried.split_once(' ').unwrap();
    assert_eq!(gone, "gone", "the approved delete happened");
    eprintln!(
        "retry succeeded {:.1} ms after approve returned",
        (when.parse::<f64>().unwrap() - approved_at) * 1000.0
    );

    // 6. After the 3 s TTL, denied again.
    let grants: Value =
        serde_json::from_slice(&std::fs::read(w.state.join("grants.json")).unwrap()).unwrap();
    let expires_at = grants["grants"][0]["expires_at"].as_u64().unwrap();
    while unix_now_f64() < expires_at as f64 + 0.2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    w.mark("expired");
    assert_eq!(
        w.wait("rm3", &mut agent),
        "refused 1",
        "{}",
        w.read("rm3.err")
    );
    assert!(w.target.exists());
    let status = agent.wait().unwrap();
    assert!(status.success(), "agent exit: {status}");

    // The loop itself caused no denial beyond the two deletes and the agent's own attempt to
    // approve (its write of the grants lock): requesting, the hook and its cursor stay within
    // what the agent may write.
    let denials = std::fs::read_to_string(w.state.join("denials.jsonl")).unwrap();
    let mut deletes = 0;
    for record in denials
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
    {
        let path = record["path"].as_str().unwrap();
        match record["rule"].as_str().unwrap() {
            "protected_delete" if path == target => deletes += 1,
            "guard_self" if path.starts_with(&*w.state.join("grants").to_string_lossy()) => {}
            // The agent's attempts on the spool directory itself.
            "guard_self" if path.starts_with(&*w.state.join("requests").to_string_lossy()) => {}
            _ => panic!("unexpected denial {record}"),
        }
    }
    assert_eq!(deletes, 2, "{denials}");

    // The audit trail holds the whole story of the request.
    let trail = std::fs::read_to_string(w.state.join("overrides.jsonl")).unwrap();
    let kinds: Vec<String> = trail
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["id"] == id.as_str())
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&kinds[..2], ["request", "approve"], "{trail}");

    // And so does the SQLite audit trail, next to the decisions.
    let out = w
        .cmd()
        .args(["audit", "query", "--overrides", "--json"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["request", "approve"] {
        assert!(
            listed.lines().any(|l| l.contains(&id) && l.contains(kind)),
            "no {kind} event of {id} in the audit store: {listed}"
        );
    }
}
