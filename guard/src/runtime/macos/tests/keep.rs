//! Keeping, as on a Mac but with real files: the daemon core behind the real glue, a recording
//! ES client, and a [`FakeCloner`] (a real copy standing in for `clonefile(2)`) that looks at the
//! client just before each clone. What an agent destroys in a zone that keeps is in the store
//! before the allow goes out, recorded so that `undo restore` (the same code as on Linux) puts it
//! back; what cannot be kept in time, or at all, is refused; a session is one agent root process.

use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::audit::{AuditReader, KeptQuery, StoredKept};
use crate::platform::macos::api::{EsEventKind, KernelAnswer};
use crate::platform::macos::fake::{Call, FakeClient, FakeCloner};
use crate::platform::macos::glue::{Body, ClientGlue, Incoming};
use crate::platform::macos::mapping::{fflag, EsDestination, EsRequest};
use crate::platform::macos::DeadlinePlan;
use crate::vocab::{KeptHow, RuleId};

struct Keeps {
    f: Fixture,
    zone: PathBuf,
    /// Holds the zone.
    _zone_dir: tempfile::TempDir,
    fake: FakeClient,
    glue: ClientGlue<FakeClient>,
    cloner: Arc<FakeCloner>,
    /// How many answers had gone out when each clone started.
    answered_at_clone: Arc<Mutex<Vec<usize>>>,
    next_id: std::sync::atomic::AtomicU64,
}

const LONG: DeadlinePlan = DeadlinePlan::Decide {
    budget: Duration::from_secs(30),
};

/// Where the zones live: not under `/tmp`, `/var` or `/etc`, which the daemon's policy spells
/// `/private/...` as macOS resolves them, a spelling Linux has no files under. The repository's
/// own target directory, unless the clone itself is under one of those (a clone in `/tmp`);
/// then `/dev/shm`, which every Linux has and anyone may write.
fn scratch() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/macos-keep-tests");
    std::fs::create_dir_all(&target).unwrap();
    let target = target.canonicalize().unwrap();
    let respelled = ["/tmp", "/var", "/etc"]
        .iter()
        .any(|top| target.starts_with(top));
    if respelled {
        PathBuf::from("/dev/shm")
    } else {
        target
    }
}

/// A core keeping in a real zone with `cloner` (its `before` is the rig's), under `extra`
/// policy keys.
fn keeps(mut cloner: FakeCloner, extra: &str) -> Keeps {
    let zone_dir = tempfile::tempdir_in(scratch()).unwrap();
    let zone = zone_dir.path().join("src");
    std::fs::create_dir(&zone).unwrap();
    let fake = FakeClient::new();
    let answered_at_clone = Arc::new(Mutex::new(Vec::new()));
    {
        let (fake, seen) = (fake.clone(), answered_at_clone.clone());
        cloner.before = Some(Box::new(move |_| {
            let answers = fake
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::Respond { .. }))
                .count();
            seen.lock().unwrap().push(answers);
        }));
    }
    let cloner = Arc::new(cloner);
    let policy = format!(
        r#"{{"ai_agent_patterns": ["claude"], "protected_zones": [{:?}]{extra}}}"#,
        zone.to_str().unwrap()
    );
    let f = fixture_with(&policy, cloner.clone());
    let sensor = f.sensor();
    let glue = ClientGlue::new(Arc::new(fake.clone()), sensor);
    Keeps {
        f,
        zone,
        _zone_dir: zone_dir,
        fake,
        glue,
        cloner,
        answered_at_clone,
        next_id: std::sync::atomic::AtomicU64::new(1),
    }
}

