//! `agent-guard undo list|restore|purge`: what agents destroyed in zones that keep, and getting
//! it back (docs/snapshots.md). One file per subcommand.
//!
//! `list` only reads (agents may run it); `restore` and `purge` change the zones or the store and
//! are the human's: they refuse to run inside an agent's tree.

mod list;
mod purge;
mod restore;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::audit::{AuditReader, AuditStoreError, KeptQuery, StoredKept};
use crate::overrides::AGENT_ENV;
use crate::paths::{absolute, process_env, Locations};
use crate::snapshots::SessionId;

#[derive(clap::Subcommand, Debug)]
pub enum UndoCommand {
    /// What was kept, grouped by agent session, with sizes and how each entry was kept.
    List(list::ListArgs),
    /// Put kept entries back (the state before the agent first touched each path).
    Restore(restore::RestoreArgs),
    /// Remove sessions from the snapshot store to free room (and expired ones).
    Purge(purge::PurgeArgs),
}

pub fn run(cmd: UndoCommand) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    match cmd {
        UndoCommand::List(args) => list::run(&args, &locations),
        UndoCommand::Restore(args) => restore::run(&args, &locations),
        UndoCommand::Purge(args) => purge::run(&args, &locations),
    }
}

/// Which kept entries a command is about.
#[derive(clap::Args, Debug, Default)]
pub struct Selection {
    /// Only this agent session (as `undo list` shows it).
    #[arg(long, value_name = "SESSION", value_parser = parse_session)]
    pub session: Option<SessionId>,
    /// Only what was kept at or after this time: a duration ago (30s, 2m, 1h, 1d) or an RFC
    /// 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = super::parse_when)]
    pub since: Option<SystemTime>,
    /// Only this path and what lies under it (relative to the current directory when not
    /// absolute).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
}

fn parse_session(text: &str) -> Result<SessionId, String> {
    SessionId::parse(text).map_err(|e| e.to_string())
}

impl Selection {
    fn query(&self, ids: &[i64]) -> KeptQuery {
        KeptQuery {
            ids: ids.to_vec(),
            session: self.session.as_ref().map(ToString::to_string),
            since_ms: self.since.map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0)
            }),
            path_prefix: self
                .path
                .as_deref()
                .map(|p| absolute(p).display().to_string()),
        }
    }
}

/// The kept rows matching `q`; none when there is no audit database yet.
fn kept_rows(locations: &Locations, q: &KeptQuery) -> anyhow::Result<Vec<StoredKept>> {
    match AuditReader::open(&locations.audit_db) {
        Ok(reader) => Ok(reader.kept(q)?),
        Err(AuditStoreError::Missing { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `restore` and `purge` write as the human: refused inside an agent's tree (exit 1, as a
/// refused override operation). A courtesy: the store is unreadable to agents anyway, and what
/// a restore would write, the zones' rules judge.
fn refuse_agents(command: &str) -> anyhow::Result<()> {
    match process_env(AGENT_ENV).filter(|v| !v.is_empty()) {
        Some(agent) => Err(super::Exit::refused(format!(
            "agent-guard undo {command} must be run by a human, not by an agent: this process runs under agent-guard as agent {agent:?} ({AGENT_ENV} is set); ask the user to run it in their own terminal"
        ))),
        None => Ok(()),
    }
}
