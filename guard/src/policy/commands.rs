//! `command_dirs`: the user's own command directories (`~/.local/bin`, `~/bin`), which come
//! before the system's on the user's PATH. Installing a new command there is everyday work
//! (`pip install --user`, `install -m755 tool ~/.local/bin/`); a file there named like a system
//! command (`ls`, `git`, `sudo`) runs instead of it whenever the user types that name, outside
//! any agent's lineage. An agent may not put one there.
//!
//! The system's commands are listed when a policy loads (a machine's file system, read once);
//! matching is pure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the system's commands live, on Linux and macOS: what a user's command directory could
/// shadow.
pub const SYSTEM_COMMAND_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/opt/homebrew/bin",
    "/run/current-system/sw/bin",
];

/// The user's command directories and the names they must not take.
#[derive(Clone, Debug, Default)]
pub struct CommandDirs {
    dirs: Vec<PathBuf>,
    system: BTreeSet<String>,
}

impl CommandDirs {
    pub fn new(dirs: Vec<PathBuf>, system: BTreeSet<String>) -> CommandDirs {
        CommandDirs { dirs, system }
    }

    /// The command directory `path` is directly in, when its name is a system command's.
    pub fn shadowed_by(&self, path: &Path) -> Option<&Path> {
        let name = path.file_name()?.to_str()?;
        let parent = path.parent()?;
        if !self.system.contains(name) {
            return None;
        }
        self.dirs
            .iter()
            .find(|d| d.as_path() == parent)
            .map(PathBuf::as_path)
    }
}

impl CommandDirs {
    /// The command directory at or below `path`: a directory moved there would bring its
    /// programs, whatever their names, in one rename.
    pub fn at_or_below(&self, path: &Path) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.starts_with(path))
            .map(PathBuf::as_path)
    }
}

/// The names of the programs in `dirs` (entries that are not directories; a missing directory
/// adds nothing).
pub fn system_commands(dirs: &[&str]) -> BTreeSet<String> {
    dirs.iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| !t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_system_commands_name_directly_in_a_command_dir_shadows() {
        let dirs = CommandDirs::new(
            vec![PathBuf::from("/h/.local/bin")],
            ["ls".to_string(), "git".to_string()].into(),
        );
        assert_eq!(
            dirs.shadowed_by(Path::new("/h/.local/bin/ls")),
            Some(Path::new("/h/.local/bin"))
        );
        for other in [
            "/h/.local/bin/mytool",
            "/h/.local/bin/sub/ls",
            "/h/ls",
            "/h/.local/bin",
        ] {
            assert_eq!(dirs.shadowed_by(Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn the_machines_commands_are_listed() {
        let found = system_commands(&["/bin", "/usr/bin"]);
        assert!(found.contains("sh"), "{found:?}");
        assert!(system_commands(&["/nonexistent"]).is_empty());
    }
}
