//! Item 11: a nested sandbox (bwrap, `unshare -U`, `codex sandbox`) inside `run` is refused, as
//! before, but no longer silently: the refusal is recorded, and the record says how to run both
//! (the agent's own sandbox off, agent-guard around it). Making nested namespaces work without
//! a hole is the open part (docs/linux.md).

use super::*;

#[test]
fn a_nested_sandbox_is_refused_with_a_record_that_says_how_to_run_both() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let before = s.denials().len();
        let bwrap = if agent_guard_e2e::on_path("bwrap") {
            "bwrap --ro-bind / / true && echo NESTED-BWRAP; "
        } else {
            ""
        };
        let out = agent_in(
            &s,
            mode,
            &format!(
                "unshare -U true && echo NESTED-USERNS; unshare -m true && echo NESTED-MOUNTNS; {bwrap}\
                 (sleep 0; echo SUBSHELL) && python3 -c 'import threading; t=threading.Thread(target=print, args=(\"THREAD\",)); t.start(); t.join()'"
            ),
        );
        let all = text(&out);
        for nested in ["NESTED-USERNS", "NESTED-MOUNTNS", "NESTED-BWRAP"] {
            assert!(!stdout(&out).contains(nested), "{mode:?}: {nested}: {all}");
        }
        assert!(
            stdout(&out).contains("SUBSHELL\nTHREAD\n"),
            "{mode:?}: {all}"
        );
        let new = new_denials(&s, before, 2);
        let records: Vec<_> = new
            .iter()
            .filter(|r| r["rule"] == "nested_sandbox" && r["decision"] == "deny")
            .collect();
        assert!(records.len() >= 2, "{mode:?}: {new:#?}");
        assert!(
            records.iter().any(|r| r["path"] == "namespace:user"),
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
