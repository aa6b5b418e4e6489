//! The real [`EsClient`]: `libEndpointSecurity` through endpoint-sec-sys.
//!
//! endpoint-sec's own `Client` cannot answer from another thread (it is `!Send` and keeps its
//! `es_client_t` private), and answering from the decision workers is the point: so the client
//! is made here, from the raw API, as Santa's `EndpointSecurityAPI` does. What makes that sound:
//! - Apple's client functions may be called from any thread, except `es_new_client` and
//!   `es_delete_client`, which must be called on the same one: [`ClientOwner`] makes the client
//!   and deletes it when dropped, and never leaves the client thread;
//! - no call reaches a deleted client: [`RealClient`] holds the pointer under a lock that the
//!   delete takes for writing and empties;
//! - a message answered later is retained (`es_retain_message`) by [`RetainedMessage`] and
//!   released when dropped.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Arc, RwLock};

use endpoint_sec::AuditToken;
use endpoint_sec_sys::block2::RcBlock;
use endpoint_sec_sys::{
    es_action_type_t, es_auth_result_t, es_client_t, es_delete_client, es_event_type_t,
    es_invert_muting, es_message_t, es_mute_inversion_type_t, es_mute_path_events,
    es_mute_path_type_t, es_mute_process, es_muting_inverted, es_new_client, es_release_message,
    es_respond_auth_result, es_respond_flags_result, es_retain_message, es_return_t, es_subscribe,
    es_unmute_all_target_paths, es_unmute_path_events, es_unsubscribe_all, MuteInvertedType,
    NewClientError,
};

use crate::platform::macos::api::{EsCallError, EsClient, EsEventKind, KernelAnswer, PathMute};

/// A message ES delivered, retained until dropped.
pub struct RetainedMessage(NonNull<es_message_t>);

// SAFETY: a delivered `es_message_t` is never written again, and Apple documents retaining a
// message precisely to handle it on another thread ("out of order responding"); retain and
// release are thread-safe reference counting.
unsafe impl Send for RetainedMessage {}
// SAFETY: as above: shared references only read an immutable message.
unsafe impl Sync for RetainedMessage {}

impl RetainedMessage {
    /// Retain a message the handler block was given.
    ///
    /// # Safety
    /// `message` must be the live message ES passed to the handler block, during the call.
    pub unsafe fn retain(message: NonNull<es_message_t>) -> RetainedMessage {
        // SAFETY: the caller guarantees a live message; retaining extends its life until the
        // matching release in `Drop`.
        unsafe { es_retain_message(message.as_ref()) };
        RetainedMessage(message)
    }
}

impl Drop for RetainedMessage {
    fn drop(&mut self) {
        // SAFETY: retained in `retain`, released exactly once here.
        unsafe { es_release_message(self.0.as_ref()) };
    }
}

/// One ES client, callable from any thread until its [`ClientOwner`] deletes it.
pub struct RealClient {
    raw: RwLock<Option<NonNull<es_client_t>>>,
    own_token: AuditToken,
}

// SAFETY: every use of the pointer is a call Apple allows from any thread, made under the read
// lock, and the only delete (in `ClientOwner::drop`, on the creating thread) takes the write lock
// and empties it first, so no call races a delete or follows it.
unsafe impl Send for RealClient {}
// SAFETY: as above.
unsafe impl Sync for RealClient {}

impl RealClient {
    fn with<R>(
        &self,
        call: &'static str,
        f: impl FnOnce(*mut es_client_t) -> R,
    ) -> Result<R, EsCallError> {
        let raw = self.raw.read().unwrap_or_else(|e| e.into_inner());
        match *raw {
            Some(client) => Ok(f(client.as_ptr())),
            None => Err(EsCallError {
                call,
                detail: "the client was deleted".into(),
            }),
        }
    }
}

/// `es_mute_path_events` and `es_unmute_path_events`, which take the same arguments.
type PathEventsFn = unsafe extern "C" fn(
    *mut es_client_t,
    *const std::ffi::c_char,
    es_mute_path_type_t,
    *const es_event_type_t,
    usize,
) -> es_return_t;