impl Keeps {
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.zone.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Deliver `request` from `process` on the file client and wait for its answer.
    fn ask(&self, process: &ActorFacts, plan: DeadlinePlan, request: EsRequest) -> KernelAnswer {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.glue.on_message(Incoming {
            kind: EsEventKind::AuthUnlink,
            seq_num: None,
            global_seq_num: None,
            at_ns: self.f.tick(),
            process: process.clone(),
            body: Body::Auth {
                message: self.fake.message(id),
                plan,
                instigator: None,
                request: Ok(request),
                files: Vec::new(),
            },
        });
        assert!(
            self.fake.wait_released(id, Duration::from_secs(10)),
            "message {id} never answered"
        );
        self.fake.answer_of(id)
    }

    fn unlink(&self, process: &ActorFacts, path: &Path) -> KernelAnswer {
        let request = EsRequest::Unlink {
            target: path.to_path_buf(),
            target_mode: 0o100644,
        };
        self.ask(process, LONG, request)
    }

    fn write_open(&self, process: &ActorFacts, path: &Path) -> KernelAnswer {
        let request = EsRequest::Open {
            path: path.to_path_buf(),
            fflag: fflag::FREAD | fflag::FWRITE,
        };
        self.ask(process, LONG, request)
    }

    /// The kept rows the audit store holds, as `undo list` reads them, once there are `n`: a
    /// keep is recorded by the worker just after its answer.
    fn rows(&self, n: usize) -> Vec<StoredKept> {
        let waited = std::time::Instant::now();
        loop {
            self.f.core.runtime().flush();
            let db = &self.f.core.runtime().config.locations.audit_db;
            let rows = AuditReader::open(db)
                .unwrap()
                .kept(&KeptQuery::default())
                .unwrap();
            if rows.len() >= n || waited.elapsed() > Duration::from_secs(10) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The `n` kept rows once their session has ended and recorded the state it left each path
    /// in (what lets a restore overwrite the agent's own later changes), in the order kept.
    fn ended(&self, n: usize) -> Vec<StoredKept> {
        let waited = std::time::Instant::now();
        loop {
            let mut rows = self.rows(n);
            if rows.len() >= n && rows.iter().all(|r| r.record.end_state.is_some()) {
                rows.sort_by_key(|r| r.record.seq);
                return rows;
            }
            assert!(waited.elapsed() < Duration::from_secs(10), "{rows:#?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn store(&self) -> PathBuf {
        self.f.core.runtime().config.locations.store.clone()
    }

    /// The files in the store.
    fn stored(&self) -> usize {
        crate::snapshots::layout::store_files(&self.store())
            .unwrap()
            .len()
    }
}

const ALLOW: KernelAnswer = KernelAnswer::Auth { allow: true };
const DENY: KernelAnswer = KernelAnswer::Auth { allow: false };

#[test]
fn an_agents_delete_is_cloned_before_the_allow_and_undo_restores_it() {
    let k = keeps(FakeCloner::default(), "");
    let (agent, _, rm) = agent_tree(&k.f);
    let file = k.file("main.rs", b"fn main() { println!(\"kept\"); }\n");
    assert_eq!(k.unlink(&rm, &file), ALLOW);
    // The clone started while the kernel still held the operation: no answer had gone out.
    assert_eq!(*k.answered_at_clone.lock().unwrap(), vec![0]);
    assert_eq!(k.cloner.cloned(), vec![file.clone()]);
    // The kernel deletes it once allowed.
    std::fs::remove_file(&file).unwrap();
    let rows = k.rows(1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0].record;
    assert_eq!(row.path, file.to_str().unwrap());
    assert_eq!(
        (row.rule.clone(), row.how),
        (RuleId::ProtectedDelete, KeptHow::Copied)
    );
    assert_eq!(
        (row.agent.as_str(), row.agent_pid, row.pid),
        ("claude", 100, 300)
    );
    // The session is the agent root's: pid 100, started at 1000 µs.
    assert!(row.session.ends_with("-100.1000"), "{}", row.session);
    k.f.exit(&agent);
    let rows = k.ended(1);
    let restored = crate::snapshots::restore::restore(&k.store(), &rows, false);
    assert!(!restored.iter().any(|r| r.failed()), "{restored:?}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"fn main() { println!(\"kept\"); }\n"
    );
}

#[test]
fn a_clobber_a_move_out_and_a_truncation_each_keep_what_they_destroy() {
    let k = keeps(FakeCloner::default(), "");
    let (agent, zsh, _) = agent_tree(&k.f);
    let old = k.file("config.json", b"{\"old\": true}");
    let new = k.file("config.json.tmp", b"{\"new\": true}");
    let clobber = EsRequest::Rename {
        source: new.clone(),
        source_mode: 0o100644,
        destination: EsDestination::ExistingFile(old.clone()),
    };
    assert_eq!(k.ask(&zsh, LONG, clobber), ALLOW);
    let leaving = k.file("notes.txt", b"notes");
    let outside = k._zone_dir.path().join("notes.txt");
    let move_out = EsRequest::Rename {
        source: leaving.clone(),
        source_mode: 0o100644,
        destination: EsDestination::NewPath {
            dir: k._zone_dir.path().to_path_buf(),
            name: "notes.txt".into(),
            kind: crate::vocab::NodeKind::File,
        },
    };
    assert_eq!(k.ask(&zsh, LONG, move_out), ALLOW);
    let log = k.file("app.log", b"lines");
    let truncate = EsRequest::Truncate {
        target: log.clone(),
    };
    assert_eq!(k.ask(&zsh, LONG, truncate), ALLOW);
    assert_eq!(*k.answered_at_clone.lock().unwrap(), vec![0, 1, 2]);
    let mut rows = k.rows(3);
    rows.sort_by_key(|r| r.record.seq);
    let kept: Vec<(String, RuleId)> = rows
        .iter()
        .map(|r| (r.record.path.clone(), r.record.rule.clone()))
        .collect();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    assert_eq!(
        kept,
        vec![
            (path(&old), RuleId::ProtectedReplace),
            (path(&leaving), RuleId::ProtectedMoveOut),
            (path(&log), RuleId::ProtectedTruncate),
        ]
    );
    // The kernel does them; the agent exits; undo gives every byte back.
    std::fs::rename(&new, &old).unwrap();
    std::fs::rename(&leaving, &outside).unwrap();
    std::fs::write(&log, b"").unwrap();
    k.f.exit(&agent);
    let rows = k.ended(3);
    let restored = crate::snapshots::restore::restore(&k.store(), &rows, false);
    assert!(!restored.iter().any(|r| r.failed()), "{restored:?}");
    assert_eq!(std::fs::read(&old).unwrap(), b"{\"old\": true}");
    assert_eq!(std::fs::read(&leaving).unwrap(), b"notes");
    assert_eq!(std::fs::read(&log).unwrap(), b"lines");
}

#[test]
fn a_clone_that_fails_denies_with_the_reason_and_keeps_nothing() {
    let k = keeps(
        FakeCloner {
            errno: Some(libc::EXDEV),
            ..FakeCloner::default()
        },
        "",
    );
    let (_, _, rm) = agent_tree(&k.f);
    let file = k.file("main.rs", b"x");
    assert_eq!(k.unlink(&rm, &file), DENY);
    assert_eq!(k.stored(), 0);
    assert!(k.rows(0).is_empty());
    let denied = denials(&k.f);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].rule, RuleId::KeepFailed);
    assert!(
        denied[0].reason.contains("another volume"),
        "{}",
        denied[0].reason
    );
}

#[test]
fn a_clone_that_outlasts_the_budget_is_denied_by_the_timer_and_removed() {
    let k = keeps(
        FakeCloner {
            delay: Some(Duration::from_millis(400)),
            ..FakeCloner::default()
        },
        "",
    );
    let (_, _, rm) = agent_tree(&k.f);
    let file = k.file("main.rs", b"x");
    let short = DeadlinePlan::Decide {
        budget: Duration::from_millis(100),
    };
    let request = EsRequest::Unlink {
        target: file.clone(),
        target_mode: 0o100644,
    };
    // The timer answers at the budget: the agent is denied, never left waiting.
    assert_eq!(k.ask(&rm, short, request), DENY);
    // The worker finishes its clone after the answer, finds it lost, and removes it again.
    let waited = std::time::Instant::now();
    let refused = loop {
        let denied = denials(&k.f);
        if let Some(d) = denied.iter().find(|d| d.rule == RuleId::KeepFailed) {
            break d.clone();
        }
        assert!(waited.elapsed() < Duration::from_secs(10), "{denied:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(refused.reason.contains("deadline"), "{}", refused.reason);
    assert_eq!(k.cloner.cloned(), vec![file.clone()], "the clone was made");
    assert_eq!(k.stored(), 0, "and removed");
    assert!(k.rows(0).is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_session_is_one_agent_root_and_keeps_a_first_write_once() {
    let k = keeps(FakeCloner::default(), "");
    let (agent, zsh, rm) = agent_tree(&k.f);
    let file = k.file("README.md", b"first");
    // Two processes of one agent: one session, the file kept at its first write only.
    assert_eq!(k.write_open(&zsh, &file), KernelAnswer::Flags(u32::MAX));
    std::fs::write(&file, b"second").unwrap();
    assert_eq!(k.write_open(&rm, &file), KernelAnswer::Flags(u32::MAX));
    assert_eq!(k.cloner.cloned().len(), 1);
    let session = k.f.core.session_of(&agent).expect("the agent's session");
    // A second agent, its own root: its own session keeps the file as it found it.
    let other = proc(400, 4_000, &shell(), "/bin/zsh");
    k.f.fork(&shell(), &other);
    let other = k.f.exec(&other, "/usr/local/bin/claude", &["claude"]);
    assert_eq!(k.write_open(&other, &file), KernelAnswer::Flags(u32::MAX));
    assert_eq!(k.cloner.cloned().len(), 2);
    let rows = k.rows(2);
    let sessions: Vec<&str> = rows.iter().map(|r| r.record.session.as_str()).collect();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0], session.id.as_str());
    assert!(sessions[1].ends_with("-400.4000"), "{sessions:?}");
    assert_ne!(sessions[0], sessions[1]);
    let bytes = |r: &StoredKept| {
        std::fs::read(k.store().join(r.record.store_name.as_ref().unwrap())).unwrap()
    };
    assert_eq!(bytes(&rows[0]), b"first");
    assert_eq!(bytes(&rows[1]), b"second");
}

#[test]
fn the_roots_exit_ends_its_session_and_records_the_state_left() {
    let k = keeps(FakeCloner::default(), "");
    let (agent, zsh, rm) = agent_tree(&k.f);
    let file = k.file("main.rs", b"x");
    assert_eq!(k.unlink(&rm, &file), ALLOW);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(k.rows(1).len(), 1);
    // A child's exit is not the session's end.
    k.f.exit(&rm);
    assert!(k.f.core.session_of(&agent).is_some());
    k.f.exit(&agent);
    assert!(k.f.core.session_of(&agent).is_none());
    let state = k.ended(1)[0].record.end_state.clone().unwrap();
    assert_eq!(state, "absent");
    // A process of the agent that lives on gets a session of its own, which ends with it.
    let zsh = orphaned(zsh);
    let later = k.file("later.rs", b"y");
    assert_eq!(k.unlink(&zsh, &later), ALLOW);
    let own = k.f.core.session_of(&zsh).expect("its own session");
    assert!(own.id.as_str().ends_with("-200.2000"), "{}", own.id);
    std::fs::remove_file(&later).unwrap();
    k.f.exit(&zsh);
    let rows = k.ended(2);
    assert_eq!(rows[1].record.session, own.id.as_str());
    assert_eq!(rows[1].record.end_state.as_deref(), Some("absent"));
}

#[test]
fn a_humans_delete_keeps_nothing_and_the_brake_stops_an_agents_spree() {
    let brake = r#", "snapshots": {"brake": {"files": 2, "mb": 100, "window": "60s"}}"#;
    let k = keeps(FakeCloner::default(), brake);
    let file = k.file("human.txt", b"h");
    assert_eq!(k.unlink(&shell(), &file), ALLOW);
    assert!(k.cloner.cloned().is_empty());
    let (_, _, rm) = agent_tree(&k.f);
    let files: Vec<PathBuf> = (0..3).map(|n| k.file(&format!("f{n}"), b"data")).collect();
    assert_eq!(k.unlink(&rm, &files[0]), ALLOW);
    assert_eq!(k.unlink(&rm, &files[1]), ALLOW);
    // Counted when recorded, just after each answer.
    assert_eq!(k.rows(2).len(), 2);
    assert_eq!(k.unlink(&rm, &files[2]), DENY);
    assert_eq!(k.cloner.cloned().len(), 2, "nothing cloned past the brake");
    let denied = denials(&k.f);
    assert_eq!(denied.last().unwrap().rule, RuleId::DestructionBrake);
}

#[test]
fn a_truncating_open_keeps_the_file_every_session_once() {
    // `: > README.md` in a shell: AUTH_OPEN with O_TRUNC, no truncate(2).
    let k = keeps(FakeCloner::default(), "");
    let (_, zsh, _) = agent_tree(&k.f);
    let readme = k.file("README.md", b"# the project\n");
    let truncating = || EsRequest::Open {
        path: readme.clone(),
        fflag: fflag::FWRITE | fflag::O_TRUNC | fflag::O_CREAT,
    };
    assert_eq!(
        k.ask(&zsh, LONG, truncating()),
        KernelAnswer::Flags(u32::MAX)
    );
    std::fs::write(&readme, b"").unwrap();
    // The session's first state is kept: truncating what it wrote itself keeps nothing more.
    assert_eq!(
        k.ask(&zsh, LONG, truncating()),
        KernelAnswer::Flags(u32::MAX)
    );
    assert_eq!(k.cloner.cloned(), vec![readme.clone()]);
    let rows = k.rows(1);
    assert_eq!(rows[0].record.rule, RuleId::ProtectedTruncate);
    let kept = k.store().join(rows[0].record.store_name.as_ref().unwrap());
    assert_eq!(std::fs::read(kept).unwrap(), b"# the project\n");
}

#[test]
fn a_directory_moved_out_of_the_zone_is_cloned_whole_and_comes_back() {
    let k = keeps(FakeCloner::default(), "");
    let (agent, zsh, _) = agent_tree(&k.f);
    let dist = k.zone.join("dist");
    std::fs::create_dir_all(dist.join("js")).unwrap();
    std::fs::write(dist.join("js/app.js"), b"console.log(1)").unwrap();
    let move_out = EsRequest::Rename {
        source: dist.clone(),
        source_mode: 0o040755,
        destination: EsDestination::NewPath {
            dir: k._zone_dir.path().to_path_buf(),
            name: "dist".into(),
            kind: crate::vocab::NodeKind::Directory,
        },
    };
    assert_eq!(k.ask(&zsh, LONG, move_out), ALLOW);
    assert_eq!(k.cloner.cloned(), vec![dist.clone()]);
    // The kernel moves it; the agent changes it where it went, then exits.
    let moved = k._zone_dir.path().join("dist");
    std::fs::rename(&dist, &moved).unwrap();
    std::fs::write(moved.join("js/app.js"), b"changed").unwrap();
    k.f.exit(&agent);
    let rows = k.ended(1);
    assert_eq!(rows[0].record.rule, RuleId::ProtectedMoveOut);
    let restored = crate::snapshots::restore::restore(&k.store(), &rows, false);
    assert!(!restored.iter().any(|r| r.failed()), "{restored:?}");
    assert_eq!(
        std::fs::read(dist.join("js/app.js")).unwrap(),
        b"console.log(1)"
    );
}
