//! Text made safe for where it goes: a human's terminal ([`printable`]) or a shell command line
//! ([`shell_quote`]). Agents choose file names, and records carry them.

/// `s` with control characters (newlines, escape sequences that could rewrite what a human sees
/// on the terminal) shown as Rust escapes: `a\u{1b}[2Kb\nc` prints as `a\u{1b}[2Kb\nc`.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Quote for a POSIX shell when needed, so a hint can be pasted as is.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_terminal_control() {
        assert_eq!(printable("a\u{1b}[2Kb\nc"), "a\\u{1b}[2Kb\\nc");
        assert_eq!(printable("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/a/b.txt"), "/a/b.txt");
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
