//! The requests spool is agent-writable (issue 16, item 10): a file in it is always an agent's
//! request, whatever it claims, and held to the rate limit whether or not it went through
//! `override request`; the text it carries reaches the human's terminal escaped.

use super::*;

/// A request as an agent could write it straight into the spool, bypassing `override request`.
fn drop_request(w: &World, id: &str, path: &Path, reason: &str, extra: Value) -> PathBuf {
    let dir = w.state.join("requests");
    std::fs::create_dir_all(&dir).unwrap();
    let mut request = serde_json::json!({
        "id": id,
        "path": path,
        "ops": ["unlink"],
        "reason": reason,
        "ttl_secs": 600,
        "created_at": 1,
        "time": "1970-01-01T00:00:01Z",
        "requester": {"pid": 1, "uid": 0},
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let file = dir.join(format!("{id}.json"));
    std::fs::write(&file, request.to_string()).unwrap();
    file
}

/// A file claiming to be recorded already and to come from no agent (uid 0, no agent name):
/// `list` records it in the trail all the same and shows it as an agent's; changed afterwards,
/// it can no longer be approved.
#[test]
fn a_spool_file_cannot_claim_to_be_recorded_or_a_humans() {
    let w = World::new();
    let target = w.project.join("docs/old.md");
    let file = drop_request(
        &w,
        "r-00c0ffee",
        &target,
        "tidy up",
        serde_json::json!({"recorded": true}),
    );
    let (code, out, err) = w.run(&["override", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("r-00c0ffee"), "{out}");
    assert!(out.contains("by an agent that gave no name"), "{out}");
    assert_eq!(
        w.event_kinds("r-00c0ffee"),
        ["request"],
        "the human's list records it, whatever the file says"
    );
    // The agent widens the request after the human saw it.
    let mut changed: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    changed["path"] = serde_json::json!(w.project.join("docs"));
    std::fs::write(&file, changed.to_string()).unwrap();
    let (code, _, err) = w.run(&["override", "approve", "r-00c0ffee"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("changed after it was recorded"), "{err}");
    assert!(GrantStore::new(w.locations())
        .load()
        .unwrap()
        .grants
        .is_empty());
}

/// Eight files dropped at once by one agent: five are shown (its pending limit), the others are
/// held back and cannot be approved; a file naming no agent is counted as an agent's as well,
/// and names do not buy more than the overall cap.
#[test]
fn files_dropped_past_the_rate_limit_are_held_back() {
    let w = World::new();
    for i in 0..8 {
        drop_request(
            &w,
            &format!("r-{i:08x}"),
            &w.project.join(format!("docs/f{i}")),
            "flood",
            serde_json::json!({"requester": {"pid": 1, "uid": 0, "agent": "claude:9"}}),
        );
    }
    let (code, out, err) = w.run(&["override", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listing: Value = serde_json::from_str(&out).unwrap();
    let shown = listing["requests"].as_array().unwrap();
    let held = listing["held"].as_array().unwrap();
    assert_eq!(
        (shown.len(), held.len()),
        (3, 5),
        "three per minute shown: {listing:#}"
    );
    assert!(held[0]["held_back"]
        .as_str()
        .unwrap()
        .contains("in the last minute"));
    let held_id = held[0]["id"].as_str().unwrap().to_string();
    let (code, _, err) = w.run(&["override", "approve", &held_id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("held back by the rate limit"), "{err}");
    // Deciding the shown ones lets the next ones through.
    for r in shown {
        let (code, _, err) = w.run(&["override", "deny", r["id"].as_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
    }
    let (_, out, _) = w.run(&["override", "list", "--json"]);
    let listing: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listing["requests"].as_array().unwrap().len(),
        3,
        "{listing:#}"
    );

    // Many names at once: at most 20 shown whatever each file claims.
    let w = World::new();
    for i in 0..30 {
        drop_request(
            &w,
            &format!("r-{i:08x}"),
            &w.project.join(format!("docs/g{i}")),
            "flood",
            serde_json::json!({"requester": {"pid": 1, "uid": 0, "agent": format!("bot{i}:1")}}),
        );
    }
    let (_, out, _) = w.run(&["override", "list", "--json"]);
    let listing: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listing["requests"].as_array().unwrap().len(), 20);
    assert_eq!(listing["held"].as_array().unwrap().len(), 10);
}

/// Bidi overrides and zero-width characters in a dropped file's path and reason are shown
/// escaped; `override request` refuses them in a reason.
#[test]
fn invisible_characters_reach_the_terminal_escaped() {
    let w = World::new();
    let sneaky = w.project.join("docs/\u{202e}dm.dlo");
    drop_request(
        &w,
        "r-0000beef",
        &sneaky,
        "harmless \u{2066}cleanup\u{2069}\u{200b}",
        serde_json::json!({}),
    );
    let (code, out, err) = w.run(&["override", "list"]);
    assert_eq!(code, 0, "{err}");
    for c in ['\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}'] {
        assert!(!out.contains(c), "U+{:04X} printed raw: {out}", c as u32);
    }
    assert!(out.contains("docs/\\u{202e}dm.dlo"), "{out}");
    assert!(
        out.contains("harmless \\u{2066}cleanup\\u{2069}\\u{200b}"),
        "{out}"
    );
    let (code, _, err) = w.run(&[
        "override",
        "request",
        "docs/old.md",
        "--op",
        "unlink",
        "--reason",
        "fine\u{202e}enif",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invisible"), "{err}");
}
