//! Starting a client and keeping its muting equal to the policy: what each client subscribes to,
//! the order of the calls at start (mute itself, select, subscribe: the first event already
//! respects the selection), and the change of the selection on a policy reload (add before
//! remove, so that no zone is unwatched in between; a failed change keeps the old selection).

use std::collections::BTreeSet;

use crate::platform::macos::api::{EsCallError, EsClient, EsEventKind};
use crate::platform::macos::muting::{file_auth_events, Mute, MutingSelection};

/// What the file client subscribes to: the file AUTH events (selected by target path), and the
/// lineage's fork and exit, which have no target path and so are always delivered. The process
/// client delivers them too, in its own order: each client's judgments see the forks and exits
/// that came before them on the same client (a fork never overtakes the events of its child).
pub fn file_events() -> Vec<EsEventKind> {
    let mut events = file_auth_events();
    events.extend([EsEventKind::NotifyFork, EsEventKind::NotifyExit]);
    events
}

/// What the process client subscribes to. NOTIFY_EXEC, not the AUTH_EXEC answer, tells the
/// lineage that an exec happened: an exec denied by another ES client or failing in the kernel
/// after our allow never happened.
pub const PROCESS_EVENTS: [EsEventKind; 7] = [
    EsEventKind::AuthExec,
    EsEventKind::AuthSignal,
    // task_for_pid and pid_suspend on the daemon (a root agent could freeze or inject it).
    EsEventKind::AuthGetTask,
    EsEventKind::AuthProcSuspendResume,
    EsEventKind::NotifyExec,
    EsEventKind::NotifyFork,
    EsEventKind::NotifyExit,
];

/// The process client: mute itself, subscribe.
pub fn start_process_client<C: EsClient>(client: &C) -> Result<(), EsCallError> {
    client.mute_self()?;
    client.subscribe(&PROCESS_EVENTS)
}

/// The file client's muting as applied.
#[derive(Debug, Default)]
pub struct FileMuting {
    applied: BTreeSet<Mute>,
    everything: bool,
}

impl FileMuting {
    /// Start the file client: mute itself, select `selection`, subscribe.
    pub fn start<C: EsClient>(
        client: &C,
        selection: &MutingSelection,
    ) -> Result<FileMuting, EsCallError> {
        client.mute_self()?;
        let mut muting = FileMuting::default();
        muting.select(client, selection, false)?;
        client.subscribe(&file_events())?;
        Ok(muting)
    }

    /// Make the client's muting equal `next` (a policy reload). On failure the client keeps a
    /// selection that covers at least the old one and the error says why.
    pub fn refresh<C: EsClient>(
        &mut self,
        client: &C,
        next: &MutingSelection,
    ) -> Result<(), EsCallError> {
        self.select(client, next, true)?;
        // Our answers are never cached, but a stale allow of another client's would skip us.
        if let Err(e) = client.clear_cache() {
            tracing::debug!("cache not cleared after a muting change: {e}");
        }
        Ok(())
    }

    /// The mutes applied now.
    pub fn applied(&self) -> &BTreeSet<Mute> {
        &self.applied
    }

    fn select<C: EsClient>(
        &mut self,
        client: &C,
        next: &MutingSelection,
        subscribed: bool,
    ) -> Result<(), EsCallError> {
        let inverted = client.target_path_muting_inverted()?;
        let want_inverted = !next.everything;
        if inverted != want_inverted {
            // ES asks for no AUTH subscription while the inversion changes (only a policy that
            // gains or loses a zone at `/` does this): unsubscribe, flip, subscribe again.
            if subscribed {
                client.unsubscribe_all()?;
            }
            let flipped = client
                .unmute_all_target_paths()
                .and_then(|()| client.invert_target_path_muting());
            self.applied.clear();
            self.everything = !want_inverted;
            if let Err(e) = flipped {
                if subscribed {
                    client.subscribe(&file_events())?;
                }
                return Err(e);
            }
            self.everything = next.everything;
            let added = self.add(client, next);
            if subscribed {
                client.subscribe(&file_events())?;
            }
            return added;
        }
        if next.everything {
            self.everything = true;
            return Ok(());
        }
        self.add(client, next)?;
        // Only once everything new is selected is anything old let go.
        let stale: Vec<Mute> = self.applied.difference(&next.mutes()).cloned().collect();
        for mute in stale {
            if let Err(e) = client.unmute_target_path(&mute.path, mute.how, &mute.events()) {
                // Still selected: more is delivered than needed, nothing is missed.
                tracing::warn!(path = %mute.path.display(), "stale selection kept: {e}");
                continue;
            }
            self.applied.remove(&mute);
        }
        Ok(())
    }

