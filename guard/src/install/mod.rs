//! `agent-guard install AGENT` / `uninstall AGENT`: agent-guard's hook, its MCP server
//! (`agent-guard mcp`), its instructions and (on Linux) the shell alias that runs the agent
//! under `agent-guard run`, merged into an agent's own settings files, idempotently, and taken
//! out again.
//!
//! Each agent's files are planned first ([`plan`]): every change is a whole new text for one
//! file, so it can be shown as a diff (`--dry-run`) before anything is written. Applying
//! ([`apply`]) copies each file it changes to a backup beside it first, then replaces it
//! atomically (temporary file, rename), keeping its mode. Merging only ever touches what is
//! agent-guard's: hook handlers whose command is agent-guard's, trust entries of those, the MCP
//! server entry named `agent-guard`, a block
//! between marker lines in a text file; everything else in the file is kept as it was. A file
//! that cannot be read as what it should be (settings that are not a JSON object) is an error
//! naming it, never overwritten.
//!
//! This module writes only the files its plan names, and only when asked to apply it.

mod agents;
mod codex_trust;
mod diff;
mod init;
mod mcp_servers;

use std::path::{Path, PathBuf};

pub use agents::{plan, Agent};
pub use codex_trust::codex_hook_trust;
pub use diff::unified_diff;
pub use init::{detect, starter_policy, Detected};

use crate::vocab::IoError;

/// Whether to put agent-guard in or take it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Install,
    Uninstall,
}

/// One file's new text (`None`: remove the file, which only happens to a file agent-guard
/// created whole and that holds nothing else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: Option<String>,
    /// What the change is, in a few words (`hooks PostToolUse, PostToolUseFailure`).
    pub what: String,
}

impl Change {
    pub fn is_noop(&self) -> bool {
        self.before == self.after
    }
}

/// Everything an install or uninstall would change, and what the user must still do by hand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Steps agent-guard cannot take for the user, said after the changes.
    pub notes: Vec<String>,
}

/// What went wrong, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: {message}; fix or move it, then run the command again (nothing was changed)")]
    Unreadable { path: PathBuf, message: String },
    #[error("no home directory: $HOME must be an absolute path")]
    NoHome,
    #[error("{path} exists already; `agent-guard init --force` replaces it (keeping a backup)")]
    Exists { path: PathBuf },
    /// The file is not what the plan was made from: something (a running agent rewriting its
    /// own settings) wrote it meanwhile. Its writes win; the caller plans again.
    #[error("{path} changed while agent-guard was merging into it (is the agent running and rewriting it?); it was left as the other writer made it: run the command again")]
    ChangedMeanwhile { path: PathBuf },
}

/// Read `path` as text; `None` when it does not exist.
pub(crate) fn read_text(path: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| InstallError::Unreadable {
                path: path.to_path_buf(),
                message: "not UTF-8 text".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::at(path, "read")(e).into()),
    }
}

/// Write every change of `plan` that changes something: a backup of the old file first
/// (`NAME.agent-guard-backup-UNIXSECS`), then the new text atomically. Returns the backups made.
///
/// An agent rewrites some of these files itself while it runs (Claude Code rewrites
/// `~/.claude.json` on every start), so a file is written only while it still holds the text
/// the plan was made from: all are compared before the first write, and each again just
/// before its rename. A file that changed is [`InstallError::ChangedMeanwhile`], and the other
/// writer's text is what stays. (The window left is the time of one rename.)
pub fn apply(plan: &Plan, now: u64) -> Result<Vec<PathBuf>, InstallError> {
    let changes: Vec<&Change> = plan.changes.iter().filter(|c| !c.is_noop()).collect();
    for change in &changes {
        unchanged_since_plan(change)?;
    }
    let mut backups = Vec::new();
    for change in changes {
        let path = &change.path;
        let mode = std::fs::metadata(path).ok().map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode()
        });
        if change.before.is_some() {
            let mut name = path.as_os_str().to_os_string();
            name.push(format!(".agent-guard-backup-{now}"));
            let backup = PathBuf::from(name);
            std::fs::copy(path, &backup).map_err(IoError::at(path, "back up"))?;
            backups.push(backup);
        }
        match &change.after {
            Some(text) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(IoError::at(dir, "create the directory"))?;
                }
                let mut tmp = path.as_os_str().to_os_string();
                tmp.push(".agent-guard-tmp");
                let tmp = PathBuf::from(tmp);
                std::fs::write(&tmp, text).map_err(IoError::at(&tmp, "write"))?;
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                        .map_err(IoError::at(&tmp, "keep the mode of"))?;
                }
                if let Err(e) = unchanged_since_plan(change) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
                std::fs::rename(&tmp, path).map_err(IoError::at(path, "replace"))?;
            }
            None => {
                unchanged_since_plan(change)?;
                std::fs::remove_file(path).map_err(IoError::at(path, "remove"))?
            }
        }
    }
    Ok(backups)
}

