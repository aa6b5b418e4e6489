//! The record survives an attack on it (issue 16, item 9): an agent that floods the guard with
//! denials cannot push an earlier denial out of `denials.jsonl` or the audit trail, every
//! denied call is still accounted for (a summary record counts the repeats), and the trail's
//! hash chain holds.

use super::*;

/// The issue's numbers: 150 000 denied calls in a few seconds, spread over 200 directories,
/// after one marker denial (a read of the secret key).
#[test]
fn a_flood_of_denials_keeps_the_marker_and_counts_every_call() {
    let s = Sandbox::new();
    let script = r#"
import os, time
try:
    open(os.path.expanduser("~/.ssh/id_ed25519")).read()
except OSError:
    pass
start = time.time()
denied = 0
for i in range(150_000):
    try:
        os.unlink(f"proj/flood/d{i % 200}/f{i}")
    except PermissionError:
        denied += 1
print(denied, round(time.time() - start, 1))
"#;
    // The files are there (made by the human): a removal of what is not there is answered
    // ENOENT before it is judged, as the kernel would.
    let made = s.human(
        r#"python3 -c '
import os
for d in range(200):
    os.makedirs(f"proj/flood/d{d}", exist_ok=True)
for i in range(150_000):
    open(f"proj/flood/d{i % 200}/f{i}", "w").close()
'"#,
    );
    assert!(made.status.success(), "{}", text(&made));
    let out = s.agent(&format!("python3 -c '{script}'"));
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    eprintln!("denied, seconds: {printed}");
    assert!(printed.starts_with("150000 "), "{}", text(&out));

    // Every record, rotated files included.
    let mut records = s.denials();
    for n in 1..=5 {
        if let Ok(text) = std::fs::read_to_string(s.state.join(format!("denials.jsonl.{n}"))) {
            records.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
    let marker = s.path(".ssh/id_ed25519");
    assert!(
        records
            .iter()
            .any(|r| r["rule"] == "secret_zone" && r["path"] == marker.to_str().unwrap()),
        "the marker denial is gone: {} records",
        records.len()
    );
    assert!(
        records.len() < 2_000,
        "{} records for one session's flood",
        records.len()
    );
    let calls: u64 = records
        .iter()
        .filter(|r| r["rule"] == "protected_delete")
        // A summary stands for `count` denials, a full record for one.
        .map(|r| r["repeated"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(calls, 150_000, "every denied call is counted");

    // The audit trail has the marker at once (records are written when `run` returns), the
    // flood as summaries, and its chains hold.
    let out = s.guard(&[
        "audit",
        "query",
        "--verdict",
        "deny",
        "--limit",
        "100000",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().any(|r| r["path"] == marker.to_str().unwrap()));
    let counted: u64 = rows
        .iter()
        .filter(|r| r["rule"] == "protected_delete")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 150_000);
    let out = s.guard(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
}
