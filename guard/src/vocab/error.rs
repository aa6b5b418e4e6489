//! The two error shapes every layer shares: a name that is not one of the names it must be
//! ([`UnknownName`]), and a file operation that failed ([`IoError`]).

use std::path::{Path, PathBuf};

/// A word from a file, a database row or the command line that is not one of the names it must
/// be: `unknown operation "delete": expected one of exec, unlink, ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected {expected}")]
pub struct UnknownName {
    /// What the word names (`operation`, `verdict`, `mode`, ...).
    pub what: &'static str,
    pub value: String,
    /// The names it may be, as a phrase.
    pub expected: &'static str,
}

impl UnknownName {
    /// The one of `names` whose name (`name_of`) is `value`, else the error that says what was
    /// expected: how every closed set of names in records and on the command line is parsed.
    pub fn find<T: Copy>(
        value: &str,
        names: &[T],
        name_of: impl Fn(T) -> &'static str,
        what: &'static str,
        expected: &'static str,
    ) -> Result<T, UnknownName> {
        names
            .iter()
            .copied()
            .find(|n| name_of(*n) == value)
            .ok_or_else(|| UnknownName {
                what,
                value: value.to_string(),
                expected,
            })
    }
}

/// A file operation that failed: the file, what was being done, and the system's error.
/// Displayed as `PATH: cannot WHAT: ERROR`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot {what}: {source}")]
pub struct IoError {
    pub path: PathBuf,
    /// What was being done, as a verb phrase (`read`, `append to the overrides audit trail`).
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// A `map_err` adapter: `.map_err(IoError::at(path, "read"))`.
    pub fn at(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> IoError {
        let path = path.to_path_buf();
        move |source| IoError { path, what, source }
    }

    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}
