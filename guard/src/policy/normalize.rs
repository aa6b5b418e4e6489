//! From a [`PolicyFile`] to a [`Policy`]: defaults filled in, paths expanded and resolved, globs
//! compiled, everything validated with errors that name the key path.
//!
//! This is the only place policy paths are touched: `~` and `$HOME` expanded (to every user's
//! home for the macOS daemon), relative paths rejected, `.`/`..`/trailing slashes removed,
//! symlinked zone roots resolved (both the literal and the resolved root are zones, so the link
//! itself cannot be renamed away either), and on macOS `/tmp`, `/var`, `/etc` mapped to
//! `/private/...` and matching made case-insensitive.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use super::file::{
    ExecRuleEntry, Expiry, OverrideEntry, PolicyFile, ProtectedZoneEntry, RetentionEntry, StringOr,
    TrustedToolEntry,
};
use super::zones::{Zone, ZoneIndex, ZoneKind};
use super::{ExecRule, ExecRules, Policy, PolicyError, RunBy, TrustedTool, DEFAULT_POLICY_JSON};
use crate::vocab::path::clean;
use crate::vocab::{Grant, OpSet};

/// Which platform's path rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
}

impl Platform {
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Linux
        }
    }
}

/// What loading needs to know about the machine.
#[derive(Clone, Debug)]
pub struct LoadContext {
    pub platform: Platform,
    /// What `~` and `$HOME` mean: one home for `run`, every user's home for the macOS daemon.
    pub homes: Vec<PathBuf>,
    /// agent-guard's own files (policy file, state dir, logs, binary): read-only to agents.
    pub guard_paths: Vec<PathBuf>,
    /// Paths inside the guard's own files that agents may write: the override requests spool.
    pub agent_writable: Vec<PathBuf>,
    /// Resolve symlinked zone roots on this machine's file system (off for pure tests).
    pub resolve_symlinks: bool,
}

impl LoadContext {
    /// For one user on this machine.
    pub fn for_home(home: PathBuf) -> LoadContext {
        LoadContext {
            platform: Platform::current(),
            homes: vec![home],
            guard_paths: Vec::new(),
            agent_writable: Vec::new(),
            resolve_symlinks: true,
        }
    }
}

const DEFAULT_MAX_OVERRIDE_TTL: u64 = 3600;

/// Programs that run arbitrary code given on their command line: never trusted by default.
const INTERPRETERS: &[&str] = &[
    "node", "nodejs", "python", "python3", "bun", "deno", "perl", "ruby", "sh", "bash", "zsh",
    "php", "lua",
];

/// Parse a policy from JSON text. `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<PolicyFile, PolicyError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_eof() {
            format!(
                "the file ends early (line {}): expected complete JSON",
                inner.line()
            )
        } else {
            inner.to_string()
        };
        PolicyError::Syntax {
            file: file.to_path_buf(),
            path: display_key(&path),
            message,
        }
    })
}

fn display_key(path: &str) -> String {
    if path.is_empty() || path == "." || path == "?" {
        "(top level)".to_string()
    } else {
        path.to_string()
    }
}

/// The embedded default, parsed once. It is part of the binary and checked by tests.
pub fn default_file() -> &'static PolicyFile {
    static DEFAULT: std::sync::LazyLock<PolicyFile> = std::sync::LazyLock::new(|| {
        parse(DEFAULT_POLICY_JSON, Path::new("<embedded default>"))
            .expect("the embedded default policy is valid JSON of the policy schema")
    });
    &DEFAULT
}

