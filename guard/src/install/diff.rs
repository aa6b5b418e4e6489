//! A line diff for showing what `install` would change (`--dry-run`) and what it changed:
//! `-` lines taken out, `+` lines put in, with a few lines of context, as `diff -u` prints them
//! (without hunk headers). Settings files are small; the table is quadratic and capped.

/// Files with more lines than this are summarized instead of diffed line by line.
const MAX_LINES: usize = 4000;

/// The diff of `before` (`None`: no file) and `after` (`None`: removed), labelled `name`.
pub fn unified_diff(name: &str, before: Option<&str>, after: Option<&str>) -> String {
    let a: Vec<&str> = before.map(|t| t.lines().collect()).unwrap_or_default();
    let b: Vec<&str> = after.map(|t| t.lines().collect()).unwrap_or_default();
    let mut out = format!(
        "--- {}\n+++ {}\n",
        if before.is_some() { name } else { "/dev/null" },
        if after.is_some() { name } else { "/dev/null" }
    );
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        out.push_str(&format!("({} lines -> {} lines)\n", a.len(), b.len()));
        return out;
    }
    // Longest common subsequence table, from the ends.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Taken-out lines before the lines put in their place, as diff -u prints them.
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    // Context: three lines around each change.
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 3);
    let mut skipped = false;
    for (k, (mark, line)) in lines.iter().enumerate() {
        if *mark != ' ' || near(k) {
            if skipped {
                out.push_str("@@\n");
                skipped = false;
            }
            out.push_str(&format!("{mark}{line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_what_was_added_and_taken_out() {
        let d = unified_diff("f", Some("a\nb\nc\n"), Some("a\nB\nc\nd\n"));
        assert_eq!(d, "--- f\n+++ f\n a\n-b\n+B\n c\n+d\n");
        let new = unified_diff("f", None, Some("x\n"));
        assert!(new.starts_with("--- /dev/null\n+++ f\n+x\n"), "{new}");
        let long: String = (0..20).map(|i| format!("{i}\n")).collect();
        let changed = long.replace("10\n", "ten\n");
        let d = unified_diff("f", Some(&long), Some(&changed));
        assert!(
            d.contains("-10\n+ten\n") && d.contains("@@") && !d.contains(" 2\n"),
            "{d}"
        );
    }
}
