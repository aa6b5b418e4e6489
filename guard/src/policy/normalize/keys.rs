//! One function per key of the policy file: each validates its key (naming the key path in its
//! errors), normalizes it for the engine, and says how it reads back in `policy show`.

use std::collections::HashSet;
use std::path::PathBuf;

use globset::{GlobMatcher, GlobSet, GlobSetBuilder};

use super::override_too_broad;
use super::paths::Normalizer;
use super::Platform;
use super::{parse_duration, parse_rfc3339, DEFAULT_MAX_OVERRIDE_TTL, INTERPRETERS};
use crate::policy::file::{
    ExecRuleEntry, Expiry, OverrideEntry, PolicyFile, ProtectedZoneEntry, ReadonlyZoneEntry,
    RetentionEntry, StringOr, TrustedToolEntry,
};
use crate::policy::zones::{PatternZone, PatternZones, Zone, ZoneIndex, ZoneKind};
use crate::policy::{CommandDirs, ExecRule, PolicyError, RunBy, TrustedTool};
use crate::vocab::path::clean;
use crate::vocab::{Grant, OpSet};

/// Directories under which users can write on a Mac (see `user_writable_on_macos`).
const MACOS_USER_WRITABLE: &[&str] = &[
    "/usr/local/",
    "/opt/homebrew/",
    "/Applications/",
    "/Users/",
    "/tmp/",
    "/private/tmp/",
    "/var/folders/",
    "/private/var/folders/",
];

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
            for root in self.zone_paths(&entry.path, &key)? {
                normalized.push(StringOr::Object(ProtectedZoneEntry {
                    path: root.display().to_string(),
                    except: except_patterns.clone(),
                }));
                zones.push(Zone {
                    kind: ZoneKind::Protected,
                    root,
                    except: except.clone(),
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

    /// `trusted_tools`: a name alone takes the default's entry of that name (or is matched on
    /// the executable's basename, with a warning); an object is taken as written.
    pub(super) fn trusted_tools(
        &self,
        file: &PolicyFile,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<TrustedTool>, Vec<StringOr<TrustedToolEntry>>), PolicyError> {
        let default_tools: Vec<TrustedToolEntry> = super::default_file()
            .trusted_tools
            .iter()
            .flatten()
            .cloned()
            .map(StringOr::into_object)
            .collect();
        let mut tools = Vec::new();
        let mut normalized = Vec::new();
        let entries = file.trusted_tools.clone().unwrap_or_default();
        for (i, entry) in entries.into_iter().enumerate() {
            let key = format!("trusted_tools[{i}]");
            let entry = match entry {
                StringOr::String(name) => match default_tools.iter().find(|t| t.name == name) {
                    Some(known) => known.clone(),
                    None if INTERPRETERS.contains(&name.as_str()) => {
                        warnings.push(format!(
                            "{key}: {name:?} is an interpreter: trusting it lets an agent delete anything in the protected zones with a one-line script (`{name} -e ...`); remove it"
                        ));
                        TrustedToolEntry::from(name)
                    }
                    None => {
                        warnings.push(format!(
                            "{key}: {name:?} is not a tool the default policy knows, so it is matched on the executable's basename only and trusted in the whole zone; give it \"exe\" paths and a \"paths\" scope"
                        ));
                        TrustedToolEntry::from(name)
                    }
                },
                StringOr::Object(o) => o,
            };
            normalized.push(StringOr::Object(entry.clone()));
            let default_exe = default_tools
                .iter()
                .find(|t| t.name == entry.name)
                .and_then(|t| t.exe.clone())
                .unwrap_or_default();
            let (tool, user_writable) = self.trusted_tool(&key, entry)?;
            for (j, pattern) in user_writable {
                // The default's own entries are dropped silently: it lists them for Linux.
                if !default_exe.contains(&pattern) {
                    warnings.push(format!(
                        "{key}.exe[{j}]: {pattern:?} is writable by users on macOS (anyone could put another program there), so it does not identify {:?}; give the tool its signing_id and team_id instead",
                        tool.name
                    ));
                }
            }
            if let (Some(id), None) = (&tool.signing_id, &tool.team_id) {
                if !id.starts_with(crate::policy::APPLE_SIGNING_PREFIX) {
                    warnings.push(format!(
                        "{key}.signing_id: {id:?} without a team_id identifies nothing (any developer can sign code with any identifier); add the team_id of its signature"
                    ));
                }
            }
            tools.push(tool);
        }
        Ok((tools, normalized))
    }

    /// One trusted tool, and the `exe` entries (index, as written) left out because users can
    /// write there on macOS.
    fn trusted_tool(
        &self,
        key: &str,
        entry: TrustedToolEntry,
    ) -> Result<(TrustedTool, Vec<(usize, String)>), PolicyError> {
        if entry.name.trim().is_empty() {
            return Err(self.invalid(format!("{key}.name"), "expected a non-empty tool name"));
        }
        let mut exe = HashSet::new();
        let mut exe_patterns = Vec::new();
        let mut user_writable = Vec::new();
        for (j, pattern) in entry.exe.iter().flatten().enumerate() {
            let ekey = format!("{key}.exe[{j}]");
            for expanded in self.glob_patterns(pattern, &ekey)? {
                if !expanded.starts_with('/') {
                    return Err(self.invalid(ekey, "expected an absolute executable path"));
                }
                if self.ctx.platform == Platform::MacOs && self.user_writable_on_macos(&expanded) {
                    if !user_writable.iter().any(|(k, _)| *k == j) {
                        user_writable.push((j, pattern.clone()));
                    }
                    continue;
                }
                if expanded.contains(['*', '?', '[', '{']) {
                    exe_patterns.push(expanded);
                } else {
                    exe.insert(PathBuf::from(expanded));
                }
            }
        }
        let exe_patterns = self.glob_set(&exe_patterns, &format!("{key}.exe"))?;
        let scope = match &entry.paths {
            None => None,
            Some(paths) => {
                let mut patterns = Vec::new();
                for (j, p) in paths.iter().enumerate() {
                    patterns.extend(self.glob_patterns(p, &format!("{key}.paths[{j}]"))?);
                }
                self.glob_set(&patterns, &format!("{key}.paths"))?
            }
        };
        // An entry whose every executable was left out must not fall back to matching the
        // basename (what a tool with no `exe` at all does): it matches nothing but its
        // signing identity.
        let exe_patterns = match (exe_patterns, exe.is_empty(), user_writable.is_empty()) {
            (None, true, false) => Some(GlobSet::empty()),
            (patterns, _, _) => patterns,
        };
        Ok((
            TrustedTool {
                name: entry.name,
                exe,
                exe_patterns,
                signing_id: entry.signing_id,
                team_id: entry.team_id,
                scope,
            },
            user_writable,
        ))
    }

    /// Whether an executable path (or pattern) on macOS may lie where a user can write, so that
    /// anyone could put another program there: Homebrew's prefixes (`/usr/local` is the user's on
    /// Intel Macs, `/opt/homebrew` on Apple silicon), `/Applications` (the admin group's), the
    /// homes, the temporary directories. A pattern counts when its literal start could reach one.
    fn user_writable_on_macos(&self, pattern: &str) -> bool {
        let literal = &pattern[..pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len())];
        let homes = self.ctx.homes.iter().map(|h| format!("{}/", h.display()));
        MACOS_USER_WRITABLE
            .iter()
            .map(|d| d.to_string())
            .chain(homes)
            .any(|dir| literal.starts_with(&dir) || dir.starts_with(literal))
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