/// Fill in every key absent from `file` with the default's value.
pub fn with_defaults(file: PolicyFile) -> PolicyFile {
    let d = default_file().clone();
    PolicyFile {
        mode: file.mode.or(d.mode),
        fail_mode: file.fail_mode.or(d.fail_mode),
        ai_agent_patterns: file.ai_agent_patterns.or(d.ai_agent_patterns),
        protected_zones: file.protected_zones.or(d.protected_zones),
        readonly_zones: file.readonly_zones.or(d.readonly_zones),
        secret_zones: file.secret_zones.or(d.secret_zones),
        temporary_overrides: file.temporary_overrides.or(d.temporary_overrides),
        trusted_tools: file.trusted_tools.or(d.trusted_tools),
        exec_rules: file.exec_rules.or(d.exec_rules),
        max_override_ttl: file.max_override_ttl.or(d.max_override_ttl),
        audit_retention: file.audit_retention.or(d.audit_retention),
    }
}

/// Validate and normalize a parsed file. `source` names it in errors.
pub fn normalize(
    file: PolicyFile,
    source: &Path,
    ctx: &LoadContext,
) -> Result<Policy, PolicyError> {
    let n = Normalizer { source, ctx };
    // The default's exec rules name git in `unless_run_by`; a file that keeps them but trusts
    // other tools is not wrong, git just cannot vouch there.
    let own_exec_rules = file.exec_rules.is_some();
    let file = with_defaults(file);
    let mut warnings = Vec::new();

    let patterns = file.ai_agent_patterns.clone().unwrap_or_default();
    for (i, p) in patterns.iter().enumerate() {
        if p.trim().is_empty() {
            return Err(n.invalid(
                format!("ai_agent_patterns[{i}]"),
                "expected a non-empty name",
            ));
        }
    }

    let mut zones = Vec::new();
    let writable: Vec<String> = ctx
        .agent_writable
        .iter()
        .flat_map(|p| {
            let p = clean(p).display().to_string();
            // The contents only: the directory itself stays guarded, so an agent cannot move it
            // away and put a symlink in its place for a human's command to follow.
            [format!("{p}/**")]
        })
        .collect();
    let guard_except = n.glob_set(&writable, "agent-writable paths")?;
    for guard in &ctx.guard_paths {
        zones.push(Zone {
            kind: ZoneKind::Guard,
            root: clean(guard),
            except: guard_except.clone(),
        });
    }
    let mut normalized_protected = Vec::new();
    for (i, entry) in file
        .protected_zones
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let entry: ProtectedZoneEntry = entry.into_object();
        let key = format!("protected_zones[{i}]");
        let mut except_patterns = Vec::new();
        for (j, pattern) in entry.except.iter().enumerate() {
            except_patterns.extend(n.glob_patterns(pattern, &format!("{key}.except[{j}]"))?);
        }
        let except = n.glob_set(&except_patterns, &format!("{key}.except"))?;
        for root in n.zone_paths(&entry.path, &key)? {
            normalized_protected.push(StringOr::Object(ProtectedZoneEntry {
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
    let mut simple_zones = |list: &Option<Vec<String>>, name: &str, kind: ZoneKind| {
        let mut out = Vec::new();
        for (i, path) in list.iter().flatten().enumerate() {
            for root in n.zone_paths(path, &format!("{name}[{i}]"))? {
                out.push(root.display().to_string());
                zones.push(Zone {
                    kind,
                    root,
                    except: None,
                });
            }
        }
        Ok::<_, PolicyError>(out)
    };
    let readonly = simple_zones(&file.readonly_zones, "readonly_zones", ZoneKind::Readonly)?;
    let secret = simple_zones(&file.secret_zones, "secret_zones", ZoneKind::Secret)?;
    let zones = ZoneIndex::new(zones, ctx.platform == Platform::MacOs);

    let mut overrides = Vec::new();
    let mut normalized_overrides = Vec::new();
    for (i, entry) in file
        .temporary_overrides
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let entry: OverrideEntry = entry.into_object();
        let key = format!("temporary_overrides[{i}]");
        let ops: OpSet = match &entry.ops {
            Some(ops) if ops.is_empty() => {
                return Err(n.invalid(format!("{key}.ops"), "expected at least one operation"))
            }
            Some(ops) => ops.iter().copied().collect(),
            None => OpSet::all(),
        };
        let expires_at = match &entry.expires_at {
            None => None,
            Some(Expiry::Unix(t)) => Some(*t),
            Some(Expiry::Rfc3339(s)) => Some(parse_rfc3339(s).ok_or_else(|| {
                n.invalid(
                    format!("{key}.expires_at"),
                    format!("{s:?} is not a time: expected unix seconds or RFC 3339 like 2026-01-31T12:00:00Z"),
                )
            })?),
        };
        for path in n.zone_paths(&entry.path, &key)? {
            if let Some(why) = override_too_broad(&path, &zones, &ctx.homes) {
                return Err(n.invalid(key.clone(), why));
            }
            normalized_overrides.push(StringOr::Object(OverrideEntry {
                path: path.display().to_string(),
                ops: entry.ops.clone(),
                expires_at: entry.expires_at.clone(),
            }));
            overrides.push(Grant {
                id: format!("policy:{i}"),
                path,
                ops,
                expires_at,
            });
        }
    }

    let defaults = default_file();
    let default_tools: Vec<TrustedToolEntry> = defaults
        .trusted_tools
        .iter()
        .flatten()
        .cloned()
        .map(StringOr::into_object)
        .collect();
    let mut trusted_tools = Vec::new();
    let mut normalized_tools = Vec::new();
    for (i, entry) in file
        .trusted_tools
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
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
        if entry.name.trim().is_empty() {
            return Err(n.invalid(format!("{key}.name"), "expected a non-empty tool name"));
        }
        let mut exe = std::collections::HashSet::new();
        let mut exe_patterns = Vec::new();
        for (j, pattern) in entry.exe.iter().flatten().enumerate() {
            let ekey = format!("{key}.exe[{j}]");
            for expanded in n.glob_patterns(pattern, &ekey)? {
                if !expanded.starts_with('/') {
                    return Err(n.invalid(ekey, "expected an absolute executable path"));
                }
                if expanded.contains(['*', '?', '[', '{']) {
                    exe_patterns.push(expanded);
                } else {
                    exe.insert(PathBuf::from(expanded));
                }
            }
        }
        let exe_patterns = n.glob_set(&exe_patterns, &format!("{key}.exe"))?;
        let scope = match &entry.paths {
            None => None,
            Some(paths) => {
                let mut patterns = Vec::new();
                for (j, p) in paths.iter().enumerate() {
                    patterns.extend(n.glob_patterns(p, &format!("{key}.paths[{j}]"))?);
                }
                n.glob_set(&patterns, &format!("{key}.paths"))?
            }
        };
        normalized_tools.push(StringOr::Object(entry.clone()));
        trusted_tools.push(TrustedTool {
            name: entry.name,
            exe,
            exe_patterns,
            signing_id: entry.signing_id,
            team_id: entry.team_id,
            scope,
        });
    }

    let mut rules = Vec::new();
    for (i, rule) in file
        .exec_rules
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        rules.push(n.exec_rule(i, rule, &trusted_tools, own_exec_rules)?);
    }

    let max_override_ttl = match &file.max_override_ttl {
        None => DEFAULT_MAX_OVERRIDE_TTL,
        Some(s) => parse_duration(s).ok_or_else(|| {
            n.invalid(
                "max_override_ttl",
                format!("{s:?} is not a duration: expected e.g. 10m, 2h, 1d"),
            )
        })?,
    };
    let (retention_max_age, retention_max_bytes) = match &file.audit_retention {
        None => (None, None),
        Some(RetentionEntry {
            max_age,
            max_size_mb,
        }) => {
            let age = match max_age {
                None => None,
                Some(s) => Some(parse_duration(s).ok_or_else(|| {
                    n.invalid(
                        "audit_retention.max_age",
                        format!("{s:?} is not a duration: expected e.g. 30d"),
                    )
                })?),
            };
            (age, max_size_mb.map(|mb| mb * 1024 * 1024))
        }
    };

    let normalized = PolicyFile {
        protected_zones: Some(normalized_protected),
        readonly_zones: Some(readonly),
        secret_zones: Some(secret),
        temporary_overrides: Some(normalized_overrides),
        trusted_tools: Some(normalized_tools),
        ..file
    };
    let version = version_of(&normalized);
    Ok(Policy {
        mode: normalized.mode.unwrap_or_default(),
        fail_mode: normalized.fail_mode.unwrap_or_default(),
        agent_patterns: patterns,
        zones,
        overrides,
        trusted_tools,
        exec_rules: ExecRules::new(rules),
        max_override_ttl,
        retention_max_age,
        retention_max_bytes,
        normalized,
        version,
        source: source.display().to_string(),
        warnings,
    })
}

/// Why an override path is refused: `/`, a home directory, or a zone root or an ancestor of one.
pub fn override_too_broad(path: &Path, zones: &ZoneIndex, homes: &[PathBuf]) -> Option<String> {
    if path == Path::new("/") {
        return Some("an override may not cover / as a whole".to_string());
    }
    if homes.iter().any(|h| clean(h) == path) {
        return Some(format!(
            "an override may not cover the home directory {} as a whole",
            path.display()
        ));
    }
    for kind in [
        ZoneKind::Protected,
        ZoneKind::Readonly,
        ZoneKind::Secret,
        ZoneKind::Guard,
    ] {
        if let Some(zone) = zones.root_at_or_below(path, kind) {
            return Some(format!(
                "an override may not cover the root of the {} zone {} as a whole; name a path inside it",
                kind.as_str(),
                zone.root.display()
            ));
        }
    }
    None
}

struct Normalizer<'a> {
    source: &'a Path,
    ctx: &'a LoadContext,
}

