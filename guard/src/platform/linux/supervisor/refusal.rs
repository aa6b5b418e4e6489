//! A call refused because acting on it would lend the supervisor's power beyond the agent's own
//! (a process outside the tree, a raw device): the [`Action`] that says what was attempted,
//! carried through `io::Error` so that path resolution, deep in a plan, can raise it. The
//! handler records it through the judge and answers EPERM whatever the verdict.
//!
//! Nothing here decides: the plans and the resolver say what is refused.

use std::fmt;
use std::io;

use crate::engine::Action;

/// What was refused.
#[derive(Debug)]
pub struct Refused(pub Action);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {:?}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The error a plan or the resolver returns for a refused `action`.
pub fn refused(action: Action) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Refused(action))
}

/// The refused action an error carries, if it is a refusal.
pub fn refusal_of(error: &io::Error) -> Option<&Action> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
        .map(|r| &r.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_survives_the_trip_through_io_error() {
        let e = refused(Action::Trace {
            target_pid: 7,
            path: None,
        });
        assert!(matches!(
            refusal_of(&e),
            Some(Action::Trace { target_pid: 7, .. })
        ));
        assert!(refusal_of(&io::Error::from_raw_os_error(libc::EPERM)).is_none());
    }
}
