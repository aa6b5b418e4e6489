//! git's config file format, read the way git reads it, to find the keys that make git run a
//! command: what an agent must not set in a repository's `.git/config`, where the human's next
//! `git status` or `git commit` would run it outside the agent's lineage.
//!
//! [`read`] follows git's `config.c` parser (sections, `[section "sub"]`, the old
//! `[section.sub]`, quoted values, escapes, continuation lines, `#`/`;` comments, CRLF, a BOM)
//! and refuses whatever git would refuse; the caller must treat a file it cannot read as one
//! that may set anything. [`commands_added`] compares two versions of a file.
//!
//! Pure: no I/O. Differentially tested against `git config --list` (tests/git_config.rs).

use std::collections::BTreeSet;

/// A config file this module cannot read as git would.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {what}")]
pub struct ConfigError {
    pub line: usize,
    pub what: &'static str,
}

/// One `section[.subsection].name = value` entry. Section and name are lower-cased (git compares
/// them without case); a subsection keeps its case. `value` is `None` for a bare `name` (true).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key: String,
    pub value: Option<String>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Reader<'_> {
    /// git's `get_next_char`: "\r\n" reads as "\n".
    fn next(&mut self) -> Option<u8> {
        let c = *self.bytes.get(self.at)?;
        self.at += 1;
        if c == b'\r' && self.bytes.get(self.at) == Some(&b'\n') {
            self.at += 1;
            self.line += 1;
            return Some(b'\n');
        }
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<u8> {
        let c = *self.bytes.get(self.at)?;
        if c == b'\r' && self.bytes.get(self.at + 1) == Some(&b'\n') {
            return Some(b'\n');
        }
        Some(c)
    }

    fn error(&self, what: &'static str) -> ConfigError {
        ConfigError {
            line: self.line,
            what,
        }
    }
}

/// Every entry of a config file, in order.
pub fn read(content: &[u8]) -> Result<Vec<Entry>, ConfigError> {
    let content = content.strip_prefix(b"\xef\xbb\xbf").unwrap_or(content);
    let mut r = Reader {
        bytes: content,
        at: 0,
        line: 1,
    };
    let mut section: Option<String> = None;
    let mut entries = Vec::new();
    loop {
        let Some(c) = r.next() else {
            return Ok(entries);
        };
        match c {
            // git's isspace: a lone '\r' too.
            b'\n' | b' ' | b'\t' | b'\r' => continue,
            b'#' | b';' => skip_line(&mut r),
            b'[' => section = Some(section_header(&mut r)?),
            c if c.is_ascii_alphabetic() => {
                // git reads a key before any section too (as the bare name; nothing uses it).
                let (name, value) = key_value(&mut r, c)?;
                let key = match &section {
                    Some(section) => format!("{section}.{name}"),
                    None => name,
                };
                entries.push(Entry { key, value });
            }
            0 => return Err(r.error("a NUL byte")),
            _ => return Err(r.error("a line that is neither a section, a key nor a comment")),
        }
    }
}

fn skip_line(r: &mut Reader) {
    while let Some(c) = r.next() {
        if c == b'\n' {
            return;
        }
    }
}

/// After `[`: `name]`, `name "sub"]` or the old `name.sub]`; what follows `]` on the line is
/// read as the next line's start would be (git allows `[core] bare = true`).
fn section_header(r: &mut Reader) -> Result<String, ConfigError> {
    let mut name = String::new();
    loop {
        let c = r
            .next()
            .ok_or_else(|| r.error("an unterminated section header"))?;
        match c {
            b']' => {
                if name.is_empty() {
                    return Err(r.error("an empty section name"));
                }
                return Ok(name);
            }
            b' ' | b'\t' | b'\r' => return extended_header(r, name),
            c if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' => {
                name.push(c.to_ascii_lowercase() as char)
            }
            _ => return Err(r.error("a bad character in a section name")),
        }
    }
}

/// `[name "sub"]`: the subsection is case-sensitive; `\x` means `x`.
fn extended_header(r: &mut Reader, name: String) -> Result<String, ConfigError> {
    while matches!(r.peek(), Some(b' ' | b'\t' | b'\r')) {
        r.next();
    }
    if r.next() != Some(b'"') {
        return Err(r.error("a section header without a quoted subsection"));
    }
    let mut sub = Vec::new();
    loop {
        match r.next() {
            None | Some(b'\n') => return Err(r.error("an unterminated subsection")),
            Some(b'"') => break,
            Some(b'\\') => match r.next() {
                None | Some(b'\n') => return Err(r.error("an unterminated subsection")),
                Some(c) => sub.push(c),
            },
            Some(0) => return Err(r.error("a NUL byte")),
            Some(c) => sub.push(c),
        }
    }
    if r.next() != Some(b']') {
        return Err(r.error("a section header not closed after its subsection"));
    }
    let sub = String::from_utf8(sub).map_err(|_| r.error("a subsection that is not UTF-8"))?;
    Ok(format!("{name}.{sub}"))
}

