//! Each AUTH message answered exactly once, by the right party, on every path.

use super::*;

#[test]
fn every_path_answers_each_message_exactly_once_and_releases_it_after() {
    let script = Script {
        known: HashMap::from([
            (10, Known::Human { fresh: true }),
            (11, Known::Human { fresh: false }),
            (12, Known::Agent),
        ]),
        agents: vec![12, 13],
        ..Script::default()
    };
    let r = rig(script, 2, 64);
    // Outside any zone: nothing to stop, answered on the ES thread.
    r.unlink(1, 13, "/tmp/x");
    assert_eq!(r.fake.answers(1), vec![ALLOW], "answered before returning");
    // A known human whose names were just read: answered on the ES thread.
    r.unlink(2, 10, "/zone/a");
    assert_eq!(r.fake.answers(2), vec![ALLOW]);
    // A known human due for a re-read, a known agent, an unknown agent: decided by a worker.
    r.unlink(3, 11, "/zone/a");
    r.unlink(4, 12, "/zone/a");
    r.unlink(5, 13, "/zone/a");
    // A probe (signal 0): nothing to decide.
    r.auth(
        6,
        13,
        LONG,
        Ok(EsRequest::Signal {
            target: GUARD,
            signal: 0,
        }),
    );
    // Too little time left: the fail mode (open), without a decision ...
    r.auth(
        7,
        13,
        DeadlinePlan::AnswerNow,
        Ok(EsRequest::Unlink {
            target: PathBuf::from("/zone/a"),
            target_mode: 0,
        }),
    );
    // ... but deny for a known agent.
    r.auth(
        8,
        12,
        DeadlinePlan::AnswerNow,
        Ok(EsRequest::Unlink {
            target: PathBuf::from("/zone/a"),
            target_mode: 0,
        }),
    );
    assert_eq!(r.fake.answer_of(1), ALLOW);
    assert_eq!(r.fake.answer_of(2), ALLOW);
    assert_eq!(r.fake.answer_of(3), ALLOW);
    assert_eq!(r.fake.answer_of(4), DENY);
    assert_eq!(r.fake.answer_of(5), DENY);
    assert_eq!(r.fake.answer_of(6), ALLOW);
    assert_eq!(r.fake.answer_of(7), ALLOW);
    assert_eq!(r.fake.answer_of(8), DENY);
    let c = r.sensor.counters().snapshot();
    assert_eq!((c.fast, c.decided, c.arrived_late), (3, 3, 2), "{c:?}");
}