    fn add<C: EsClient>(&mut self, client: &C, next: &MutingSelection) -> Result<(), EsCallError> {
        for mute in next.mutes() {
            if self.applied.contains(&mute) {
                continue;
            }
            client.mute_target_path(&mute.path, mute.how, &mute.events())?;
            self.applied.insert(mute);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::platform::macos::api::PathMute;
    use crate::platform::macos::fake::{Call, FakeClient};
    use crate::platform::macos::muting::{file_events_but_open, selection};

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    fn mutes_in(calls: &[Call]) -> Vec<(String, PathMute, bool)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mute(p, how, events) => Some((
                    p.display().to_string(),
                    *how,
                    events == &vec![EsEventKind::AuthOpen],
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_file_client_mutes_itself_selects_then_subscribes() {
        let fake = FakeClient::new();
        let sel = selection(&paths(&["/Users/a/src"]), &paths(&["/Users/a/.ssh"]), true);
        let muting = FileMuting::start(&fake, &sel).unwrap();
        let calls = fake.calls();
        assert_eq!(calls[0], Call::MuteSelf);
        assert_eq!(calls[1], Call::UnmuteAllTargetPaths);
        assert_eq!(calls[2], Call::Invert);
        let subscribe = calls
            .iter()
            .position(|c| matches!(c, Call::Subscribe(_)))
            .unwrap();
        assert_eq!(subscribe, calls.len() - 1, "subscribed last: {calls:?}");
        assert_eq!(
            mutes_in(&calls),
            vec![
                ("/Users".into(), PathMute::Literal, false),
                ("/Users/a".into(), PathMute::Literal, false),
                ("/Users/a/.ssh".into(), PathMute::Prefix, false),
                ("/Users/a/.ssh".into(), PathMute::Prefix, true),
                ("/Users/a/src".into(), PathMute::Prefix, false),
            ]
        );
        let Call::Subscribe(events) = &calls[subscribe] else {
            unreachable!()
        };
        for kind in [
            EsEventKind::AuthSetFlags,
            EsEventKind::AuthDeleteExtAttr,
            EsEventKind::NotifyFork,
            EsEventKind::NotifyExit,
        ] {
            assert!(events.contains(&kind), "{kind:?}");
        }
        assert_eq!(muting.applied().len(), 5);
    }

    #[test]
    fn a_reload_adds_new_zones_before_it_lets_old_ones_go() {
        let fake = FakeClient::new();
        let before = selection(&paths(&["/Users/a/src"]), &[], true);
        let mut muting = FileMuting::start(&fake, &before).unwrap();
        fake.clear();
        let after = selection(&paths(&["/Users/a/work"]), &paths(&["/Users/a/.aws"]), true);
        muting.refresh(&fake, &after).unwrap();
        let calls = fake.calls();
        let first_unmute = calls
            .iter()
            .position(|c| matches!(c, Call::Unmute(..)))
            .unwrap();
        let last_mute = calls
            .iter()
            .rposition(|c| matches!(c, Call::Mute(..)))
            .unwrap();
        assert!(last_mute < first_unmute, "{calls:?}");
        assert!(calls.contains(&Call::Unmute(
            PathBuf::from("/Users/a/src"),
            PathMute::Prefix,
            file_events_but_open()
        )));
        // The ancestors both selections share are neither muted nor unmuted again.
        assert!(!calls
            .iter()
            .any(|c| matches!(c, Call::Mute(p, ..) | Call::Unmute(p, ..) if p == &PathBuf::from("/Users/a"))));
        assert!(!calls
            .iter()
            .any(|c| matches!(c, Call::Invert | Call::Subscribe(_))));
        assert!(calls.contains(&Call::ClearCache));
        assert_eq!(muting.applied(), &after.mutes());
    }

    #[test]
    fn a_failed_reload_keeps_watching_the_old_zones() {
        let fake = FakeClient::new();
        let before = selection(&paths(&["/Users/a/src"]), &[], true);
        let mut muting = FileMuting::start(&fake, &before).unwrap();
        fake.fail("mute_target_path");
        fake.clear();
        let after = selection(&paths(&["/Users/a/work"]), &[], true);
        assert!(muting.refresh(&fake, &after).is_err());
        assert!(
            !fake.calls().iter().any(|c| matches!(c, Call::Unmute(..))),
            "nothing old is let go: {:?}",
            fake.calls()
        );
        assert!(muting.applied().is_superset(&before.mutes()));
    }

    #[test]
    fn a_zone_at_the_root_turns_inversion_off_without_auth_subscriptions() {
        let fake = FakeClient::new();
        let before = selection(&paths(&["/Users/a/src"]), &[], true);
        let mut muting = FileMuting::start(&fake, &before).unwrap();
        fake.clear();
        let everything = selection(&paths(&["/"]), &[], true);
        muting.refresh(&fake, &everything).unwrap();
        let calls = fake.calls();
        let order: Vec<&Call> = calls
            .iter()
            .filter(|c| matches!(c, Call::UnsubscribeAll | Call::Invert | Call::Subscribe(_)))
            .collect();
        assert!(matches!(
            order[..],
            [Call::UnsubscribeAll, Call::Invert, Call::Subscribe(_)]
        ));
        assert!(muting.applied().is_empty());
        // And back.
        fake.clear();
        muting.refresh(&fake, &before).unwrap();
        assert_eq!(muting.applied(), &before.mutes());
        assert!(fake.calls().contains(&Call::Invert));
    }
}
