//! The seam between the daemon and Apple's Endpoint Security library: every call the daemon
//! makes on a client ([`EsClient`]), as Santa's `EndpointSecurityAPI` is for Santa.
//!
//! The real implementation (`es::client`, macOS only) calls `libEndpointSecurity` through
//! endpoint-sec-sys; `fake::FakeClient` (tests) records every call. Everything between ES
//! delivering a message and the answer going back (the `glue`) talks only to this trait, so it
//! is tested on Linux with synthetic messages: that every AUTH message is answered exactly once
//! on every path, released after its answer, and that mutes follow the policy.
//!
//! A delivered message is an [`EsClient::Message`]: holding one keeps the kernel's message
//! alive (`es_retain_message`), dropping it releases it (`es_release_message`). The glue holds
//! exactly one per AUTH message until it has answered.

use std::fmt;
use std::path::Path;

/// The event types the daemon subscribes to or mutes, in the daemon's own names (the real
/// client maps them to `es_event_type_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EsEventKind {
    AuthExec,
    AuthSignal,
    AuthGetTask,
    AuthProcSuspendResume,
    AuthUnlink,
    AuthRename,
    AuthOpen,
    AuthTruncate,
    AuthLink,
    AuthCreate,
    AuthClone,
    AuthCopyFile,
    AuthExchangeData,
    AuthSetMode,
    AuthSetOwner,
    AuthSetFlags,
    AuthSetAcl,
    AuthSetExtAttr,
    AuthDeleteExtAttr,
    AuthUtimes,
    AuthSetAttrList,
    NotifyExec,
    NotifyFork,
    NotifyExit,
}

impl EsEventKind {
    pub const ALL: [EsEventKind; 24] = [
        EsEventKind::AuthExec,
        EsEventKind::AuthSignal,
        EsEventKind::AuthGetTask,
        EsEventKind::AuthProcSuspendResume,
        EsEventKind::AuthUnlink,
        EsEventKind::AuthRename,
        EsEventKind::AuthOpen,
        EsEventKind::AuthTruncate,
        EsEventKind::AuthLink,
        EsEventKind::AuthCreate,
        EsEventKind::AuthClone,
        EsEventKind::AuthCopyFile,
        EsEventKind::AuthExchangeData,
        EsEventKind::AuthSetMode,
        EsEventKind::AuthSetOwner,
        EsEventKind::AuthSetFlags,
        EsEventKind::AuthSetAcl,
        EsEventKind::AuthSetExtAttr,
        EsEventKind::AuthDeleteExtAttr,
        EsEventKind::AuthUtimes,
        EsEventKind::AuthSetAttrList,
        EsEventKind::NotifyExec,
        EsEventKind::NotifyFork,
        EsEventKind::NotifyExit,
    ];

    /// Whether it is a file AUTH event, selected by target path on the file client.
    pub fn is_file_auth(self) -> bool {
        self.is_auth()
            && !matches!(
                self,
                EsEventKind::AuthExec
                    | EsEventKind::AuthSignal
                    | EsEventKind::AuthGetTask
                    | EsEventKind::AuthProcSuspendResume
            )
    }

    /// Whether ES holds the operation until the client answers.
    pub fn is_auth(self) -> bool {
        !matches!(
            self,
            EsEventKind::NotifyExec | EsEventKind::NotifyFork | EsEventKind::NotifyExit
        )
    }
}

/// How a target path is selected (with inverted target-path muting, muting selects).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathMute {
    /// Everything under the path (`ES_MUTE_PATH_TYPE_TARGET_PREFIX`).
    Prefix,
    /// Exactly the path (`ES_MUTE_PATH_TYPE_TARGET_LITERAL`).
    Literal,
}

/// An Endpoint Security call that failed: which, and what ES said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsCallError {
    pub call: &'static str,
    pub detail: String,
}

impl fmt::Display for EsCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.detail)
    }
}

impl std::error::Error for EsCallError {}

/// What goes back to the kernel for one AUTH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelAnswer {
    /// `es_respond_auth_result`: allow or deny.
    Auth { allow: bool },
    /// `es_respond_flags_result` for AUTH_OPEN: the flags authorized, all or none.
    Flags(u32),
}

impl KernelAnswer {
    /// AUTH_OPEN answers with flags (0 denies, `u32::MAX` allows whatever was asked); every
    /// other AUTH event with a plain result.
    pub fn of(is_open: bool, allow: bool) -> KernelAnswer {
        if is_open {
            KernelAnswer::Flags(if allow { u32::MAX } else { 0 })
        } else {
            KernelAnswer::Auth { allow }
        }
    }

    pub fn allows(self) -> bool {
        match self {
            KernelAnswer::Auth { allow } => allow,
            KernelAnswer::Flags(flags) => flags != 0,
        }
    }
}

/// Whether ES may cache an answer. Never: ES caches per file for every process, and every event
/// this daemon receives is inside a zone, where the answer depends on who acts; a cached allow
/// for a human's editor would let the next agent through.
pub const CACHE_ANSWERS: bool = false;

/// One Endpoint Security client: the calls the daemon makes on it. Every method may be called
/// from any thread (Apple's client functions are thread-safe, except creating and deleting a
/// client, which the real implementation does on the client's own thread).
pub trait EsClient: Send + Sync + 'static {
    /// A delivered message, retained while held.
    type Message: Send + Sync + 'static;

    fn subscribe(&self, events: &[EsEventKind]) -> Result<(), EsCallError>;
    fn unsubscribe_all(&self) -> Result<(), EsCallError>;
    /// `es_respond_auth_result` or `es_respond_flags_result`, as `answer` says.
    fn respond(
        &self,
        message: &Self::Message,
        answer: KernelAnswer,
        cache: bool,
    ) -> Result<(), EsCallError>;
    /// `es_mute_process` of the daemon itself: it must never wait for its own answers.
    fn mute_self(&self) -> Result<(), EsCallError>;
    /// `es_mute_path_events` for target paths.
    fn mute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError>;
    /// `es_unmute_path_events` for target paths.
    fn unmute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError>;
    fn unmute_all_target_paths(&self) -> Result<(), EsCallError>;
    fn target_path_muting_inverted(&self) -> Result<bool, EsCallError>;
    /// `es_invert_muting(ES_MUTE_INVERSION_TYPE_TARGET_PATH)`: flips the state.
    fn invert_target_path_muting(&self) -> Result<(), EsCallError>;
    fn clear_cache(&self) -> Result<(), EsCallError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_answers_with_flags_others_with_results() {
        assert_eq!(KernelAnswer::of(true, true), KernelAnswer::Flags(u32::MAX));
        assert_eq!(KernelAnswer::of(true, false), KernelAnswer::Flags(0));
        assert_eq!(
            KernelAnswer::of(false, false),
            KernelAnswer::Auth { allow: false }
        );
        assert!(KernelAnswer::of(false, true).allows());
        assert!(!KernelAnswer::of(true, false).allows());
        const { assert!(!CACHE_ANSWERS) };
        assert!(EsEventKind::AuthSetAcl.is_auth());
        assert!(!EsEventKind::NotifyExec.is_auth());
        let file: Vec<_> = EsEventKind::ALL
            .into_iter()
            .filter(|k| k.is_file_auth())
            .collect();
        assert_eq!(file.len(), 17, "{file:?}");
        assert!(file.contains(&EsEventKind::AuthSetAcl) && file.contains(&EsEventKind::AuthOpen));
        assert!(!file.contains(&EsEventKind::AuthExec) && !file.contains(&EsEventKind::NotifyFork));
    }
}