#[test]
fn a_truncated_path_is_decided_by_who_acts() {
    let script = Script {
        known: HashMap::from([(10, Known::Human { fresh: false }), (12, Known::Agent)]),
        agents: vec![12, 13],
        fail_closed: false,
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    let truncated = || Err(Unreadable { is_open: false });
    r.auth(1, 12, LONG, truncated()); // a known agent: denied at once, fail mode open or not
    r.auth(2, 10, LONG, truncated()); // a known human: allowed
    r.auth(3, 13, LONG, truncated()); // unknown, found an agent by the worker: denied
    r.auth(4, 14, LONG, truncated()); // unknown, found human: allowed
    r.auth(5, 13, LONG, Err(Unreadable { is_open: true })); // an open: flags
    assert_eq!(r.fake.answers(1), vec![DENY], "answered on the ES thread");
    assert_eq!(r.fake.answer_of(2), ALLOW);
    assert_eq!(r.fake.answer_of(3), DENY);
    assert_eq!(r.fake.answer_of(4), ALLOW);
    assert_eq!(r.fake.answer_of(5), KernelAnswer::Flags(0));
    assert_eq!(r.sensor.counters().snapshot().unreadable, 5);
}

#[test]
fn a_panicking_decision_is_answered_and_its_worker_replaced() {
    let script = Script {
        known: HashMap::from([(12, Known::Agent)]),
        agents: vec![12],
        panics: vec![12, 20],
        fail_closed: false,
        ..Script::default()
    };
    let r = rig(script, 2, 8);
    // A known agent: deny. An unknown actor (a human, as far as anyone knows): the fail mode.
    r.unlink(1, 12, "/zone/a");
    r.unlink(2, 20, "/zone/a");
    assert_eq!(r.fake.answer_of(1), DENY);
    assert_eq!(r.fake.answer_of(2), ALLOW);
    // The pool still has its two workers, and decides.
    let end = Instant::now() + Duration::from_secs(5);
    while r.sensor.live_workers() != 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(r.sensor.live_workers(), 2);
    r.unlink(3, 21, "/zone/a");
    assert_eq!(r.fake.answer_of(3), ALLOW);
    assert_eq!(r.sensor.counters().snapshot().panicked, 2);
}

#[test]
fn a_decision_past_its_budget_is_answered_once_denying_a_known_agent() {
    let script = Script {
        known: HashMap::from([(12, Known::Agent)]),
        agents: vec![12, 13],
        held: vec![12, 13, 14],
        fail_closed: false,
        ..Script::default()
    };
    let r = rig(script, 3, 8);
    let short = DeadlinePlan::Decide {
        budget: Duration::from_millis(20),
    };
    let unlink = || {
        Ok(EsRequest::Unlink {
            target: PathBuf::from("/zone/a"),
            target_mode: 0,
        })
    };
    r.auth(1, 12, short, unlink()); // known agent: deny at the budget
    r.auth(2, 14, short, unlink()); // unknown: the fail mode (open) at the budget
    assert!(r.fake.wait_released(1, Duration::from_secs(5)));
    assert!(r.fake.wait_released(2, Duration::from_secs(5)));
    // The workers finish afterwards: their answers come too late and are not sent.
    r.handler.release();
    r.unlink(3, 15, "/zone/a");
    assert_eq!(r.fake.answer_of(3), ALLOW);
    let end = Instant::now() + Duration::from_secs(5);
    while r.sensor.counters().snapshot().late_answers < 2 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(r.fake.answer_of(1), DENY);
    assert_eq!(r.fake.answer_of(2), ALLOW);
    let c = r.sensor.counters().snapshot();
    assert_eq!((c.budget_exceeded, c.late_answers), (2, 2), "{c:?}");
}

#[test]
fn a_full_queue_answers_at_once_without_a_decision() {
    let script = Script {
        held: vec![20],
        fail_closed: true,
        ..Script::default()
    };
    let r = rig(script, 1, 1);
    r.unlink(1, 20, "/zone/a"); // taken by the one worker, which waits
    r.wait_for("attribute 20");
    r.unlink(2, 20, "/zone/a"); // queued
    r.unlink(3, 20, "/zone/a"); // no room: fail mode (closed) now
    assert_eq!(r.fake.answers(3), vec![DENY]);
    r.handler.release();
    assert_eq!(r.fake.answer_of(1), ALLOW);
    assert_eq!(r.fake.answer_of(2), ALLOW);
    assert_eq!(r.fake.answer_of(3), DENY);
    assert_eq!(r.sensor.counters().snapshot().queue_full, 1);
}

#[test]
fn opens_are_answered_with_flags_and_reads_outside_secrets_on_the_es_thread() {
    let script = Script {
        agents: vec![13],
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    let open = |path: &str, fflag| {
        Ok(EsRequest::Open {
            path: PathBuf::from(path),
            fflag,
        })
    };
    r.auth(1, 13, LONG, open("/tmp/readme", fflag::FREAD));
    assert_eq!(r.fake.answers(1), vec![KernelAnswer::Flags(u32::MAX)]);
    r.auth(2, 13, LONG, open("/zone/secret", fflag::FREAD));
    assert_eq!(r.fake.answer_of(2), KernelAnswer::Flags(0));
    // A read that matters to nobody is not even recorded: the one decision is message 2's.
    let decisions = r.handler.log().iter().filter(|l| *l == "decide 13").count();
    assert_eq!(decisions, 1, "{:?}", r.handler.log());
}

#[test]
fn an_agents_allowed_change_is_answered_at_once_and_recorded_on_a_worker() {
    let script = Script {
        known: HashMap::from([(10, Known::Human { fresh: false })]),
        agents: vec![13],
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    r.unlink(1, 13, "/tmp/x"); // unknown actor, nothing to stop: allowed now, recorded later
    r.unlink(2, 10, "/tmp/x"); // a known human: nothing to record
    assert_eq!(r.fake.answers(1), vec![ALLOW]);
    assert_eq!(r.fake.answers(2), vec![ALLOW]);
    r.wait_for("decide 13");
    assert!(!r.handler.log().contains(&"decide 10".to_string()));
}
