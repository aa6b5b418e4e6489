//! Text made safe for where it goes: a human's terminal ([`printable`]) or a shell command line
//! ([`shell_quote`]). Agents choose file names and reasons, and records carry them.

/// `s` with everything that could hide or rewrite what a human reads shown as Rust escapes:
/// control characters (newlines, escape sequences: `a\u{1b}[2Kb\nc` prints as
/// `a\u{1b}[2Kb\nc`), the bidirectional overrides and isolates that reorder a line on screen
/// (U+202A–U+202E, U+2066–U+2069: `approve r-1 \u{202e}` can make a path read backwards), and
/// the other invisible characters ([`is_invisible`]) that make two different names look alike.
pub fn printable(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_invisible(c)
}

/// Characters that print as nothing (or reorder what follows) but are not control characters:
/// bidirectional embeddings, overrides, isolates and marks, zero-width spaces and joiners, the
/// line and paragraph separators, the byte-order mark, soft hyphen, invisible operators,
/// fillers that render blank, variation selectors, interlinear annotation marks and tags.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
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
    fn printable_escapes_bidi_controls_and_invisible_characters() {
        // Every bidi embedding, override and isolate of the issue, each alone.
        for cp in (0x202A..=0x202E).chain(0x2066..=0x2069) {
            let c = char::from_u32(cp).unwrap();
            let shown = printable(&format!("a{c}b"));
            assert_eq!(shown, format!("a\\u{{{cp:x}}}b"), "U+{cp:04X}");
            assert!(!shown.contains(c));
        }
        // A name that shows as "/p/txt.exe" on screen through a right-to-left override.
        assert_eq!(printable("/p/\u{202e}exe.txt"), "/p/\\u{202e}exe.txt");
        for c in [
            '\u{200b}',
            '\u{200d}',
            '\u{200e}',
            '\u{feff}',
            '\u{2028}',
            '\u{ad}',
            '\u{e0041}',
            '\u{2060}',
            '\u{61c}',
        ] {
            assert!(!printable(&format!("x{c}y")).contains(c), "{:x}", c as u32);
        }
        // Visible text, accents and emoji stay as they are.
        for kept in ["café", "日本語", "Ωmega", "a\u{301}", "😀"] {
            assert_eq!(printable(kept), kept);
        }
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("/a/b.txt"), "/a/b.txt");
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
