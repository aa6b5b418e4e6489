//! The daemon core behind the real glue and two recording clients, as on a Mac: the file
//! client and the process client deliver the same forks and exits in their own orders, and what
//! each judges must still be attributed right.

use std::time::Duration;

use super::*;
use crate::platform::macos::api::{EsEventKind, KernelAnswer};
use crate::platform::macos::fake::{FakeClient, FakeMessage};
use crate::platform::macos::glue::{Body, ClientGlue, Incoming, Sensor};
use crate::platform::macos::mapping::EsRequest;
use crate::platform::macos::DeadlinePlan;
use crate::runtime::macos::lineage::EXIT_GRACE_NS;

struct Clients {
    file: ClientGlue<FakeClient>,
    process: ClientGlue<FakeClient>,
    file_fake: FakeClient,
    process_fake: FakeClient,
    _sensor: Arc<Sensor>,
}

fn clients(f: &Fixture) -> Clients {
    let sensor = f.sensor();
    let (file_fake, process_fake) = (FakeClient::new(), FakeClient::new());
    Clients {
        file: ClientGlue::new(Arc::new(file_fake.clone()), sensor.clone()),
        process: ClientGlue::new(Arc::new(process_fake.clone()), sensor.clone()),
        file_fake,
        process_fake,
        _sensor: sensor,
    }
}

/// A message at message time `at` from `process`.
fn message(
    at: u64,
    process: &ActorFacts,
    kind: EsEventKind,
    body: Body<FakeMessage>,
) -> Incoming<FakeMessage> {
    Incoming {
        kind,
        seq_num: None,
        global_seq_num: None,
        at_ns: at,
        process: process.clone(),
        body,
    }
}

fn fork(at: u64, parent: &ActorFacts, child: &ActorFacts) -> Incoming<FakeMessage> {
    message(
        at,
        parent,
        EsEventKind::NotifyFork,
        Body::Fork {
            child: child.clone(),
        },
    )
}

fn exit(at: u64, process: &ActorFacts) -> Incoming<FakeMessage> {
    message(at, process, EsEventKind::NotifyExit, Body::Exit)
}

fn unlink_message(
    fake: &FakeClient,
    id: u64,
    at: u64,
    actor: &ActorFacts,
    path: &str,
) -> Incoming<FakeMessage> {
    message(
        at,
        actor,
        EsEventKind::AuthUnlink,
        Body::Auth {
            message: fake.message(id),
            plan: DeadlinePlan::Decide {
                budget: Duration::from_secs(30),
            },
            instigator: None,
            request: Ok(EsRequest::Unlink {
                target: PathBuf::from(path),
                target_mode: 0o100644,
            }),
            files: Vec::new(),
        },
    )
}

#[test]
fn a_double_fork_whose_middle_exits_is_denied_while_the_process_client_is_behind() {
    // `(sh -c 'rm -rf ~/src/app' &)`: the agent's subshell forks sh and exits; sh becomes rm.
    // The process client has delivered none of it yet: the file client's own fork and exit
    // messages, in its own order, come before rm's unlink.
    let f = fixture(POLICY);
    let (agent, _, _) = agent_tree(&f);
    let c = clients(&f);
    let t = f.tick();
    let subshell = proc(400, 4_000, &agent, "/bin/zsh");
    let sh = proc(401, 4_100, &subshell, "/bin/zsh");
    let rm = ActorFacts {
        exe: PathBuf::from("/bin/rm"),
        ..orphaned(sh.clone())
    };
    c.file.on_message(fork(t, &agent, &subshell));
    c.file.on_message(fork(t + 1, &subshell, &sh));
    c.file.on_message(exit(t + 2, &subshell));
    c.file
        .on_message(unlink_message(&c.file_fake, 1, t + 3, &rm, FILE));
    assert_eq!(
        c.file_fake.answer_of(1),
        KernelAnswer::Auth { allow: false }
    );
    // Then the process client catches up: its copies change nothing, its exec moves nothing.
    c.process.on_message(fork(t, &agent, &subshell));
    c.process.on_message(fork(t + 1, &subshell, &sh));
    c.process.on_message(exit(t + 2, &subshell));
    c.process.on_message(message(
        t + 3,
        &sh,
        EsEventKind::NotifyExec,
        Body::Exec {
            target: rm.clone(),
            argv: args(&["rm", "-rf", FILE]),
        },
    ));
    assert_eq!(agent_of(&f.known(&rm)), Some(("claude".into(), 100)));
    assert!(
        c.process_fake.calls().is_empty(),
        "notifications need no answer"
    );
    // A human's rm in between is still allowed.
    let human = proc(450, 4_500, &shell(), "/bin/rm");
    c.file.on_message(fork(t + 10, &shell(), &human));
    c.file
        .on_message(unlink_message(&c.file_fake, 2, t + 11, &human, FILE));
    assert_eq!(c.file_fake.answer_of(2), KernelAnswer::Auth { allow: true });
}

