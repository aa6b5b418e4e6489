//! Grants in force: never seen half written, picked up live, dropped at expiry.

use super::*;

#[test]
fn grants_file_is_never_seen_half_written() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let unlimited = RateLimit {
        max_pending: usize::MAX,
        max_per_minute: usize::MAX,
    };
    let n = 40;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            file_request(
                &locations,
                &RequestSpec {
                    path: w.project.join(format!("docs/f{i}")),
                    ops: vec![agent_guard::engine::OpKind::Unlink],
                    reason: "bulk".into(),
                    ttl_secs: 600,
                    args: None,
                },
                None,
                Requester {
                    pid: 1,
                    uid: 0,
                    agent: None,
                    cwd: None,
                },
                &policy,
                std::slice::from_ref(&w.home),
                unlimited,
                true,
                now(),
            )
            .unwrap()
            .id
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let done = done.clone();
            let file = locations.grants.clone();
            std::thread::spawn(move || {
                let (mut reads, mut max_seen) = (0u64, 0usize);
                while !done.load(Ordering::Relaxed) {
                    match std::fs::read(&file) {
                        Ok(bytes) => {
                            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                                panic!(
                                    "partial grants.json ({e}): {}",
                                    String::from_utf8_lossy(&bytes)
                                )
                            });
                            let count = v["grants"].as_array().unwrap().len();
                            assert!(count >= max_seen, "a grant vanished: {count} < {max_seen}");
                            max_seen = count;
                            reads += 1;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            assert_eq!(max_seen, 0, "grants.json disappeared");
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                reads
            })
        })
        .collect();
    // Two approvers at once: the lock must keep every approval. The spool's rate limit shows
    // (and lets approve) a few of the 40 at a time, so each approver takes the ones of its half
    // that are shown, until its half is done.
    let halves: Vec<Vec<String>> = ids.chunks(n / 2).map(|c| c.to_vec()).collect();
    let approvers: Vec<_> = halves
        .into_iter()
        .map(|mut chunk| {
            let store = store.clone();
            let policy = policy.clone();
            let home = w.home.clone();
            let locations = locations.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + LIVENESS;
                while !chunk.is_empty() {
                    assert!(Instant::now() < deadline, "approvals stalled: {chunk:?}");
                    let pending = load_pending(&locations).unwrap().into_iter().flatten();
                    let (shown, _) = RateLimit::DEFAULT.admit(pending.collect());
                    let mine: Vec<String> = shown
                        .into_iter()
                        .map(|r| r.id)
                        .filter(|id| chunk.contains(id))
                        .collect();
                    for id in &mine {
                        match store.approve(
                            id,
                            None,
                            false,
                            &policy,
                            std::slice::from_ref(&home),
                            now(),
                        ) {
                            Ok(_) => chunk.retain(|c| c != id),
                            // The other approver's approvals changed what is shown.
                            Err(OverrideError::HeldBack { .. }) => {}
                            Err(e) => panic!("{id}: {e}"),
                        }
                    }
                    if mine.is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for a in approvers {
        a.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0, "the readers never saw the file");
    let stored = store.load().unwrap();
    assert_eq!(stored.grants.len(), n, "an approval was lost");
    // No temporary or lock file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&w.state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn live_grants_pick_up_an_approval_and_the_engine_drops_it_at_expiry() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let live = LiveGrants::load(locations.clone()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = watch_grants(live.clone(), move |r| {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    })
    .unwrap();
    let target = w.project.join("docs/old.md");
    let event = unlink_by_agent(&target);
    assert!(!decide(&event, &agent(), &policy, &live.current(), now()).allows());

    let id = w.request("docs/old.md", "unlink", "claude:5");
    // The watcher records the agent's request as it appears (freezing its content).
    let spooled = w.state.join("requests").join(format!("{id}.json"));
    let filed = Instant::now();
    assert!(spooled.exists());
    // Recorded means in the trail (the agent-written file's own `recorded` flag is not
    // believed).
    while w.event_kinds(&id).is_empty() {
        assert!(
            filed.elapsed() < LIVENESS,
            "the new request was never recorded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(w.event_kinds(&id), ["request"]);
    let (code, _, err) = w.run(&["override", "approve", &id, "--ttl", "10m"]);
    assert_eq!(code, 0, "{err}");
    let approved = Instant::now();
    while live.current().grants.is_empty() {
        assert!(
            approved.elapsed() < LIVENESS,
            "the approval never reached LiveGrants"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("approval seen after {:?}", approved.elapsed());
    assert_eq!(rx.recv_timeout(LIVENESS).unwrap(), Ok(true));
    let grants = live.current();
    assert_eq!(grants.grants[0].id, id);
    let t = now();
    assert_eq!(
        decide(&event, &agent(), &policy, &grants, t),
        Verdict::Allow
    );
    // At expiry the engine stops honouring it, with no reload.
    let expires = grants.grants[0].expires_at.unwrap();
    assert_eq!(live.next_expiry(), Some(expires));
    assert!(!decide(&event, &agent(), &policy, &grants, expires).allows());
    assert!(decide(&event, &agent(), &policy, &grants, expires - 1).allows());

    // Revocation reaches the live set too.
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    while !live.current().grants.is_empty() {
        assert!(
            revoked.elapsed() < LIVENESS,
            "the revocation never reached LiveGrants"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!decide(&event, &agent(), &policy, &live.current(), now()).allows());

    // A corrupt grants.json keeps the last good set and is reported.
    let id = w.request("docs/old.md", "unlink", "claude:6");
    assert_eq!(w.run(&["override", "approve", &id]).0, 0);
    let start = Instant::now();
    while live.current().grants.is_empty() {
        assert!(start.elapsed() < LIVENESS);
        std::thread::sleep(Duration::from_millis(2));
    }
    while rx.try_recv().is_ok() {}
    std::fs::write(&locations.grants, "{not json").unwrap();
    let error = loop {
        match rx
            .recv_timeout(LIVENESS)
            .expect("the corrupt file is reported")
        {
            Err(e) => break e,
            Ok(_) => continue,
        }
    };
    assert!(error.contains("grants.json"), "{error}");
    assert_eq!(live.current().grants.len(), 1);
}

#[test]
fn expired_grants_are_dropped_on_load_and_recorded_as_expired() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let id = w.request("docs/old.md", "unlink", "claude:3");
    let long_ago = now() - 7200;
    store
        .approve(
            &id,
            Some(60),
            false,
            &policy,
            std::slice::from_ref(&w.home),
            long_ago,
        )
        .unwrap();
    // Still in the file, but not handed to the engine.
    assert_eq!(store.load().unwrap().grants.len(), 1);
    assert_eq!(store.active(now()).unwrap(), Grants::default());
    // A human's `list` prunes it and records the expiry.
    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("Active grants: 0"), "{out}");
    assert!(store.load().unwrap().grants.is_empty());
    assert_eq!(w.event_kinds(&id), ["request", "approve", "expire"]);
}
