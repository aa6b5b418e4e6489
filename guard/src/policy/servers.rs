//! `command_servers`: the programs that, listening on a local socket outside an agent's tree,
//! would run commands or use credentials for it (tmux, screen, dockerd, the D-Bus and systemd
//! session buses, at daemons, ssh-agent, gpg-agent). An agent may not connect to them: an argv
//! rule on `tmux` cannot stop a client that speaks tmux's protocol itself.
//!
//! Matched against the listening process's real executable, never a name it gives itself.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The servers an agent may not connect to, by real executable.
#[derive(Clone, Debug, Default)]
pub struct CommandServers {
    /// Basenames (`tmux`): any executable of that name.
    names: HashSet<String>,
    /// Absolute paths: that executable only.
    exes: HashSet<PathBuf>,
}

impl CommandServers {
    /// From the policy's entries: a basename or an absolute path each. The error is the index
    /// of the bad entry and what was expected.
    pub fn parse(entries: &[String]) -> Result<CommandServers, (usize, &'static str)> {
        let mut servers = CommandServers::default();
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err((i, "expected a program name (`tmux`) or an absolute path"));
            }
            if entry.starts_with('/') {
                servers
                    .exes
                    .insert(crate::vocab::path::clean(Path::new(entry)));
            } else if entry.contains('/') {
                return Err((
                    i,
                    "expected a program name without `/` (`tmux`) or an absolute path",
                ));
            } else {
                servers.names.insert(entry.to_string());
            }
        }
        Ok(servers)
    }

    /// Whether `exe`, the real executable of a listening process, is one of these servers.
    pub fn identifies(&self, exe: &Path) -> bool {
        self.exes.contains(exe)
            || exe
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| self.names.contains(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_basename_and_paths_the_whole_executable() {
        let s = CommandServers::parse(&["tmux".into(), "/usr/libexec/at/atd".into()]).unwrap();
        assert!(s.identifies(Path::new("/usr/bin/tmux")));
        assert!(s.identifies(Path::new("/opt/tmux/bin/tmux")));
        assert!(!s.identifies(Path::new("/usr/bin/tmux2")));
        assert!(s.identifies(Path::new("/usr/libexec/at/atd")));
        assert!(!s.identifies(Path::new("/usr/sbin/atd")));
        assert_eq!(CommandServers::parse(&["".into()]).unwrap_err().0, 0);
        assert_eq!(
            CommandServers::parse(&["x".into(), "bin/tmux".into()])
                .unwrap_err()
                .0,
            1
        );
    }
}