/// A key line, from its first letter: `name`, `name = value`.
fn key_value(r: &mut Reader, first: u8) -> Result<(String, Option<String>), ConfigError> {
    let mut name = String::from(first.to_ascii_lowercase() as char);
    while let Some(c) = r.peek() {
        if c.is_ascii_alphanumeric() || c == b'-' {
            name.push(c.to_ascii_lowercase() as char);
            r.next();
        } else {
            break;
        }
    }
    while matches!(r.peek(), Some(b' ' | b'\t')) {
        r.next();
    }
    match r.next() {
        None | Some(b'\n') => return Ok((name, None)),
        Some(b'=') => {}
        Some(_) => return Err(r.error("a key followed by something other than '='")),
    }
    Ok((name, Some(value(r)?)))
}

/// git's `parse_value` (2.45+): leading whitespace dropped, inner whitespace kept as written,
/// trailing whitespace outside quotes dropped, quotes removed, `\n \t \b \\ \"` and
/// `\`-newline continuation, a comment ends the value.
fn value(r: &mut Reader) -> Result<String, ConfigError> {
    let mut out = Vec::new();
    let mut quoted = false;
    // Where unquoted trailing whitespace began, if the value ends there.
    let mut trim_at: Option<usize> = None;
    loop {
        let Some(c) = r.next() else {
            if quoted {
                return Err(r.error("an unterminated quote"));
            }
            break;
        };
        match c {
            b'\n' => {
                if quoted {
                    return Err(r.error("an unterminated quote"));
                }
                break;
            }
            0 => return Err(r.error("a NUL byte")),
            b' ' | b'\t' | b'\r' if !quoted => {
                trim_at.get_or_insert(out.len());
                if !out.is_empty() {
                    out.push(c);
                }
                continue;
            }
            b'#' | b';' if !quoted => {
                skip_line(r);
                break;
            }
            _ => {}
        }
        trim_at = None;
        match c {
            b'\\' => match r.next() {
                Some(b'\n') => continue,
                Some(b't') => out.push(b'\t'),
                Some(b'b') => out.push(8),
                Some(b'n') => out.push(b'\n'),
                Some(b'\\') => out.push(b'\\'),
                Some(b'"') => out.push(b'"'),
                _ => return Err(r.error("a bad escape in a value")),
            },
            b'"' => quoted = !quoted,
            c => out.push(c),
        }
    }
    if let Some(at) = trim_at {
        out.truncate(at);
    }
    String::from_utf8(out).map_err(|_| r.error("a value that is not UTF-8"))
}

/// Whether git runs a command (or reads another file of config) because of this key.
///
/// `key` as [`Entry::key`] gives it. The list: everything git documents as naming a command,
/// a program, a hook or an include (git-config(1)), and the keys that turn on transports that
/// run commands (`protocol.*.allow` for `ext::`).
pub fn runs_command(key: &str) -> bool {
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    // The variable name is the last dot-separated part; a subsection may contain dots.
    let (sub, name) = match rest.rsplit_once('.') {
        Some((sub, name)) => (Some(sub), name),
        None => (None, rest),
    };
    matches!(
        (section, sub, name),
        (
            "alias" | "pager" | "hook" | "filter" | "sendemail" | "protocol",
            _,
            _
        ) | ("include", None, "path")
            | ("includeif", Some(_), "path")
            | (
                "core",
                None,
                "fsmonitor"
                    | "hookspath"
                    | "sshcommand"
                    | "pager"
                    | "editor"
                    | "askpass"
                    | "gitproxy"
                    | "alternaterefscommand",
            )
            | ("sequence", None, "editor")
            | ("interactive", None, "difffilter")
            | ("diff", None, "external" | "tool" | "guitool")
            | ("diff", Some(_), "textconv" | "command")
            | ("merge", None, "tool" | "guitool")
            | ("merge", Some(_), "driver")
            | (
                "mergetool" | "difftool" | "browser" | "man",
                Some(_),
                "cmd" | "path"
            )
            | ("credential", _, "helper")
            | ("gpg", _, "program")
            | ("gpg", Some("ssh"), "defaultkeycommand")
            | ("remote", Some(_), "uploadpack" | "receivepack")
            | ("submodule", Some(_), "update")
            | ("trailer", Some(_), "command" | "cmd")
            | ("tar", Some(_), "command")
            | ("web", None, "browser")
            | ("man", None, "viewer")
            | ("init", None, "templatedir")
            | ("ssh", None, "variant")
            | ("url", Some(_), "insteadof" | "pushinsteadof")
            | ("uploadpack", None, "packobjectshook")
    )
}

