//! Zones that keep (issue 14): what an agent destroys in `proj/` is carried out and kept first,
//! and `agent-guard undo restore` gives back the bytes exactly (hashes compared). Removals of
//! what is not there get the kernel's own answer. The store is out of the agent's reach by
//! every path, and a human's operations keep nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use agent_guard_e2e::KEEP_POLICY;
use sha2::{Digest, Sha256};

use super::*;

pub(crate) fn keep_sandbox() -> Sandbox {
    let s = Sandbox::with_policy(KEEP_POLICY);
    // An executable and a symlink, whose mode and target must come back too.
    std::fs::write(s.path("proj/src/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        s.path("proj/src/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("main.rs", s.path("proj/src/link.rs")).unwrap();
    s
}

/// Every entry under `dir`: a file's SHA-256 and permission bits, a symlink's target, a
/// directory's mode.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = path.symlink_metadata().unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let value = if meta.is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let digest = Sha256::digest(std::fs::read(&path).unwrap());
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("{hex} {mode:o}")
            };
            out.insert(rel, value);
        }
    }
    out
}

fn undo_list(s: &Sandbox) -> Value {
    let out = s.guard(&["undo", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// The kept entries of every session, oldest first.
pub(crate) fn kept_entries(s: &Sandbox) -> Vec<Value> {
    undo_list(s)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|session| session["entries"].as_array().unwrap().clone())
        .collect()
}

pub(crate) fn restore_all(s: &Sandbox) -> String {
    let out = s.guard(&["undo", "restore", "--since", "1h"]);
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

#[test]
fn rm_rf_of_a_tree_succeeds_and_is_restored_byte_for_byte() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    let out = s.agent("rm -rf proj/src && echo removed");
    assert!(
        out.status.success() && text(&out).contains("removed"),
        "{}",
        text(&out)
    );
    assert!(!s.path("proj/src").exists());
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
    let kept = kept_entries(&s);
    let how = |path: &str| {
        kept.iter()
            .find(|e| e["path"] == s.path(path).display().to_string())
            .map(|e| e["how"].as_str().unwrap().to_string())
    };
    assert_eq!(
        how("proj/src/main.rs").as_deref(),
        Some("moved"),
        "{kept:#?}"
    );
    assert_eq!(
        how("proj/src/sub").as_deref(),
        Some("recorded"),
        "{kept:#?}"
    );
    // Hashes are computed off the decision path, and are in before the session's end.
    assert!(
        kept.iter()
            .filter(|e| e["kind"] == "file")
            .all(|e| e["sha256"].is_string() && e["end_state"] == "absent"),
        "{kept:#?}"
    );
    let said = restore_all(&s);
    assert_eq!(tree(&s.path("proj")), before, "{said}");
}

#[test]
fn truncation_rewrite_in_place_and_save_over_are_restored() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    let out = s.agent(
        r#": > proj/README.md
           printf 'fn main() { evil() }' > proj/src/main.rs
           python3 -c 'f = open("proj/src/sub/lib.rs", "r+"); f.write("XX"); f.close()'
           printf again > proj/src/main.rs
           echo gen > "$OUTSIDE/gen.json" && mv "$OUTSIDE/gen.json" proj/src/run.sh
           truncate -s 1 proj/src/link.rs"#,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        ""
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/src/sub/lib.rs")).unwrap(),
        "XX lib\n"
    );
    // Truncated to one byte through the symlink link.rs.
    assert_eq!(
        std::fs::read_to_string(s.path("proj/src/main.rs")).unwrap(),
        "a"
    );
    let kept = kept_entries(&s);
    // main.rs: kept once, by the first truncation (its first state in the session).
    let main_rs = s.path("proj/src/main.rs").display().to_string();
    assert_eq!(
        kept.iter().filter(|e| e["path"] == main_rs).count(),
        1,
        "{kept:#?}"
    );
    let said = restore_all(&s);
    assert_eq!(tree(&s.path("proj")), before, "{said}");
}

#[test]
fn a_file_the_human_changed_afterwards_is_restored_beside_it() {
    let s = keep_sandbox();
    let out = s.agent(": > proj/README.md");
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(s.path("proj/README.md"), "the human's edit\n").unwrap();
    let said = restore_all(&s);
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "the human's edit\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md.agent-guard-restored")).unwrap(),
        "readme\n",
        "{said}"
    );
    assert!(said.contains("beside it"), "{said}");
}

