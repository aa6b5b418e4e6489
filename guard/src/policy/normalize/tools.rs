//! `trusted_tools`: the tools an agent's own lineage may run for their own work, known by their
//! real executable (and on a Mac by a signing identity that cannot be forged), never by a name.

use std::collections::HashSet;
use std::path::PathBuf;

use globset::GlobSet;

use super::paths::Normalizer;
use super::Platform;
use super::INTERPRETERS;
use crate::policy::file::{PolicyFile, StringOr, TrustedToolEntry};
use crate::policy::{PolicyError, TrustedTool};

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
                        let one_liner = one_liner_flag(&name);
                        warnings.push(format!(
                            "{key}: {name:?} is an interpreter: trusting it lets an agent delete anything in the protected zones with a one-line script (`{name} {one_liner} ...`); remove it"
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
}

/// The flag that makes `interpreter` run code given on its command line (`python3 -c`,
/// `node -e`, `php -r`), for the warning to show a command that works.
fn one_liner_flag(interpreter: &str) -> &'static str {
    match interpreter {
        "python" | "python3" | "sh" | "bash" | "zsh" => "-c",
        "php" => "-r",
        "deno" => "eval",
        _ => "-e",
    }
}
