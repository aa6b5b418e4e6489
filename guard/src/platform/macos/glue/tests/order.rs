//! Message order, dropped events, delegated signals, the stop.

use super::*;

#[test]
fn the_lineage_hears_of_a_fork_before_the_childs_messages_are_judged() {
    let script = Script {
        known: HashMap::from([(12, Known::Agent)]),
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    r.notify(1, 12, Body::Fork { child: actor(30) });
    // The child's first message: its fork was told to the lineage on this thread already, so it
    // is a known agent (denied at once when time is short, not the fail mode of a stranger).
    r.auth(
        2,
        30,
        DeadlinePlan::AnswerNow,
        Ok(EsRequest::Unlink {
            target: PathBuf::from("/zone/a"),
            target_mode: 0,
        }),
    );
    assert_eq!(r.fake.answer_of(2), DENY);
    r.notify(
        3,
        30,
        Body::Exec {
            target: actor(30),
            argv: vec!["rm".into()],
        },
    );
    r.notify(4, 30, Body::Exit);
    assert_eq!(r.handler.log(), vec!["fork 12 30", "exec 30", "exit 30"]);
}

#[test]
fn gaps_in_the_sequence_numbers_are_counted_as_dropped_events() {
    let r = rig(Script::default(), 1, 8);
    r.notify(10, 1, Body::Exit);
    r.notify(11, 1, Body::Exit);
    r.notify(15, 1, Body::Exit); // 12, 13, 14 were dropped by ES
    r.unlink(16, 1, "/tmp/x");
    assert_eq!(r.sensor.counters().snapshot().dropped_events, 3);
}

#[test]
fn a_delegated_signal_is_judged_by_the_process_that_asked_launchd() {
    let script = Script {
        known: HashMap::from([(12, Known::Agent), (1, Known::Human { fresh: true })]),
        agents: vec![12],
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    let term = || {
        Ok(EsRequest::Signal {
            target: GUARD,
            signal: 15,
        })
    };
    let deliver = |id, instigator: Option<ActorFacts>| {
        r.glue.on_message(Incoming {
            kind: EsEventKind::AuthSignal,
            seq_num: None,
            global_seq_num: None,
            at_ns: id,
            process: actor(1), // launchd sends it
            body: Body::Auth {
                message: r.fake.message(id),
                plan: LONG,
                instigator,
                request: term(),
                files: Vec::new(),
            },
        })
    };
    // `launchctl kill TERM system/com.agent-guard.daemon` by the agent (macOS 15.4+).
    deliver(1, Some(actor(12)));
    // launchd on its own (shutdown), or an older macOS that does not say who asked.
    deliver(2, None);
    assert_eq!(r.fake.answer_of(1), DENY);
    assert_eq!(r.fake.answer_of(2), ALLOW);
}

#[test]
fn a_stop_answers_what_waits_and_everything_after_it() {
    let script = Script {
        held: vec![20],
        fail_closed: false,
        known: HashMap::from([(12, Known::Agent)]),
        agents: vec![12],
        ..Script::default()
    };
    let r = rig(script, 1, 8);
    r.unlink(1, 20, "/zone/a"); // held by the worker
    r.wait_for("attribute 20");
    r.unlink(2, 12, "/zone/a"); // queued behind it: a known agent
    let sensor = r.sensor.clone();
    let stopper = std::thread::spawn(move || sensor.stop(Duration::from_secs(10)));
    assert!(
        r.fake.wait_released(1, Duration::from_secs(5)),
        "answered by the stop"
    );
    assert!(r.fake.wait_released(2, Duration::from_secs(5)));
    r.handler.release();
    assert!(stopper.join().unwrap(), "nothing held after the stop");
    assert_eq!(r.fake.answer_of(1), ALLOW);
    assert_eq!(r.fake.answer_of(2), DENY);
    r.unlink(3, 12, "/zone/a");
    assert_eq!(r.fake.answers(3), vec![DENY], "after the stop: at once");
}