#[test]
fn the_issues_false_positives_succeed_and_are_undoable() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    let script = r#"set -e
        cd proj
        echo tmp > scratch.txt && rm scratch.txt
        sed -i.bak s/readme/README/ README.md && rm *.bak
        mkdir -p dist build && touch dist/app.js build/x.o && rm -rf dist build
        printf 'clean:\n\trm -f src/*.o\n' > Makefile && touch src/a.o && make -s clean && rm Makefile
        python3 -c 'import shutil, os; os.makedirs("tests/_tmp/a"); open("tests/_tmp/a/f", "w").close(); shutil.rmtree("tests/_tmp")'
        tar cf "$OUTSIDE/src.tar" src && tar xf "$OUTSIDE/src.tar"
        echo new > "$OUTSIDE/tool" && install -m 755 "$OUTSIDE/tool" src/run.sh
        echo '{}' > "$OUTSIDE/gen.json" && mv "$OUTSIDE/gen.json" src/config.json && mv "$OUTSIDE/tool" src/config.json
        rm -f missing.o
        echo all-done"#;
    let out = s.agent(script);
    assert!(
        out.status.success() && text(&out).contains("all-done"),
        "{}",
        text(&out)
    );
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "README\n"
    );
    let said = restore_all(&s);
    // Everything there before the session is back, byte for byte (README.md too: `sed -i.bak`
    // renamed it to README.md.bak, which kept it at its old name). What the session made and
    // deleted itself is left out, README.md.bak among it.
    let after = tree(&s.path("proj"));
    for (path, value) in &before {
        assert_eq!(Some(value), after.get(path), "{path}: {said}");
    }
    assert!(!after.contains_key("README.md.bak"), "{said}");
    for made in [
        "scratch.txt",
        "dist/app.js",
        "build/x.o",
        "src/a.o",
        "Makefile",
        "tests/_tmp/a/f",
    ] {
        assert!(!after.contains_key(made), "{made}: {said}");
    }
    assert!(said.contains("--include-new"), "{said}");
}

/// An agent session that makes files, a directory tree, a symlink and a hard link, brings a
/// file in from outside the zone, renames what it made and removes all of it; it also removes
/// two files that were there before.
fn make_and_remove(s: &Sandbox) {
    let out = s.agent(
        r#"set -e
        cd proj
        mkdir -p dist/js && echo app > dist/js/app.js && echo map > dist/app.map
        ln -s js/app.js dist/latest
        echo obj > tmp.o && rm tmp.o
        echo draft > notes.txt && mv notes.txt src/notes.md && rm src/notes.md
        echo gen > "$OUTSIDE/g.json" && mv "$OUTSIDE/g.json" gen.json && rm gen.json
        ln src/main.rs alias.rs && rm alias.rs
        rm -rf dist
        rm src/sub/lib.rs README.md
        echo all-done"#,
    );
    assert!(
        out.status.success() && text(&out).contains("all-done"),
        "{}",
        text(&out)
    );
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
}

/// What was kept at the paths the session made itself: relative path → whether `undo list`
/// marks it made during the session.
fn made_marks(s: &Sandbox) -> BTreeMap<String, bool> {
    let proj = s.path("proj").display().to_string();
    kept_entries(s)
        .iter()
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            let rel = path.strip_prefix(&proj).unwrap().trim_start_matches('/');
            (rel.to_string(), e["new_in_session"].as_bool().unwrap())
        })
        .collect()
}

#[test]
fn a_bulk_restore_leaves_out_what_the_session_made_and_removed_itself() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    make_and_remove(&s);
    let made = made_marks(&s);
    let want: BTreeMap<String, bool> = [
        ("dist", true),
        ("dist/js", true),
        ("dist/js/app.js", true),
        ("dist/app.map", true),
        ("dist/latest", true),
        ("tmp.o", true),
        ("src/notes.md", true),
        ("gen.json", true),
        ("alias.rs", true),
        ("src/sub/lib.rs", false),
        ("README.md", false),
    ]
    .into_iter()
    .map(|(p, new)| (p.to_string(), new))
    .collect();
    assert_eq!(made, want);
    let listed = s.guard(&["undo", "list"]);
    let listed = text(&listed);
    assert_eq!(
        listed.matches("(made during the session)").count(),
        9,
        "{listed}"
    );
    // A dry run says the same as the restore.
    let dry = s.guard(&["undo", "restore", "--since", "1h", "--dry-run"]);
    assert!(text(&dry).contains("left out 9 entries"), "{}", text(&dry));
    let said = restore_all(&s);
    assert!(
        said.contains("left out 9 entries") && said.contains("--include-new"),
        "{said}"
    );
    // Exactly what was there before: the two files back, nothing the session made.
    assert_eq!(tree(&s.path("proj")), before, "{said}");
}

