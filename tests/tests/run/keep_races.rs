//! Races against keeping: a second thread of the agent changes a name between the moment the
//! supervisor looks at it (and keeps what is there) and the moment it acts on it. Whatever file
//! the act destroys must have been kept: every file's bytes are afterwards in the zone or in the
//! store. Races, so each is tried a thousand times. On the supervisor before the name lock and
//! RENAME_NOREPLACE (see `supervisor/handler.rs`) both failed in each of 3 runs, losing 5 to 12
//! victims each.

use std::collections::HashSet;
use std::path::Path;

use super::keep::keep_sandbox;
use super::*;

/// The contents of every regular file under `dir`.
fn contents_under(dir: &Path, out: &mut HashSet<Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.path().symlink_metadata().unwrap();
        if meta.is_dir() {
            contents_under(&e.path(), out);
        } else if meta.is_file() {
            out.insert(std::fs::read(e.path()).unwrap());
        }
    }
}

/// Runs `script` (python, in `proj/race`, which holds `victim-N` files) as the agent; then
/// every victim's bytes must be in the zone or in the store.
fn no_victim_is_lost(script: &str, victims: usize) {
    let s = keep_sandbox();
    let race = s.path("proj/race");
    std::fs::create_dir(&race).unwrap();
    for i in 0..victims {
        std::fs::write(race.join(format!("victim-{i}")), format!("victim {i}\n")).unwrap();
    }
    std::fs::write(race.join("T"), "the first T\n").unwrap();
    let out = s.agent(&format!("cd proj/race && python3 - <<'PY'\n{script}\nPY"));
    assert!(text(&out).contains("raced"), "{}", text(&out));
    let mut seen = HashSet::new();
    contents_under(&s.path("proj"), &mut seen);
    contents_under(&s.state, &mut seen);
    let lost: Vec<usize> = (0..victims)
        .filter(|i| !seen.contains(format!("victim {i}\n").as_bytes()))
        .collect();
    assert!(lost.is_empty(), "destroyed unkept: victims {lost:?}");
    assert!(seen.contains(b"the first T\n".as_slice()));
}

/// One thread saves over `T` (kept: the supervisor links what is at `T` into the store, then
/// renames); the other moves `T` away and a victim in its place, in that gap.
#[test]
fn a_file_swapped_in_while_a_save_over_is_kept_is_kept() {
    no_victim_is_lost(
        r#"
import os, threading
N = 1000
def saver():
    for i in range(N):
        with open(f"new-{i}", "w") as f: f.write(f"saved {i}\n")
        os.rename(f"new-{i}", "T")
def swapper():
    for i in range(N):
        try: os.rename("T", f"away-{i}")
        except FileNotFoundError: pass
        try: os.rename(f"victim-{i}", "T")
        except FileNotFoundError: pass
threads = [threading.Thread(target=saver), threading.Thread(target=swapper)]
for t in threads: t.start()
for t in threads: t.join()
print("raced")
"#,
        1000,
    );
}

/// Two threads rename files onto a name that is not there: each rename was judged a move onto
/// nothing (nothing to keep), so the later one must not replace what the earlier one put there.
#[test]
fn two_renames_onto_a_free_name_do_not_destroy_each_other() {
    no_victim_is_lost(
        r#"
import os, threading
os.rename("T", "first-T")
N = 1000
def mover(lo, hi, tag):
    for i in range(lo, hi):
        try: os.rename(f"victim-{i}", "T")
        except FileNotFoundError: pass
        try: os.rename("T", f"out-{tag}-{i}")
        except FileNotFoundError: pass
threads = [threading.Thread(target=mover, args=(0, N // 2, "a")),
           threading.Thread(target=mover, args=(N // 2, N, "b"))]
for t in threads: t.start()
for t in threads: t.join()
print("raced")
"#,
        1000,
    );
}
