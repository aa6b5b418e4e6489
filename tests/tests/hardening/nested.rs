//! Item 11: a nested sandbox (bwrap, `unshare -U`, `codex sandbox`) inside `run` is refused, as
//! before, but no longer silently: the refusal is recorded, and the record says how to run both
//! (the agent's own sandbox off, agent-guard around it). Making nested namespaces work without
//! a hole is the open part (docs/linux.md). A Landlock domain the agent would put itself in is
//! refused the same way: it would not bind the calls the supervisor makes for the agent.

use super::*;

/// landlock_create_ruleset (handling EXECUTE), no_new_privs, landlock_restrict_self.
const LANDLOCK: &str = r#"
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
attr = ctypes.create_string_buffer(struct.pack("Q", 1))
fd = libc.syscall(444, attr, 8, 0)
libc.prctl(38, 1, 0, 0, 0)
if libc.syscall(446, fd, 0) == 0:
    print("NESTED-LANDLOCK")
else:
    print("LANDLOCK-REFUSED", ctypes.get_errno())
"#;

#[test]
fn a_nested_sandbox_is_refused_with_a_record_that_says_how_to_run_both() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let before = s.denials().len();
        std::fs::write(s.root.join("landlock.py"), LANDLOCK).unwrap();
        let bwrap = if agent_guard_e2e::on_path("bwrap") {
            "bwrap --ro-bind / / true && echo NESTED-BWRAP; "
        } else {
            ""
        };
        let landlock = s.root.join("landlock.py").display().to_string();
        let out = agent_in(
            &s,
            mode,
            &format!(
                "unshare -U true && echo NESTED-USERNS; unshare -m true && echo NESTED-MOUNTNS; {bwrap}\
                 python3 {landlock}; \
                 (sleep 0; echo SUBSHELL) && python3 -c 'import threading; t=threading.Thread(target=print, args=(\"THREAD\",)); t.start(); t.join()'"
            ),
        );
        let all = text(&out);
        for nested in [
            "NESTED-USERNS",
            "NESTED-MOUNTNS",
            "NESTED-BWRAP",
            "NESTED-LANDLOCK",
        ] {
            assert!(!stdout(&out).contains(nested), "{mode:?}: {nested}: {all}");
        }
        assert!(
            stdout(&out).contains("SUBSHELL\nTHREAD\n"),
            "{mode:?}: {all}"
        );
        assert!(
            stdout(&out).contains("LANDLOCK-REFUSED 1\n"),
            "{mode:?}: {all}"
        );
        let new = new_denials(&s, before, 3);
        let records: Vec<_> = new
            .iter()
            .filter(|r| r["rule"] == "nested_sandbox" && r["decision"] == "deny")
            .collect();
        assert!(records.len() >= 2, "{mode:?}: {new:#?}");
        assert!(
            records.iter().any(|r| r["path"] == "namespace:user"),
            "{mode:?}: {records:#?}"
        );
        assert!(
            records.iter().any(|r| r["path"] == "namespace:landlock"),
            "{mode:?}: {records:#?}"
        );
        for r in &records {
            let reason = r["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("agent-guard run -- codex -s danger-full-access"),
                "{mode:?}: {reason}"
            );
        }
    }
}