#[test]
fn a_bulk_restore_with_include_new_and_a_restore_by_id_bring_back_what_the_session_made() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    make_and_remove(&s);
    let out = s.guard(&["undo", "restore", "--since", "1h", "--include-new"]);
    let said = text(&out);
    assert!(out.status.success() && !said.contains("left out"), "{said}");
    let after = tree(&s.path("proj"));
    for (path, value) in &before {
        assert_eq!(Some(value), after.get(path), "{path}: {said}");
    }
    let hash = |text: &str| {
        let digest = Sha256::digest(text.as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(after["dist/js/app.js"], format!("{} 644", hash("app\n")));
    assert_eq!(after["dist/latest"], "-> js/app.js");
    for made in [
        "dist/app.map",
        "tmp.o",
        "src/notes.md",
        "gen.json",
        "alias.rs",
    ] {
        assert!(after.contains_key(made), "{made}: {said}");
    }

    // Named by id, an entry the session made is restored without the flag.
    let s = keep_sandbox();
    make_and_remove(&s);
    let id = kept_entries(&s)
        .iter()
        .find(|e| e["path"] == s.path("proj/tmp.o").display().to_string())
        .map(|e| e["id"].to_string())
        .unwrap();
    let out = s.guard(&["undo", "restore", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(s.path("proj/tmp.o")).unwrap(),
        "obj\n"
    );
}

/// GNU `sed -i.bak f; rm f.bak` renames `f` to `f.bak` and its temporary file to `f`: the
/// rename keeps `f` at its name, so a bulk restore undoes the edit at `f`, and leaves out
/// `f.bak` (a name the session made). An editor's atomic save (a temporary file renamed over
/// the file) keeps the file it replaces and nothing of the temporary file; a plain `mv` within
/// the zone is undone at the old name.
#[test]
fn sed_in_place_is_undone_at_the_file_and_an_atomic_save_keeps_no_temporary() {
    let s = keep_sandbox();
    let before = tree(&s.path("proj"));
    let out = s.agent(
        r#"set -e
        cd proj
        sed --version | head -1
        sed -i.bak s/readme/README/ README.md && rm README.md.bak
        python3 -c '
import os
with open("src/.main.rs.swp", "w") as f:
    f.write("saved\n")
os.replace("src/.main.rs.swp", "src/main.rs")'
        mv src/sub/lib.rs src/sub/lib2.rs
        echo all-done"#,
    );
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("all-done") && t.contains("GNU sed"),
        "{t}"
    );
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "README\n"
    );
    let kept = kept_entries(&s);
    let entry = |rel: &str| {
        let path = s.path(rel).display().to_string();
        let found: Vec<&Value> = kept.iter().filter(|e| e["path"] == path).collect();
        assert_eq!(found.len(), 1, "{rel}: {kept:#?}");
        let e = found[0];
        (
            e["rule"].as_str().unwrap().to_string(),
            e["how"].as_str().unwrap().to_string(),
            e["new_in_session"].as_bool().unwrap(),
        )
    };
    let rule = |r: &str, how: &str, new: bool| (r.to_string(), how.to_string(), new);
    assert_eq!(
        entry("proj/README.md"),
        rule("protected_rename", "linked", false)
    );
    assert_eq!(
        entry("proj/README.md.bak"),
        rule("protected_delete", "moved", true)
    );
    assert_eq!(
        entry("proj/src/main.rs"),
        rule("protected_replace", "linked", false)
    );
    assert_eq!(
        entry("proj/src/sub/lib.rs"),
        rule("protected_rename", "linked", false)
    );
    assert!(
        kept.iter().all(|e| {
            let path = e["path"].as_str().unwrap();
            !path.contains(".main.rs.swp") && !path.contains("/sed")
        }),
        "no temporary file is kept: {kept:#?}"
    );
    let said = restore_all(&s);
    assert!(said.contains("left out 1 entry"), "{said}");
    let after = tree(&s.path("proj"));
    for (path, value) in &before {
        assert_eq!(Some(value), after.get(path), "{path}: {said}");
    }
    // The file's new name stays (a restore never removes anything); the backup does not come
    // back.
    let extra: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(extra, vec!["src/sub/lib2.rs"], "{said}");
}