/// Whether `path` is a repository's own config file, which git reads whenever it runs there:
/// `.git/config`, `.git/config.worktree`, a linked worktree's `.git/worktrees/NAME/config.worktree`,
/// a submodule's `.git/modules/.../config`, and a bare repository's `NAME.git/config`. Lexical:
/// the caller passes a resolved path.
pub fn is_repository_config(path: &std::path::Path) -> bool {
    let names: Vec<&std::ffi::OsStr> = path.iter().collect();
    let Some(git) = names
        .iter()
        .rposition(|n| n.to_str().is_some_and(|n| n.ends_with(".git")))
    else {
        return false;
    };
    let below: Vec<&str> = names[git + 1..]
        .iter()
        .map(|n| n.to_str().unwrap_or(""))
        .collect();
    match below.as_slice() {
        ["config"] | ["config.worktree"] => true,
        ["worktrees", _, "config.worktree"] => true,
        ["modules", rest @ ..] => {
            rest.len() >= 2 && matches!(rest.last(), Some(&"config" | &"config.worktree"))
        }
        _ => false,
    }
}

/// The command-running entries of `new` that `old` does not have with the same value: what an
/// agent would add. `Err` when either cannot be read as git reads it (the caller must refuse:
/// git might read something this module does not see).
pub fn commands_added(old: &[u8], new: &[u8]) -> Result<Vec<Entry>, ConfigError> {
    let before: BTreeSet<Entry> = read(old)?
        .into_iter()
        .filter(|e| runs_command(&e.key))
        .collect();
    Ok(read(new)?
        .into_iter()
        .filter(|e| runs_command(&e.key) && !before.contains(e))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_configs_are_known_by_their_place() {
        use std::path::Path;
        for yes in [
            "/h/p/.git/config",
            "/h/p/.git/config.worktree",
            "/h/p/.git/worktrees/w/config.worktree",
            "/h/p/.git/modules/a/b/config",
            "/srv/r.git/config",
        ] {
            assert!(is_repository_config(Path::new(yes)), "{yes}");
        }
        for no in [
            "/h/p/.git/config.lock",
            "/h/p/.git/hooks/config",
            "/h/p/.git/worktrees/w/config",
            "/h/p/.git/modules/config",
            "/h/p/config",
            "/h/.gitconfig",
        ] {
            assert!(!is_repository_config(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn command_keys_are_found_however_they_are_written() {
        let added = |old: &str, new: &str| {
            commands_added(old.as_bytes(), new.as_bytes())
                .unwrap()
                .into_iter()
                .map(|e| e.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            added("", "[core]\n\tfsmonitor = /tmp/x\n"),
            ["core.fsmonitor"]
        );
        assert_eq!(added("", "[CORE] FSMonitor=x"), ["core.fsmonitor"]);
        assert_eq!(added("", "[core \"\"]\nhookspath=x"), Vec::<String>::new());
        assert_eq!(added("", "[alias]\n co = checkout"), ["alias.co"]);
        assert_eq!(
            added("", "[filter \"lfs\"]\nclean = x"),
            ["filter.lfs.clean"]
        );
        assert_eq!(
            added("", "[diff \"a.b\"]\ntextconv = x"),
            ["diff.a.b.textconv"]
        );
        assert_eq!(
            added("", "[includeIf \"gitdir:~/\"]\npath = x"),
            ["includeif.gitdir:~/.path"]
        );
        assert_eq!(
            added("", "[credential \"https://x\"]\nhelper = x"),
            ["credential.https://x.helper"]
        );
        // What git writes for itself adds nothing that runs.
        let init = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n";
        let remote = "[remote \"origin\"]\n\turl = /srv/x.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n[user]\n\tname = Agent\n";
        assert!(added("", init).is_empty());
        assert!(added(init, &format!("{init}{remote}")).is_empty());
        // A key the human had set may stay; changing its value is adding.
        let pager = "[core]\n\tpager = less\n";
        assert!(added(pager, pager).is_empty());
        assert_eq!(
            added(pager, "[core]\n\tpager = sh -c evil\n"),
            ["core.pager"]
        );
    }

    #[test]
    fn a_file_git_would_refuse_is_an_error() {
        assert!(read(b"[core\nx=1").is_err());
        assert!(read(b"[core]\nx = \"open\n").is_err());
        assert!(read(b"[core]\nx = a\\q\n").is_err());
        assert!(read(b"[core]\nx = a\0b\n").is_err());
    }
}
