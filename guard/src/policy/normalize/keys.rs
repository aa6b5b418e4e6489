//! One function per key of the policy file: each validates its key (naming the key path in its
//! errors), normalizes it for the engine, and says how it reads back in `policy show`.

use globset::{GlobMatcher, GlobSetBuilder};

use super::override_too_broad;
use super::paths::Normalizer;
use super::{parse_duration, parse_rfc3339, DEFAULT_MAX_OVERRIDE_TTL};
use crate::policy::file::{
    BrakeEntry, ExecRuleEntry, Expiry, OnDestroy, OverrideEntry, PolicyFile, ProtectedZoneEntry,
    ReadonlyZoneEntry, RetentionEntry, SnapshotsEntry, StringOr,
};
use crate::policy::zones::{PatternZone, PatternZones, Zone, ZoneIndex, ZoneKind};
use crate::policy::{
    BrakeLimits, CommandDirs, ExecRule, PolicyError, RunBy, SnapshotPolicy, TrustedTool,
};
use crate::vocab::path::clean;
use crate::vocab::{Grant, OpSet};

impl Normalizer<'_> {
    /// `ai_agent_patterns`: non-empty names.
    pub(super) fn agent_patterns(&self, file: &PolicyFile) -> Result<Vec<String>, PolicyError> {
        let patterns = file.ai_agent_patterns.clone().unwrap_or_default();
        for (i, p) in patterns.iter().enumerate() {
            if p.trim().is_empty() {
                return Err(self.invalid(
                    format!("ai_agent_patterns[{i}]"),
                    "expected a non-empty name",
                ));
            }
        }
        Ok(patterns)
    }

    /// agent-guard's own files (from the load context, not the file): guard zones whose
    /// agent-writable parts are carved out.
    pub(super) fn guard_zones(&self, zones: &mut Vec<Zone>) -> Result<(), PolicyError> {
        let writable: Vec<String> = self
            .ctx
            .agent_writable
            .iter()
            // The contents only: the directory itself stays guarded, so an agent cannot move it
            // away and put a symlink in its place for a human's command to follow.
            .map(|p| format!("{}/**", clean(p).display()))
            .collect();
        let except = self.glob_set(&writable, "agent-writable paths")?;
        for guard in &self.ctx.guard_paths {
            zones.push(Zone {
                kind: ZoneKind::Guard,
                root: clean(guard),
                except: except.clone(),
                on_destroy: OnDestroy::Deny,
                unreadable: false,
            });
        }
        // Inside the others (the store is in the state dir): the innermost guard zone of a path
        // is the one a lookup finds, so these are found for what is in them.
        for hidden in &self.ctx.unreadable {
            zones.push(Zone {
                kind: ZoneKind::Guard,
                root: clean(hidden),
                except: None,
                on_destroy: OnDestroy::Deny,
                unreadable: true,
            });
        }
        Ok(())
    }

    /// `protected_zones`: each root (and a symlinked root's target) with its carve-outs.
    pub(super) fn protected_zones(
        &self,
        file: &PolicyFile,
        zones: &mut Vec<Zone>,
    ) -> Result<Vec<StringOr<ProtectedZoneEntry>>, PolicyError> {
        let mut normalized = Vec::new();
        let entries = file.protected_zones.clone().unwrap_or_default();
        for (i, entry) in entries.into_iter().enumerate() {
            let entry: ProtectedZoneEntry = entry.into_object();
            let key = format!("protected_zones[{i}]");
            let mut except_patterns = Vec::new();
            for (j, pattern) in entry.except.iter().enumerate() {
                except_patterns.extend(self.glob_patterns(pattern, &format!("{key}.except[{j}]"))?);
            }
            let except = self.glob_set(&except_patterns, &format!("{key}.except"))?;
            let on_destroy = entry.on_destroy.unwrap_or_default();
            for root in self.zone_paths(&entry.path, &key)? {
                normalized.push(StringOr::Object(ProtectedZoneEntry {
                    path: root.display().to_string(),
                    except: except_patterns.clone(),
                    on_destroy: Some(on_destroy),
                }));
                zones.push(Zone {
                    kind: ZoneKind::Protected,
                    root,
                    except: except.clone(),
                    on_destroy,
                    unreadable: false,
                });
            }
        }
        Ok(normalized)
    }

    /// `secret_zones`: plain roots.
    /// `command_dirs`: directories as zones are written (`~` for each home). The system's
    /// commands they must not shadow are listed from this machine, when loading may read it.
    pub(super) fn command_dirs(&self, file: &PolicyFile) -> Result<CommandDirs, PolicyError> {
        let mut dirs = Vec::new();
        for (i, path) in file.command_dirs.iter().flatten().enumerate() {
            dirs.extend(self.zone_paths(path, &format!("command_dirs[{i}]"))?);
        }
        let system = if self.ctx.resolve_symlinks {
            crate::policy::commands::system_commands(crate::policy::commands::SYSTEM_COMMAND_DIRS)
        } else {
            Default::default()
        };
        Ok(CommandDirs::new(dirs, system))
    }

    pub(super) fn plain_zones(
        &self,
        list: &Option<Vec<String>>,
        name: &str,
        kind: ZoneKind,
        zones: &mut Vec<Zone>,
    ) -> Result<Vec<String>, PolicyError> {
        let mut normalized = Vec::new();
        for (i, path) in list.iter().flatten().enumerate() {
            for root in self.zone_paths(path, &format!("{name}[{i}]"))? {
                normalized.push(root.display().to_string());
                zones.push(Zone {
                    kind,
                    root,
                    except: None,
                    on_destroy: OnDestroy::Deny,
                    unreadable: false,
                });
            }
        }
        Ok(normalized)
    }

    /// `readonly_zones`: roots (with carve-outs) go to the zone index; entries that are globs
    /// (`**/.git/hooks/**`, `~/.local/lib/python*/site-packages/*.pth`) become pattern zones.
    pub(super) fn readonly_zones(
        &self,
        file: &PolicyFile,
        zones: &mut Vec<Zone>,
    ) -> Result<(Vec<StringOr<ReadonlyZoneEntry>>, PatternZones), PolicyError> {
        let mut normalized = Vec::new();
        let mut builder = GlobSetBuilder::new();
        let mut owner = Vec::new();
        let mut patterns = Vec::new();
        let entries = file.readonly_zones.clone().unwrap_or_default();
        for (i, entry) in entries.into_iter().enumerate() {
            let entry: ReadonlyZoneEntry = entry.into_object();
            let key = format!("readonly_zones[{i}]");
            let mut except_patterns = Vec::new();
            for (j, pattern) in entry.except.iter().enumerate() {
                except_patterns.extend(self.glob_patterns(pattern, &format!("{key}.except[{j}]"))?);
            }
            let except = self.glob_set(&except_patterns, &format!("{key}.except"))?;
            let object = |path: String| {
                if except_patterns.is_empty() && entry.except_tools.is_empty() {
                    StringOr::String(path)
                } else {
                    StringOr::Object(ReadonlyZoneEntry {
                        path,
                        except: except_patterns.clone(),
                        except_tools: entry.except_tools.clone(),
                    })
                }
            };
            if !entry.path.contains(['*', '?', '[', '{']) {
                if !entry.except_tools.is_empty() {
                    return Err(self.invalid(
                        format!("{key}.except_tools"),
                        "only a glob entry (like \"**/.git\") may name tools that write there",
                    ));
                }
                for root in self.zone_paths(&entry.path, &key)? {
                    normalized.push(object(root.display().to_string()));
                    zones.push(Zone {
                        kind: ZoneKind::Readonly,
                        root,
                        except: except.clone(),
                        on_destroy: OnDestroy::Deny,
                        unreadable: false,
                    });
                }
                continue;
            }
            for glob in self.glob_patterns(&entry.path, &format!("{key}.path"))? {
                builder.add(
                    self.glob(&glob, &format!("{key}.path"), false)?
                        .glob()
                        .clone(),
                );
                owner.push(patterns.len());
                normalized.push(object(glob.clone()));
                patterns.push(PatternZone {
                    pattern: glob,
                    except: except.clone(),
                    except_tools: entry.except_tools.clone(),
                });
            }
        }
        let set = if patterns.is_empty() {
            None
        } else {
            Some(builder.build().map_err(|e| {
                self.invalid("readonly_zones", format!("the globs do not compile: {e}"))
            })?)
        };
        Ok((normalized, PatternZones::new(set, owner, patterns)))
    }

    /// `temporary_overrides`: grants with ids `policy:N`, never over `/`, a home or a zone root.
    pub(super) fn temporary_overrides(
        &self,
        file: &PolicyFile,
        zones: &ZoneIndex,
    ) -> Result<(Vec<Grant>, Vec<StringOr<OverrideEntry>>), PolicyError> {
        let mut overrides = Vec::new();
        let mut normalized = Vec::new();
        let entries = file.temporary_overrides.clone().unwrap_or_default();
        for (i, entry) in entries.into_iter().enumerate() {
            let entry: OverrideEntry = entry.into_object();
            let key = format!("temporary_overrides[{i}]");
            let ops: OpSet = match &entry.ops {
                Some(ops) if ops.is_empty() => {
                    return Err(
                        self.invalid(format!("{key}.ops"), "expected at least one operation")
                    )
                }
                Some(ops) => ops.iter().copied().collect(),
                None => OpSet::all(),
            };
            let expires_at = match &entry.expires_at {
                None => None,
                Some(Expiry::Unix(t)) => Some(*t),
                Some(Expiry::Rfc3339(s)) => Some(parse_rfc3339(s).ok_or_else(|| {
                    self.invalid(
                        format!("{key}.expires_at"),
                        format!("{s:?} is not a time: expected unix seconds or RFC 3339 like 2026-01-31T12:00:00Z"),
                    )
                })?),
            };
            for path in self.zone_paths(&entry.path, &key)? {
                if let Some(why) = override_too_broad(&path, zones, &self.ctx.homes) {
                    return Err(self.invalid(key.clone(), why));
                }
                normalized.push(StringOr::Object(OverrideEntry {
                    path: path.display().to_string(),
                    ops: entry.ops.clone(),
                    expires_at: entry.expires_at.clone(),
                }));
                overrides.push(Grant {
                    id: format!("policy:{i}"),
                    path,
                    ops,
                    expires_at,
                    args: None,
                });
            }
        }
        Ok((overrides, normalized))
    }

    /// `exec_rules`. `own_rules`: the file has its own list, so an `unless_run_by` naming a
    /// tool it does not trust is an error there (the default's rules name git, which a file that
    /// keeps them but trusts other tools simply cannot vouch with).
    pub(super) fn exec_rules(
        &self,
        file: &PolicyFile,
        tools: &[TrustedTool],
        own_rules: bool,
    ) -> Result<Vec<ExecRule>, PolicyError> {
        let rules = file.exec_rules.clone().unwrap_or_default();
        rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| self.exec_rule(i, rule, tools, own_rules))
            .collect()
    }

    /// `max_override_ttl`, in seconds (default one hour).
    pub(super) fn max_override_ttl(&self, file: &PolicyFile) -> Result<u64, PolicyError> {
        match &file.max_override_ttl {
            None => Ok(DEFAULT_MAX_OVERRIDE_TTL),
            Some(s) => parse_duration(s).ok_or_else(|| {
                self.invalid(
                    "max_override_ttl",
                    format!("{s:?} is not a duration: expected e.g. 10m, 2h, 1d"),
                )
            }),
        }
    }

    /// `audit_retention`: the age in seconds and the size in bytes.
    pub(super) fn audit_retention(
        &self,
        file: &PolicyFile,
    ) -> Result<(Option<u64>, Option<u64>), PolicyError> {
        let Some(RetentionEntry {
            max_age,
            max_size_mb,
        }) = &file.audit_retention
        else {
            return Ok((None, None));
        };
        let age = match max_age {
            None => None,
            Some(s) => Some(parse_duration(s).ok_or_else(|| {
                self.invalid(
                    "audit_retention.max_age",
                    format!("{s:?} is not a duration: expected e.g. 30d"),
                )
            })?),
        };
        Ok((age, max_size_mb.map(|mb| mb * 1024 * 1024)))
    }

    /// `snapshots`: every key filled in from the default (see `with_defaults`), durations in
    /// seconds and sizes in bytes; zero sizes and windows are refused (a zero limit would refuse
    /// every delete: `on_destroy: deny` says that plainly).
    pub(super) fn snapshots(&self, file: &PolicyFile) -> Result<SnapshotPolicy, PolicyError> {
        let SnapshotsEntry {
            max_age,
            max_size_mb,
            max_copy_mb,
            max_tree_copy_mb,
            brake,
        } = file.snapshots.clone().unwrap_or_default();
        let BrakeEntry { files, mb, window } = brake.unwrap_or_default();
        let duration = |value: Option<String>, key: &str| -> Result<u64, PolicyError> {
            let value = value.unwrap_or_default();
            match parse_duration(&value) {
                Some(secs) if secs > 0 => Ok(secs),
                _ => Err(self.invalid(
                    key,
                    format!("{value:?} is not a duration: expected e.g. 60s, 7d"),
                )),
            }
        };
        let count = |value: Option<u64>, key: &str| -> Result<u64, PolicyError> {
            match value {
                Some(n) if n > 0 => Ok(n),
                _ => Err(self.invalid(key, "expected a whole number above 0")),
            }
        };
        const MB: u64 = 1024 * 1024;
        Ok(SnapshotPolicy {
            max_age: duration(max_age, "snapshots.max_age")?,
            max_bytes: count(max_size_mb, "snapshots.max_size_mb")? * MB,
            max_copy_bytes: count(max_copy_mb, "snapshots.max_copy_mb")? * MB,
            max_tree_bytes: count(max_tree_copy_mb, "snapshots.max_tree_copy_mb")? * MB,
            brake: BrakeLimits {
                files: count(files, "snapshots.brake.files")?,
                bytes: count(mb, "snapshots.brake.mb")? * MB,
                window_secs: duration(window, "snapshots.brake.window")?,
            },
        })
    }

    fn exec_rule(
        &self,
        i: usize,
        rule: ExecRuleEntry,
        tools: &[TrustedTool],
        own_rule: bool,
    ) -> Result<ExecRule, PolicyError> {
        let key = format!("exec_rules[{i}]");
        if rule.program.is_empty() || rule.program.contains('/') {
            return Err(self.invalid(
                format!("{key}.program"),
                format!(
                    "{:?}: expected a program's basename like \"git\"",
                    rule.program
                ),
            ));
        }
        if rule.reason.trim().is_empty() {
            return Err(self.invalid(
                format!("{key}.reason"),
                "expected one sentence that tells the agent why",
            ));
        }
        // git reads its command line its own way; a git rule's option tokens are put in the
        // canonical form commands are matched in (`-f` is `--force`), by the options of the
        // subcommand the rule names first.
        let git_subcommand = (rule.program == "git")
            .then(|| rule.args.first().cloned())
            .flatten();
        let canonical = |pattern: &str| match &git_subcommand {
            Some(first) => crate::git::grammar::canonical_pattern(first, pattern),
            None => pattern.to_string(),
        };
        let compile = |list: &[String], field: &str| -> Result<Vec<GlobMatcher>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(j, a)| self.glob(&canonical(a), &format!("{key}.{field}[{j}]"), false))
                .collect()
        };
        let mut unless_run_by = Vec::new();
        for (j, by) in rule.unless_run_by.iter().enumerate() {
            let field = format!("{key}.unless_run_by[{j}]");
            let words: Vec<&str> = by.split_whitespace().collect();
            let [tool, subcommand] = words[..] else {
                return Err(self.invalid(
                    field,
                    format!(
                        "{by:?}: expected a trusted tool and its subcommand, like \"git stash\""
                    ),
                ));
            };
            if !tools.iter().any(|t| t.name == tool) {
                if !own_rule {
                    continue;
                }
                return Err(self.invalid(
                    field,
                    format!(
                        "{tool:?} is not in trusted_tools: only a tool known by its real \
                         executable can vouch for what it runs"
                    ),
                ));
            }
            unless_run_by.push(RunBy {
                tool: tool.to_owned(),
                subcommand: subcommand.to_owned(),
            });
        }
        let display = std::iter::once(rule.program.as_str())
            .chain(rule.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(ExecRule {
            args: compile(&rule.args, "args")?,
            unless: compile(&rule.unless, "unless")?,
            unless_run_by,
            program: rule.program,
            index: i,
            reason: rule.reason,
            display,
        })
    }
}