#[test]
fn a_fork_one_client_missed_is_taken_from_the_other_after_the_parent_exited() {
    // ES dropped the file client's copy of the subshell's fork of sh (it drops notifications
    // under load). The process client delivers it, but after the file client already applied
    // the subshell's exit: the subshell must still be in the table for it.
    let f = fixture(POLICY);
    let (agent, _, _) = agent_tree(&f);
    let c = clients(&f);
    let t = f.tick();
    let subshell = proc(410, 4_200, &agent, "/bin/zsh");
    let sh = proc(411, 4_300, &subshell, "/bin/zsh");
    c.file.on_message(fork(t, &agent, &subshell));
    c.file.on_message(exit(t + 2, &subshell));
    let behind = t + EXIT_GRACE_NS / 2;
    c.process.on_message(fork(behind, &agent, &subshell));
    c.process.on_message(fork(behind + 1, &subshell, &sh));
    let rm = ActorFacts {
        exe: PathBuf::from("/bin/rm"),
        ..orphaned(sh)
    };
    c.file
        .on_message(unlink_message(&c.file_fake, 1, behind + 2, &rm, FILE));
    assert_eq!(
        c.file_fake.answer_of(1),
        KernelAnswer::Auth { allow: false }
    );
    // Long after, a late duplicate of the subshell's fork does not bring it back.
    let much_later = behind + 3 * EXIT_GRACE_NS;
    c.process.on_message(exit(much_later, &agent));
    c.process
        .on_message(fork(much_later + 1, &agent, &subshell));
    assert_eq!(f.known(&subshell), None);
}

#[test]
fn a_metadata_change_by_an_agent_is_judged_through_the_glue() {
    let policy = r#"{
      "ai_agent_patterns": ["claude"],
      "protected_zones": ["~/src"],
      "readonly_zones": ["~/.zshrc"]
    }"#;
    let f = fixture(policy);
    let (_, _, rm) = agent_tree(&f);
    let c = clients(&f);
    let setattr = |id: u64, path: &str| {
        message(
            f.tick(),
            &rm,
            EsEventKind::AuthSetFlags,
            Body::Auth {
                message: c.file_fake.message(id),
                plan: DeadlinePlan::Decide {
                    budget: Duration::from_secs(30),
                },
                instigator: None,
                request: Ok(EsRequest::Metadata {
                    target: PathBuf::from(path),
                }),
                files: Vec::new(),
            },
        )
    };
    // `chflags uchg ~/.zshrc`: denied; `chmod` in the protected zone: allowed, on the ES thread.
    c.file.on_message(setattr(1, "/Users/alice/.zshrc"));
    c.file.on_message(setattr(2, FILE));
    assert_eq!(
        c.file_fake.answer_of(1),
        KernelAnswer::Auth { allow: false }
    );
    assert_eq!(
        c.file_fake.answers(2),
        vec![KernelAnswer::Auth { allow: true }]
    );
}