#[test]
fn a_removal_of_what_is_not_there_gets_the_kernels_answer() {
    let s = keep_sandbox();
    let out = s.agent(
        r#"rm -f proj/missing.o; echo "rm-f=$?"
           rm proj/missing 2>&1; echo "rm=$?"
           rmdir proj/src 2>&1; echo "rmdir=$?"
           rmdir proj/nothing 2>&1
           python3 -c 'import os; os.unlink("proj/nope")' 2>&1 | tail -1
           mv proj/absent proj/other 2>&1"#,
    );
    let t = text(&out);
    assert!(t.contains("rm-f=0"), "{t}");
    assert!(t.contains("rm=1"), "{t}");
    assert!(
        t.contains("Directory not empty") && t.contains("rmdir=1"),
        "{t}"
    );
    assert_eq!(t.matches("No such file or directory").count(), 4, "{t}");
    assert!(t.contains("FileNotFoundError"), "{t}");
    assert!(!t.contains(EPERM), "{t}");
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
    assert!(kept_entries(&s).is_empty());
}

#[test]
fn still_denied_cases_deny_with_their_reason() {
    let s = Sandbox::with_policy(&KEEP_POLICY.replace(
        r#""temporary_overrides": []"#,
        r#""temporary_overrides": [], "snapshots": {"max_copy_mb": 1, "max_tree_copy_mb": 1}"#,
    ));
    // Over the copy limit, on a file system without reflink (ext4 here): an O_TRUNC open must
    // copy. (A write-open over the limit is allowed and recorded as not kept: an edit; so
    // `truncate -s 0`, which opens and then calls ftruncate, gets through. See the README.)
    let big = s.path("proj/big.bin");
    std::fs::write(&big, vec![7u8; 2 << 20]).unwrap();
    std::fs::create_dir_all(s.path("proj/bigdir")).unwrap();
    std::fs::write(s.path("proj/bigdir/blob"), vec![1u8; 2 << 20]).unwrap();
    let out = s.agent(
        r#": > proj/big.bin 2>&1; echo "t=$?"
           mv proj/bigdir "$OUTSIDE/" 2>&1; echo "m=$?"
           rm ro/config 2>&1; echo "r=$?"
           cat .ssh/id_ed25519 2>&1; echo "c=$?""#,
    );
    let t = text(&out);
    for rc in ["t=1", "m=1", "r=1", "c=1"] {
        assert!(t.contains(rc), "{rc}: {t}");
    }
    assert_eq!(std::fs::metadata(&big).unwrap().len(), 2 << 20);
    assert!(s.path("proj/bigdir/blob").exists());
    let denials = s.wait_denials(4);
    let rules: Vec<&str> = denials
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    for rule in ["keep_failed", "readonly_zone", "secret_zone"] {
        assert!(rules.contains(&rule), "{rule}: {denials:#?}");
    }
    let refused = |path: &str| {
        denials
            .iter()
            .find(|d| d["rule"] == "keep_failed" && d["path"] == s.path(path).display().to_string())
            .unwrap_or_else(|| panic!("{path}: {denials:#?}"))
    };
    let truncate = refused("proj/big.bin");
    let reason = truncate["reason"].as_str().unwrap();
    assert!(reason.contains("max_copy_mb"), "{reason}");
    let moved = refused("proj/bigdir");
    assert!(
        moved["reason"]
            .as_str()
            .unwrap()
            .contains("max_tree_copy_mb"),
        "{moved:#?}"
    );
}

#[test]
fn the_human_keeps_nothing_and_the_agent_may_list_but_not_restore() {
    let s = keep_sandbox();
    let out = s.human("rm -rf proj/src && : > proj/README.md");
    assert!(out.status.success(), "{}", text(&out));
    assert!(kept_entries(&s).is_empty());
    assert!(!s.state.join("store").exists() || tree(&s.state.join("store")).is_empty());

    let out = s.agent(
        r#"rm proj/README.md
           "$AG" undo list; echo "list=$?"
           "$AG" undo restore --since 1h 2>&1; echo "restore=$?""#
            .replace("$AG", &bin().display().to_string())
            .as_str(),
    );
    let t = text(&out);
    assert!(t.contains("list=0"), "{t}");
    assert!(
        t.contains("restore=1") && t.contains("must be run by a human"),
        "{t}"
    );
    assert!(!s.path("proj/README.md").exists());
}

