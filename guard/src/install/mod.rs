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
            backups.push(back_up(path, now)?);
        }
        match &change.after {
            Some(text) => {
                let tmp = new_beside(path, text, mode)?;
                unchanged_since_plan(change)?;
                tmp.persist(path)
                    .map_err(|e| IoError::at(path, "replace")(e.error))?;
            }
            None => {
                unchanged_since_plan(change)?;
                std::fs::remove_file(path).map_err(IoError::at(path, "remove"))?
            }
        }
    }
    Ok(backups)
}

/// A copy of `path` beside it, `NAME.agent-guard-backup-UNIXSECS` (`.1`, `.2`, ... when taken),
/// with its mode. Made exclusively: a name someone put there first (a symlink an agent planted
/// for the human's next install) is never written through.
pub(crate) fn back_up(path: &Path, now: u64) -> Result<PathBuf, IoError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut from = std::fs::File::open(path).map_err(IoError::at(path, "back up"))?;
    let mode = from
        .metadata()
        .map_err(IoError::at(path, "back up"))?
        .permissions()
        .mode();
    for n in 0..100 {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".agent-guard-backup-{now}"));
        if n > 0 {
            name.push(format!(".{n}"));
        }
        let backup = PathBuf::from(name);
        let mut to = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&backup)
        {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            other => other.map_err(IoError::at(&backup, "create the backup"))?,
        };
        std::io::copy(&mut from, &mut to).map_err(IoError::at(&backup, "write the backup"))?;
        to.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(IoError::at(&backup, "keep the mode of"))?;
        return Ok(backup);
    }
    Err(IoError::at(path, "back up")(std::io::Error::from(
        std::io::ErrorKind::AlreadyExists,
    )))
}

/// `text` in a new file of a random name beside `path` (its directory made when missing),
/// with `mode`, to be renamed over it: never a name someone could have put there first.
pub(crate) fn new_beside(
    path: &Path,
    text: &str,
    mode: Option<u32>,
) -> Result<tempfile::NamedTempFile, IoError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(IoError::at(dir, "create the directory"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".agent-guard-")
        .tempfile_in(dir)
        .map_err(IoError::at(dir, "write a new file in"))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(IoError::at(tmp.path(), "write"))?;
    if let Some(mode) = mode {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(IoError::at(tmp.path(), "keep the mode of"))?;
    }
    Ok(tmp)
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

    /// An agent plants a symlink where the human's next install will put its backup: the
    /// backup is made elsewhere and the link's target is left as it was.
    #[test]
    fn a_name_planted_where_the_backup_goes_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, victim) = (dir.path().join("settings.json"), dir.path().join("bashrc"));
        std::fs::write(&settings, "{}\n").unwrap();
        std::fs::write(&victim, "the human's bashrc\n").unwrap();
        let planted = dir.path().join("settings.json.agent-guard-backup-7");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let plan = Plan {
            changes: vec![Change {
                path: settings.clone(),
                before: Some("{}\n".into()),
                after: Some("{\"ours\": true}\n".into()),
                what: "an entry".into(),
            }],
            notes: Vec::new(),
        };
        let backups = apply(&plan, 7).unwrap();
        assert_eq!(
            backups,
            [dir.path().join("settings.json.agent-guard-backup-7.1")]
        );
        assert_eq!(std::fs::read_to_string(&backups[0]).unwrap(), "{}\n");
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "the human's bashrc\n"
        );
        assert_eq!(
            std::fs::read_to_string(&settings).unwrap(),
            "{\"ours\": true}\n"
        );
        assert!(std::fs::symlink_metadata(&settings).unwrap().is_file());
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
