//! The path and glob work of normalization: `~`/`$HOME` expanded (to every user's home for the
//! macOS daemon), relative paths rejected, paths cleaned, symlinked zone roots resolved, macOS's
//! `/tmp`, `/var`, `/etc` mapped to `/private/...`, globs compiled (case-insensitive on macOS).

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use super::{LoadContext, Platform};
use crate::policy::PolicyError;
use crate::vocab::path::clean;

/// Normalizes one file: knows its name (for errors) and the machine it is loaded for.
pub(super) struct Normalizer<'a> {
    pub source: &'a Path,
    pub ctx: &'a LoadContext,
}

impl Normalizer<'_> {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError::Invalid {
            file: self.source.to_path_buf(),
            path: key.into(),
            message: message.into(),
        }
    }

    /// Expand `~`/`$HOME` into one string per home; reject relative paths.
    pub(super) fn expand(
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
    pub(super) fn zone_paths(&self, raw: &str, key: &str) -> Result<Vec<PathBuf>, PolicyError> {
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

    pub(super) fn platform_map(&self, path: PathBuf) -> PathBuf {
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
    pub(super) fn glob_patterns(&self, raw: &str, key: &str) -> Result<Vec<String>, PolicyError> {
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

    pub(super) fn glob(
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

    pub(super) fn glob_set(
        &self,
        patterns: &[String],
        key: &str,
    ) -> Result<Option<GlobSet>, PolicyError> {
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