/// Whether `change.path` still holds what the plan read.
fn unchanged_since_plan(change: &Change) -> Result<(), InstallError> {
    if read_text(&change.path)? == change.before {
        Ok(())
    } else {
        Err(InstallError::ChangedMeanwhile {
            path: change.path.clone(),
        })
    }
}

/// `text` with the block between `begin` and `end` marker lines replaced by `block` (added at
/// the end when absent; taken out when `block` is `None`).
pub(crate) fn replace_block(text: &str, begin: &str, end: &str, block: Option<&str>) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.trim() == begin {
            // Skip to the end marker (or the end of the text, for a broken block).
            for inner in lines.by_ref() {
                if inner.trim() == end {
                    break;
                }
            }
            if let Some(block) = block {
                out.push_str(&format!("{begin}\n{}\n{end}\n", block.trim_end()));
            }
            replaced = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !replaced {
        if let Some(block) = block {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&format!("{begin}\n{}\n{end}\n", block.trim_end()));
        }
    }
    if block.is_none() {
        // Leave no run of blank lines where the block was.
        while out.ends_with("\n\n") {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_added_replaced_and_removed_leaving_the_rest() {
        let (b, e) = ("<!-- agent-guard:begin -->", "<!-- agent-guard:end -->");
        let mine = "# My notes\n\nkeep this\n";
        let added = replace_block(mine, b, e, Some("## agent-guard\ntext"));
        assert!(added.starts_with(mine), "{added}");
        assert!(added.contains("## agent-guard\ntext\n<!-- agent-guard:end -->"));
        assert_eq!(
            replace_block(&added, b, e, Some("## agent-guard\ntext")),
            added
        );
        let changed = replace_block(&added, b, e, Some("new"));
        assert!(
            changed.contains("new") && !changed.contains("text\n"),
            "{changed}"
        );
        assert_eq!(
            replace_block(&changed, b, e, None),
            "# My notes\n\nkeep this\n"
        );
        assert_eq!(replace_block("", b, e, Some("x")), format!("{b}\nx\n{e}\n"));
    }

    #[test]
    fn a_file_rewritten_after_planning_keeps_the_other_writers_text() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, other) = (dir.path().join("settings.json"), dir.path().join("b.md"));
        std::fs::write(&settings, "{\"a\": 1}\n").unwrap();
        let plan = Plan {
            changes: vec![
                Change {
                    path: other.clone(),
                    before: None,
                    after: Some("ours\n".into()),
                    what: "a block".into(),
                },
                Change {
                    path: settings.clone(),
                    before: Some("{\"a\": 1}\n".into()),
                    after: Some("{\"a\": 1, \"ours\": true}\n".into()),
                    what: "an entry".into(),
                },
            ],
            notes: Vec::new(),
        };
        // The agent rewrites its settings between the plan and its application.
        std::fs::write(&settings, "{\"a\": 2}\n").unwrap();
        let err = apply(&plan, 1).unwrap_err();
        assert!(
            matches!(&err, InstallError::ChangedMeanwhile { path } if *path == settings),
            "{err}"
        );
        assert!(err.to_string().contains("settings.json"), "{err}");
        assert_eq!(std::fs::read_to_string(&settings).unwrap(), "{\"a\": 2}\n");
        // Nothing was written: not even the file that had not changed.
        assert!(!other.exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no backup or temporary file is left");
    }
}
