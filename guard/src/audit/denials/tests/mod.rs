//! Tests of the denial log against real files, grouped by subject in the files beside this one;
//! here are the helpers.

mod read;
mod refuse;
mod rotate;
mod write;

use std::collections::HashSet;
use std::fs::{self, File};
use std::ops::ControlFlow;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::rotate::STALE_ROTATION_LOCK;
use super::*;
use crate::vocab::{Decision, OpKind, RuleId};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A record whose path says who logged it (`/w/<thread>/<n>`); padded to a realistic size.
fn record(thread: usize, n: usize) -> DenialRecord {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let ms = 1_700_000_000_000u64 + seq as u64;
    DenialRecord {
        id: format!("{ms}-test-{seq}"),
        ts: ms / 1000,
        time: crate::vocab::time::rfc3339_from_millis(ms as i64),
        op: OpKind::Unlink,
        path: format!("/w/{thread}/{n}"),
        dest: None,
        zone: Some("/w".into()),
        process: "rm".into(),
        ancestor: "claude".into(),
        pid: 1000 + thread as i32,
        exe: "/usr/bin/rm".into(),
        agent_pid: 999,
        rule: RuleId::ProtectedDelete,
        decision: Decision::Deny,
        reason: "Deleting files in /w is blocked for AI agents; leave the file in place or \
                 ask the user for an override."
            .into(),
        hint: format!("agent-guard override request --op unlink --path /w/{thread}/{n}"),
        argv: None,
        repeated: None,
    }
}

fn config(max_bytes: u64, keep: usize, queue_capacity: usize) -> DenialLogConfig {
    DenialLogConfig {
        max_bytes,
        keep,
        queue_capacity,
        on_create: None,
    }
}

/// Every line of every log file, checking that each ends with a newline.
fn all_lines(path: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for file in log_files(path).unwrap() {
        let text = fs::read_to_string(&file).unwrap();
        if text.is_empty() {
            continue;
        }
        assert!(
            text.ends_with('\n'),
            "{} ends inside a line",
            file.display()
        );
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}