impl Normalizer<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            file: self.source.to_path_buf(),
            path: key.into(),
            message: message.into(),
        }
    }

    /// Expand `~`/`$HOME` into one string per home; reject relative paths.
    fn expand(
        &self,
        raw: &str,
        key: &str,
        allow_glob_prefix: bool,
    ) -> Result<Vec<String>, PolicyError> {
        let rest = if raw == "~" || raw == "$HOME" || raw == "${HOME}" {
            Some("")
        } else {
            ["~/", "$HOME/", "${HOME}/"]
                .iter()
                .find_map(|p| raw.strip_prefix(p))
        };
        if let Some(rest) = rest {
            if self.ctx.homes.is_empty() {
                return Err(self.invalid(
                    key,
                    format!("{raw:?} uses ~ but no home directory is known"),
                ));
            }
            return Ok(self
                .ctx
                .homes
                .iter()
                .map(|h| {
                    if rest.is_empty() {
                        h.display().to_string()
                    } else {
                        format!("{}/{rest}", h.display())
                    }
                })
                .collect());
        }
        if raw.starts_with('/') || (allow_glob_prefix && raw.starts_with("**")) {
            return Ok(vec![raw.to_string()]);
        }
        let expected = if allow_glob_prefix {
            "expected an absolute path, one starting with ~ or $HOME, or a glob starting with **/"
        } else {
            "expected an absolute path or one starting with ~ or $HOME"
        };
        Err(self.invalid(key, format!("{raw:?} is relative: {expected}")))
    }

    /// A zone path: expanded, clean, platform-mapped, symlinks resolved. A symlinked root yields
    /// both the link and its target.
    fn zone_paths(&self, raw: &str, key: &str) -> Result<Vec<PathBuf>, PolicyError> {
        if raw.trim().is_empty() {
            return Err(self.invalid(key, "expected a path, found an empty string"));
        }
        let mut out = Vec::new();
        for expanded in self.expand(raw, key, false)? {
            let literal = self.platform_map(clean(Path::new(&expanded)));
            if self.ctx.resolve_symlinks {
                let resolved = self.platform_map(resolve_existing_prefix(&literal));
                if resolved != literal {
                    out.push(resolved);
                }
            }
            out.push(literal);
        }
        Ok(out)
    }

    fn platform_map(&self, path: PathBuf) -> PathBuf {
        if self.ctx.platform != Platform::MacOs {
            return path;
        }
        for top in ["/tmp", "/var", "/etc"] {
            if let Ok(rest) = path.strip_prefix(top) {
                return Path::new("/private")
                    .join(top.trim_start_matches('/'))
                    .join(rest);
            }
        }
        path
    }

    /// Glob patterns for a scope or carve-out: `~` expanded, and a pattern ending in `/**` also
    /// matches the directory itself (so `rm -rf target` may remove `target` too).
    fn glob_patterns(&self, raw: &str, key: &str) -> Result<Vec<String>, PolicyError> {
        let mut out = Vec::new();
        for expanded in self.expand(raw, key, true)? {
            let mapped = if expanded.starts_with('/') && !expanded.contains(['*', '?', '[', '{']) {
                self.platform_map(clean(Path::new(&expanded)))
                    .display()
                    .to_string()
            } else {
                expanded
            };
            if let Some(dir) = mapped.strip_suffix("/**") {
                if !dir.is_empty() {
                    out.push(dir.to_string());
                }
            }
            out.push(mapped);
        }
        Ok(out)
    }

    fn glob(
        &self,
        pattern: &str,
        key: &str,
        literal_separator: bool,
    ) -> Result<GlobMatcher, PolicyError> {
        GlobBuilder::new(pattern)
            .literal_separator(literal_separator)
            .case_insensitive(
                self.ctx.platform == Platform::MacOs && pattern.starts_with(['/', '*']),
            )
            .build()
            .map(|g| g.compile_matcher())
            .map_err(|e| {
                self.invalid(
                    key,
                    format!("{pattern:?} is not a valid glob: {}", e.kind()),
                )
            })
    }

    fn glob_set(&self, patterns: &[String], key: &str) -> Result<Option<GlobSet>, PolicyError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .case_insensitive(self.ctx.platform == Platform::MacOs)
                .build()
                .map_err(|e| {
                    self.invalid(key, format!("{p:?} is not a valid glob: {}", e.kind()))
                })?;
            builder.add(glob);
        }
        builder
            .build()
            .map(Some)
            .map_err(|e| self.invalid(key, e.to_string()))
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
        let compile = |list: &[String], field: &str| -> Result<Vec<GlobMatcher>, PolicyError> {
            list.iter()
                .enumerate()
                .map(|(j, a)| self.glob(a, &format!("{key}.{field}[{j}]"), false))
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

/// Resolve symlinks in the longest existing prefix of `path`, keep the rest as written: the
/// kernel reports real paths, so zone roots and override paths are compared in that form.
pub fn resolve_existing_prefix(path: &Path) -> PathBuf {
    resolve_prefix_following(path, 40)
}

/// `resolve_existing_prefix`, following at most `links` dangling symlinks: a link to what does
/// not exist yet (`~/.aws` -> a directory made later) means its target, which is where the
/// kernel will resolve a path through it once the target exists.
fn resolve_prefix_following(path: &Path, links: u32) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        let found = std::fs::canonicalize(&existing).ok().or_else(|| {
            let target = std::fs::read_link(&existing).ok().filter(|_| links > 0)?;
            let target = existing.parent().unwrap_or(Path::new("/")).join(target);
            Some(resolve_prefix_following(&clean(&target), links - 1))
        });
        if let Some(real) = found {
            let mut out = real;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A duration in whole seconds (`90s`, `10m`, `2h`, `30d`), as the policy writes them.
pub fn parse_duration(s: &str) -> Option<u64> {
    crate::duration::parse_duration(s).ok().map(|d| d.as_secs())
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// FNV-1a over the normalized JSON: stable across builds and platforms, unlike std's hasher.
fn version_of(file: &PolicyFile) -> String {
    let json = serde_json::to_vec(file).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