impl RealClient {
    fn path_events(
        &self,
        call: &'static str,
        f: PathEventsFn,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError> {
        let c_path = c_path(call, path)?;
        let types = es_types(events);
        // SAFETY: a live client (under the lock), a NUL-terminated path and `len` event types.
        self.with(call, |c| unsafe {
            f(
                c,
                c_path.as_ptr(),
                path_type(how),
                types.as_ptr(),
                types.len(),
            )
        })?
        .ok()
        .map_err(|e| failed(call, format!("{}: {e:?}", path.display())))
    }
}

fn failed(call: &'static str, detail: impl std::fmt::Debug) -> EsCallError {
    EsCallError {
        call,
        detail: format!("{detail:?}"),
    }
}

/// Makes the client on the calling thread and deletes it when dropped (on the same thread: it
/// is `!Send`).
pub struct ClientOwner {
    client: Arc<RealClient>,
    /// ES holds its own copy of the block; this one is kept until the client is gone.
    _block: RcBlock<dyn Fn(NonNull<es_client_t>, NonNull<es_message_t>)>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ClientOwner {
    /// `es_new_client` with `handler` called for every message (on ES's queue, one at a time).
    /// The handler sets the flag it is given once the message is in the glue's hands (which
    /// answers it whatever happens next). An AUTH message it did not hand over (it panicked
    /// first, or had no glue yet) is allowed here rather than left for ES to kill the client
    /// over.
    pub fn new(
        own_token: AuditToken,
        handler: impl Fn(NonNull<es_message_t>, &Cell<bool>) + 'static,
    ) -> Result<ClientOwner, NewClientError> {
        let block: RcBlock<dyn Fn(NonNull<es_client_t>, NonNull<es_message_t>)> = RcBlock::new(
            move |client: NonNull<es_client_t>, message: NonNull<es_message_t>| {
                let handed_over = Cell::new(false);
                // A panic must not unwind into ES; what it left unanswered is answered below.
                let _ = catch_unwind(AssertUnwindSafe(|| handler(message, &handed_over)));
                if !handed_over.get() {
                    // SAFETY: both pointers are the live ones ES passed to this call.
                    unsafe { answer_unhandled(client, message) };
                }
            },
        );
        let mut raw: *mut es_client_t = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; the block outlives the client (kept in the
        // owner, and ES copies it).
        unsafe { es_new_client(&mut raw, &block) }.ok()?;
        let raw = NonNull::new(raw).ok_or(NewClientError::Internal)?;
        Ok(ClientOwner {
            client: Arc::new(RealClient {
                raw: RwLock::new(Some(raw)),
                own_token,
            }),
            _block: block,
            _not_send: std::marker::PhantomData,
        })
    }

    pub fn client(&self) -> &Arc<RealClient> {
        &self.client
    }
}

impl Drop for ClientOwner {
    fn drop(&mut self) {
        let mut raw = self.client.raw.write().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = raw.take() {
            // SAFETY: made by `es_new_client` on this thread (the owner is `!Send`), deleted
            // once; no other call can use it after `take` under the write lock.
            let _ = unsafe { es_delete_client(client.as_ptr()) };
        }
    }
}

/// The last resort of the handler block: allow an AUTH message the glue did not take (a
/// notification needs nothing).
///
/// # Safety
/// `client` and `message` must be the live pointers ES passed to the handler block.
unsafe fn answer_unhandled(client: NonNull<es_client_t>, message: NonNull<es_message_t>) {
    // SAFETY: live per the caller.
    let m = unsafe { message.as_ref() };
    if m.action_type != es_action_type_t::ES_ACTION_TYPE_AUTH {
        return;
    }
    if m.event_type == es_event_type_t::ES_EVENT_TYPE_AUTH_OPEN {
        // SAFETY: live per the caller.
        let _ = unsafe { es_respond_flags_result(client.as_ptr(), m, u32::MAX, false) };
    } else {
        // SAFETY: live per the caller.
        let _ = unsafe {
            es_respond_auth_result(
                client.as_ptr(),
                m,
                es_auth_result_t::ES_AUTH_RESULT_ALLOW,
                false,
            )
        };
    }
}

/// The ES type of one of our event kinds.
pub fn es_type(kind: EsEventKind) -> es_event_type_t {
    use es_event_type_t as T;
    match kind {
        EsEventKind::AuthExec => T::ES_EVENT_TYPE_AUTH_EXEC,
        EsEventKind::AuthSignal => T::ES_EVENT_TYPE_AUTH_SIGNAL,
        EsEventKind::AuthGetTask => T::ES_EVENT_TYPE_AUTH_GET_TASK,
        EsEventKind::AuthProcSuspendResume => T::ES_EVENT_TYPE_AUTH_PROC_SUSPEND_RESUME,
        EsEventKind::AuthUnlink => T::ES_EVENT_TYPE_AUTH_UNLINK,
        EsEventKind::AuthRename => T::ES_EVENT_TYPE_AUTH_RENAME,
        EsEventKind::AuthOpen => T::ES_EVENT_TYPE_AUTH_OPEN,
        EsEventKind::AuthTruncate => T::ES_EVENT_TYPE_AUTH_TRUNCATE,
        EsEventKind::AuthLink => T::ES_EVENT_TYPE_AUTH_LINK,
        EsEventKind::AuthCreate => T::ES_EVENT_TYPE_AUTH_CREATE,
        EsEventKind::AuthClone => T::ES_EVENT_TYPE_AUTH_CLONE,
        EsEventKind::AuthCopyFile => T::ES_EVENT_TYPE_AUTH_COPYFILE,
        EsEventKind::AuthExchangeData => T::ES_EVENT_TYPE_AUTH_EXCHANGEDATA,
        EsEventKind::AuthSetMode => T::ES_EVENT_TYPE_AUTH_SETMODE,
        EsEventKind::AuthSetOwner => T::ES_EVENT_TYPE_AUTH_SETOWNER,
        EsEventKind::AuthSetFlags => T::ES_EVENT_TYPE_AUTH_SETFLAGS,
        EsEventKind::AuthSetAcl => T::ES_EVENT_TYPE_AUTH_SETACL,
        EsEventKind::AuthSetExtAttr => T::ES_EVENT_TYPE_AUTH_SETEXTATTR,
        EsEventKind::AuthDeleteExtAttr => T::ES_EVENT_TYPE_AUTH_DELETEEXTATTR,
        EsEventKind::AuthUtimes => T::ES_EVENT_TYPE_AUTH_UTIMES,
        EsEventKind::AuthSetAttrList => T::ES_EVENT_TYPE_AUTH_SETATTRLIST,
        EsEventKind::NotifyExec => T::ES_EVENT_TYPE_NOTIFY_EXEC,
        EsEventKind::NotifyFork => T::ES_EVENT_TYPE_NOTIFY_FORK,
        EsEventKind::NotifyExit => T::ES_EVENT_TYPE_NOTIFY_EXIT,
    }
}

/// Our kind of an ES event type, for the types the daemon subscribes to.
pub fn kind_of(es: es_event_type_t) -> Option<EsEventKind> {
    EsEventKind::ALL
        .into_iter()
        .find(|kind| es_type(*kind) == es)
}

fn es_types(events: &[EsEventKind]) -> Vec<es_event_type_t> {
    events.iter().copied().map(es_type).collect()
}

fn path_type(how: PathMute) -> es_mute_path_type_t {
    match how {
        PathMute::Prefix => es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_PREFIX,
        PathMute::Literal => es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_LITERAL,
    }
}

fn c_path(call: &'static str, path: &Path) -> Result<CString, EsCallError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| failed(call, e))
}

const TARGET_PATH: es_mute_inversion_type_t =
    es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_TARGET_PATH;

impl EsClient for RealClient {
    type Message = RetainedMessage;

    fn subscribe(&self, events: &[EsEventKind]) -> Result<(), EsCallError> {
        let types = es_types(events);
        // SAFETY: a live client (under the lock) and a slice of `len` event types.
        self.with("es_subscribe", |c| unsafe {
            es_subscribe(c, types.as_ptr(), types.len() as u32)
        })?
        .ok()
        .map_err(|e| failed("es_subscribe", e))
    }

    fn unsubscribe_all(&self) -> Result<(), EsCallError> {
        // SAFETY: a live client (under the lock).
        self.with("es_unsubscribe_all", |c| unsafe { es_unsubscribe_all(c) })?
            .ok()
            .map_err(|e| failed("es_unsubscribe_all", e))
    }

    fn respond(
        &self,
        message: &RetainedMessage,
        answer: KernelAnswer,
        cache: bool,
    ) -> Result<(), EsCallError> {
        // SAFETY: the message is retained by `message`.
        let m = unsafe { message.0.as_ref() };
        match answer {
            KernelAnswer::Flags(flags) => self
                // SAFETY: a live client (under the lock) and a retained AUTH_OPEN message.
                .with("es_respond_flags_result", |c| unsafe {
                    es_respond_flags_result(c, m, flags, cache)
                })?
                .ok()
                .map_err(|e| failed("es_respond_flags_result", e)),
            KernelAnswer::Auth { allow } => {
                let result = if allow {
                    es_auth_result_t::ES_AUTH_RESULT_ALLOW
                } else {
                    es_auth_result_t::ES_AUTH_RESULT_DENY
                };
                // SAFETY: a live client (under the lock) and a retained AUTH message.
                self.with("es_respond_auth_result", |c| unsafe {
                    es_respond_auth_result(c, m, result, cache)
                })?
                .ok()
                .map_err(|e| failed("es_respond_auth_result", e))
            }
        }
    }

    fn mute_self(&self) -> Result<(), EsCallError> {
        let token = self.own_token.raw_token();
        // SAFETY: a live client (under the lock) and a valid audit token.
        self.with("es_mute_process", |c| unsafe { es_mute_process(c, token) })?
            .ok()
            .map_err(|e| failed("es_mute_process", e))
    }

    fn mute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError> {
        self.path_events(
            "es_mute_path_events",
            es_mute_path_events,
            path,
            how,
            events,
        )
    }

    fn unmute_target_path(
        &self,
        path: &Path,
        how: PathMute,
        events: &[EsEventKind],
    ) -> Result<(), EsCallError> {
        self.path_events(
            "es_unmute_path_events",
            es_unmute_path_events,
            path,
            how,
            events,
        )
    }

    fn unmute_all_target_paths(&self) -> Result<(), EsCallError> {
        // SAFETY: a live client (under the lock).
        self.with("es_unmute_all_target_paths", |c| unsafe {
            es_unmute_all_target_paths(c)
        })?
        .ok()
        .map_err(|e| failed("es_unmute_all_target_paths", e))
    }

    fn target_path_muting_inverted(&self) -> Result<bool, EsCallError> {
        // SAFETY: a live client (under the lock).
        self.with("es_muting_inverted", |c| unsafe {
            es_muting_inverted(c, TARGET_PATH)
        })?
        .ok()
        .map(|state| matches!(state, MuteInvertedType::Inverted))
        .map_err(|e| failed("es_muting_inverted", e))
    }

    fn invert_target_path_muting(&self) -> Result<(), EsCallError> {
        // SAFETY: a live client (under the lock).
        self.with("es_invert_muting", |c| unsafe {
            es_invert_muting(c, TARGET_PATH)
        })?
        .ok()
        .map_err(|e| failed("es_invert_muting", e))
    }

    fn clear_cache(&self) -> Result<(), EsCallError> {
        // SAFETY: a live client (under the lock).
        self.with("es_clear_cache", |c| unsafe {
            endpoint_sec_sys::es_clear_cache(c)
        })?
        .ok()
        .map_err(|e| failed("es_clear_cache", e))
    }
}