/// Every way into the store: listing it, reading a kept file by its path, through a symlink,
/// a hard link, `/proc/self/fd` of a directory fd, `openat` on a directory fd; writing,
/// deleting, linking and renaming into it.
#[test]
fn the_agent_cannot_reach_the_store_by_any_path() {
    let s = keep_sandbox();
    let out = s.agent("rm proj/src/main.rs");
    assert!(out.status.success(), "{}", text(&out));
    let kept = kept_entries(&s);
    let name = kept[0]["store_name"].as_str().unwrap();
    let store = s.state.join("store");
    let entry = store.join(name);
    let hash_before = tree(&store);
    assert!(entry.exists());

    let script = format!(
        r#"E='{entry}'; S='{store}'; D='{session}'
        ls "$S" 2>/dev/null | grep -q . && echo LISTED-STORE
        ls "$D" 2>/dev/null | grep -q . && echo LISTED-SESSION
        cat "$E" 2>/dev/null | grep -q main && echo READ
        ln -s "$E" proj/alias 2>/dev/null; cat proj/alias 2>/dev/null | grep -q main && echo READ-SYMLINK
        ln "$E" proj/hard 2>/dev/null && echo HARD-LINKED
        python3 -c '
import os, sys
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
print("DIRFD-OPENED")
try:
    print(open(f"/proc/self/fd/{{d}}/" + os.path.basename(sys.argv[2])).read()[:4], "READ-PROCFD")
except OSError:
    pass
try:
    print(os.read(os.open(os.path.basename(sys.argv[2]), os.O_RDONLY, dir_fd=d), 4), "READ-DIRFD")
except OSError:
    pass
' "$D" "$E" 2>/dev/null
        echo x > "$E" 2>/dev/null && echo WROTE
        rm -f "$E" 2>/dev/null; rm -rf "$S" 2>/dev/null
        echo new > proj/new && ln proj/new "$D/planted" 2>/dev/null && echo LINKED-IN
        mv proj/new "$D/planted2" 2>/dev/null && echo RENAMED-IN
        mv "$E" proj/stolen 2>/dev/null && echo RENAMED-OUT
        echo probe-done"#,
        entry = entry.display(),
        store = store.display(),
        session = entry.parent().unwrap().display(),
    );
    let out = s.agent(&script);
    let t = text(&out);
    assert!(t.contains("probe-done"), "{t}");
    for leak in [
        "LISTED-STORE",
        "LISTED-SESSION",
        "READ",
        "HARD-LINKED",
        "WROTE",
        "LINKED-IN",
        "RENAMED-IN",
        "RENAMED-OUT",
    ] {
        assert!(!t.contains(leak), "{leak}: {t}");
    }
    assert_eq!(tree(&store), hash_before, "{t}");
    assert_eq!(
        std::fs::read_to_string(&entry).unwrap(),
        "fn main() {}\n",
        "{t}"
    );
}

/// Two threads of one session open the same file for writing at once: the second open must not
/// go ahead (and the first thread's writes must not land) while the session's first state of
/// the file is still being copied, or the store would hold a mix of old and new bytes.
#[test]
fn two_threads_rewriting_one_file_keep_its_first_state() {
    let s = keep_sandbox();
    // Large enough that copying it takes a while, under the 64 MiB copy limit.
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(s.path("proj/big.bin"), &big).unwrap();
    let before = tree(&s.path("proj"));
    let out = s.agent(
        r#"python3 - <<'PY'
import os, threading, time
p = "proj/big.bin"
size = os.path.getsize(p)
def writer(tag, delay):
    time.sleep(delay)
    with open(p, "r+b") as f:
        f.seek(size - 4096)
        f.write(tag * 4096)
threads = [threading.Thread(target=writer, args=(t, d)) for t, d in ((b"A", 0), (b"B", 0.002), (b"C", 0.004))]
for t in threads: t.start()
for t in threads: t.join()
print("written")
PY"#,
    );
    assert!(text(&out).contains("written"), "{}", text(&out));
    let kept = kept_entries(&s);
    let big_path = s.path("proj/big.bin").display().to_string();
    let entries: Vec<_> = kept.iter().filter(|e| e["path"] == big_path).collect();
    assert_eq!(entries.len(), 1, "kept once per session: {entries:#?}");
    let said = restore_all(&s);
    assert_eq!(tree(&s.path("proj")), before, "{said}");
}

/// A truncation as the agent's very last act: the task runs on, exits, and so ends the session
/// at once; the session's end must still find the record of that keep (the process's exe in it)
/// and record the state it left. A race, so tried a number of times.
#[test]
fn the_last_act_of_a_session_is_recorded_before_it_ends() {
    let s = keep_sandbox();
    for round in 0..20 {
        let out = s.agent(&format!("echo round{round} > proj/README.md"));
        assert!(out.status.success(), "{}", text(&out));
    }
    let kept = kept_entries(&s);
    let readme = s.path("proj/README.md").display().to_string();
    let entries: Vec<_> = kept.iter().filter(|e| e["path"] == readme).collect();
    assert_eq!(entries.len(), 20, "one per session: {kept:#?}");
    for e in entries {
        assert!(
            e["end_state"].is_string() && e["exe"].as_str().is_some_and(|x| !x.is_empty()),
            "{e:#}"
        );
    }
}
