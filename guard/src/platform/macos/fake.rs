//! A recording [`EsClient`] for tests: every call the glue makes is appended to one log, and a
//! [`FakeMessage`] records its retain when it is made and its release when it is dropped, so a
//! test can check that each AUTH message was answered exactly once and released after that.
//! And a [`FakeCloner`]: a real byte copy ([`CopyCloner`]) that records each clone, can fail as
//! `clonefile(2)` fails, take its time, or call a test's check just before it copies.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::api::{EsCallError, EsClient, EsEventKind, KernelAnswer, PathMute};
use super::keep::{Cloner, CopyCloner};
use crate::vocab::KeptHow;

/// One call, as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Subscribe(Vec<EsEventKind>),
    UnsubscribeAll,
    Respond {
        message: u64,
        answer: KernelAnswer,
        cache: bool,
    },
    MuteSelf,
    Mute(PathBuf, PathMute, Vec<EsEventKind>),
    Unmute(PathBuf, PathMute, Vec<EsEventKind>),
    UnmuteAllTargetPaths,
    Invert,
    ClearCache,
    Retain(u64),
    Release(u64),
}

#[derive(Debug, Default)]
struct Log {
    calls: Mutex<Vec<Call>>,
    changed: Condvar,
}

impl Log {
    fn push(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
        self.changed.notify_all();
    }
}

/// The recording client. Clones share the log.
#[derive(Clone, Default)]
pub struct FakeClient {
    log: Arc<Log>,
    inverted: Arc<Mutex<bool>>,
    /// Calls whose name is listed here fail.
    failing: Arc<Mutex<Vec<&'static str>>>,
}

/// A message the fake "delivered": its id, retained until dropped.
#[derive(Debug)]
pub struct FakeMessage {
    pub id: u64,
    log: Arc<Log>,
}

impl Drop for FakeMessage {
    fn drop(&mut self) {
        self.log.push(Call::Release(self.id));
    }
}

impl FakeClient {
    pub fn new() -> FakeClient {
        FakeClient::default()
    }

    /// A retained message with this id, as ES hands one to the handler.
    pub fn message(&self, id: u64) -> FakeMessage {
        self.log.push(Call::Retain(id));
        FakeMessage {
            id,
            log: self.log.clone(),
        }
    }

    /// Make every later call named `call` (`"mute_target_path"`, ...) fail.
    pub fn fail(&self, call: &'static str) {
        self.failing.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.log.calls.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.calls.lock().unwrap().clear();
    }

    /// The answers given to message `id`, in order.
    pub fn answers(&self, id: u64) -> Vec<KernelAnswer> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Respond {
                    message, answer, ..
                } if message == id => Some(answer),
                _ => None,
            })
            .collect()
    }

    /// Wait until message `id` is released (its answer is then in the log), at most `limit`.
    pub fn wait_released(&self, id: u64, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut calls = self.log.calls.lock().unwrap();
        loop {
            if calls.contains(&Call::Release(id)) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            calls = self.log.changed.wait_timeout(calls, left).unwrap().0;
        }
    }

    /// The one answer of message `id` once it is released; panics if it was answered other
    /// than exactly once, or answered after its release.
    pub fn answer_of(&self, id: u64) -> KernelAnswer {
        assert!(
            self.wait_released(id, Duration::from_secs(10)),
            "message {id} never released: {:?}",
            self.calls()
        );
        let calls = self.calls();
        let answered = calls
            .iter()
            .position(|c| matches!(c, Call::Respond { message, .. } if *message == id));
        let released = calls.iter().position(|c| *c == Call::Release(id));
        assert!(
            answered < released,
            "message {id} released before its answer: {calls:?}"
        );
        let answers = self.answers(id);
        assert_eq!(answers.len(), 1, "message {id} answered {answers:?}");
        answers[0]
    }

    fn call(&self, name: &'static str, call: Call) -> Result<(), EsCallError> {
        if self.failing.lock().unwrap().contains(&name) {
            return Err(EsCallError {
                call: name,
                detail: "refused by the test".into(),
            });
        }
        self.log.push(call);
        Ok(())
    }
}

impl EsClient for FakeClient {
    type Message = FakeMessage;

    fn subscribe(&self, events: &[EsEventKind]) -> Result<(), EsCallError> {
        self.call("subscribe", Call::Subscribe(events.to_vec()))
    }
    fn unsubscribe_all(&self) -> Result<(), EsCallError> {
        self.call("unsubscribe_all", Call::UnsubscribeAll)
    }
    fn respond(
        &self,
        message: &FakeMessage,
        answer: KernelAnswer,
        cache: bool,
    ) -> Result<(), EsCallError> {
        self.call(
            "respond",
            Call::Respond {
                message: message.id,
                answer,
                cache,
            },
        )
    }
    fn mute_self(&self) -> Result<(), EsCallError> {
        self.call("mute_self", Call::MuteSelf)
    }
    fn mute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError> {
        let call = Call::Mute(path.to_path_buf(), how, events.to_vec());
        self.call("mute_target_path", call)
    }
    fn unmute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError> {
        let call = Call::Unmute(path.to_path_buf(), how, events.to_vec());
        self.call("unmute_target_path", call)
    }
    fn unmute_all_target_paths(&self) -> Result<(), EsCallError> {
        self.call("unmute_all_target_paths", Call::UnmuteAllTargetPaths)
    }
    fn target_path_muting_inverted(&self) -> Result<bool, EsCallError> {
        Ok(*self.inverted.lock().unwrap())
    }
    fn invert_target_path_muting(&self) -> Result<(), EsCallError> {
        self.call("invert_target_path_muting", Call::Invert)?;
        let mut inverted = self.inverted.lock().unwrap();
        *inverted = !*inverted;
        Ok(())
    }
    fn clear_cache(&self) -> Result<(), EsCallError> {
        self.call("clear_cache", Call::ClearCache)
    }
}

/// A check run just before each clone, with the clone's source.
type BeforeClone = Box<dyn Fn(&Path) + Send + Sync>;

/// The [`Cloner`] of tests: copies for real (so that what is kept can be compared byte for
/// byte), and records the sources it cloned.
#[derive(Default)]
pub struct FakeCloner {
    /// Reported as clonefile does ([`KeptHow::Reflinked`]: no copy limit) when set.
    pub reflinks: bool,
    /// Every clone fails with this errno (`EXDEV`, `ENOTSUP`) when set.
    pub errno: Option<i32>,
    /// Each clone takes this long first.
    pub delay: Option<Duration>,
    pub before: Option<BeforeClone>,
    /// The sources cloned so far ([`FakeCloner::cloned`]).
    pub cloned: Mutex<Vec<PathBuf>>,
}

impl FakeCloner {
    pub fn cloned(&self) -> Vec<PathBuf> {
        self.cloned.lock().unwrap().clone()
    }
}

impl Cloner for FakeCloner {
    fn way(&self) -> KeptHow {
        if self.reflinks {
            KeptHow::Reflinked
        } else {
            KeptHow::Copied
        }
    }

    fn clone_file(
        &self,
        source: &Path,
        target: &Path,
        expect: Option<crate::platform::macos::keep::FileId>,
    ) -> std::io::Result<()> {
        if let Some(check) = &self.before {
            check(source);
        }
        if let Some(delay) = self.delay {
            std::thread::sleep(delay);
        }
        if let Some(errno) = self.errno {
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        CopyCloner.clone_file(source, target, expect)?;
        self.cloned.lock().unwrap().push(source.to_path_buf());
        Ok(())
    }
}
