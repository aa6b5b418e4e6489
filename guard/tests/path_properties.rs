//! Property tests: no sequence of path normalizations lets a path inside a zone be judged
//! outside it, and the policy parser never panics on arbitrary input.

use std::path::{Path, PathBuf};

use agent_guard::engine::path::clean;
use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, Verdict};
use agent_guard::policy::{self, LoadContext, Platform, ZoneKind};
use proptest::prelude::*;

fn policy() -> &'static policy::Policy {
    static POLICY: std::sync::LazyLock<policy::Policy> = std::sync::LazyLock::new(build_policy);
    &POLICY
}

fn build_policy() -> policy::Policy {
    let ctx = LoadContext {
        platform: Platform::Linux,
        homes: vec!["/home/u".into()],
        guard_paths: vec![],
        agent_writable: vec![],
        unreadable: vec![],
        resolve_symlinks: false,
    };
    policy::from_json(
        r#"{"protected_zones": ["/z/proj"], "secret_zones": ["/z/keys"]}"#,
        Path::new("p"),
        &ctx,
    )
    .unwrap()
}

/// Components that a sensor might see in a raw path: names, `.`, `..`, empty (doubled slash).
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,3}".prop_map(String::from),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        Just("proj".to_string()),
        Just("project2".to_string()),
        Just("keys".to_string()),
    ]
}

/// The lexical meaning of a raw path, computed independently of `clean`: a stack of names.
fn reference_resolve(raw: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            name => stack.push(name.to_string()),
        }
    }
    stack
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn clean_matches_reference_and_is_idempotent(parts in prop::collection::vec(component(), 0..12)) {
        let raw = format!("/{}", parts.join("/"));
        let cleaned = clean(Path::new(&raw));
        let expected: PathBuf = std::iter::once("/".to_string()).chain(reference_resolve(&raw)).collect();
        prop_assert_eq!(&cleaned, &expected);
        prop_assert_eq!(clean(&cleaned), cleaned);
    }

    #[test]
    fn a_path_inside_a_zone_is_always_judged_inside(parts in prop::collection::vec(component(), 0..12)) {
        let p = policy();
        let raw = format!("/{}", parts.join("/"));
        let stack = reference_resolve(&raw);
        let cleaned = clean(Path::new(&raw));
        let inside_proj = stack.len() >= 2 && stack[0] == "z" && stack[1] == "proj";
        let inside_keys = stack.len() >= 2 && stack[0] == "z" && stack[1] == "keys";
        prop_assert_eq!(p.zones.containing(&cleaned, ZoneKind::Protected).is_some(), inside_proj);
        prop_assert_eq!(p.zones.containing(&cleaned, ZoneKind::Secret).is_some(), inside_keys);
        // And the engine stops an agent's unlink exactly there: denied in the secret zone, kept
        // first (or denied, for the zone root) in the protected zone that keeps.
        let event = Event { actor: Actor::default(), action: Action::Unlink { path: cleaned.clone() } };
        let verdict = decide(&event, &Attribution::agent("claude", 1), p, &Grants::default(), 0);
        prop_assert_eq!(matches!(verdict, Verdict::Deny(_) | Verdict::Keep(_)), inside_proj || inside_keys);
        if inside_keys {
            prop_assert!(matches!(verdict, Verdict::Deny(_)), "{:?}", verdict);
        }
    }

    #[test]
    fn policy_parser_never_panics(text in ".{0,200}") {
        let ctx = LoadContext { platform: Platform::Linux, homes: vec!["/h".into()], guard_paths: vec![], agent_writable: vec![], unreadable: vec![],
        resolve_symlinks: false };
        let _ = policy::from_json(&text, Path::new("fuzz.json"), &ctx);
    }

    #[test]
    fn policy_parser_never_panics_on_policy_shaped_json(
        zones in prop::collection::vec("[~/$a-z.*{}\\[\\]]{0,12}", 0..4),
        ops in prop::collection::vec("[a-z]{0,8}", 0..3),
        expiry in "[0-9a-zT:-]{0,25}",
    ) {
        let ctx = LoadContext { platform: Platform::MacOs, homes: vec!["/h".into()], guard_paths: vec![], agent_writable: vec![], unreadable: vec![],
        resolve_symlinks: false };
        let json = serde_json::json!({
            "protected_zones": [{"path": zones.first().cloned().unwrap_or_default(), "except": zones}],
            "temporary_overrides": [{"path": "/h/x/y", "ops": ops, "expires_at": expiry}],
            "trusted_tools": [{"name": "t", "paths": ["**/x/**"]}],
        });
        let _ = policy::from_json(&json.to_string(), Path::new("fuzz.json"), &ctx);
    }
}
