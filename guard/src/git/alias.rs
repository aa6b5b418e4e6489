//! What git reads before the subcommand, and where its aliases come from: global options
//! (`-C dir`, `-c key=value`, `--git-dir=...`), aliases set on its own command line or in its
//! environment (`GIT_CONFIG_PARAMETERS`, which a parent git's `-c` passes on, and
//! `GIT_CONFIG_COUNT` with `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`), and git's own splitting of an
//! alias's value into words.
//!
//! Pure: no I/O. Aliases from config files are not seen here (see the module docs of `git`).

/// Consume git's global options (git.c `handle_options`: exact names, no abbreviation) from the
/// front of `args`, collecting `-c alias.NAME=VALUE` and `--config-env=alias.NAME=VAR`.
pub(super) fn global_options(
    args: &mut Vec<String>,
    aliases: &mut Vec<(String, String)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ()> {
    const FLAGS: &[&str] = &[
        "-p",
        "--paginate",
        "-P",
        "--no-pager",
        "--no-replace-objects",
        "--bare",
        "--literal-pathspecs",
        "--no-literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--no-optional-locks",
        "--no-advice",
        "--no-lazy-fetch",
        "--exec-path",
        "--html-path",
        "--man-path",
        "--info-path",
    ];
    // Options that take the next argument, or `=VALUE` attached.
    const WITH_VALUE: &[&str] = &[
        "--git-dir",
        "--work-tree",
        "--namespace",
        "--config-env",
        "--attr-source",
        "--shallow-file",
        "--super-prefix",
    ];
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if !arg.starts_with('-') {
            break;
        }
        if arg == "-v" || arg == "--version" {
            args[i] = "version".to_string();
            break;
        }
        if arg == "-h" || arg == "--help" {
            args[i] = "help".to_string();
            break;
        }
        if FLAGS.contains(&arg.as_str())
            || arg.starts_with("--exec-path=")
            || arg.starts_with("--list-cmds=")
        {
            i += 1;
            continue;
        }
        if arg == "-c" || arg == "-C" {
            let value = args.get(i + 1).ok_or(())?;
            if arg == "-c" {
                if let Some((key, v)) = value.split_once('=') {
                    push_alias(aliases, key, v);
                }
            }
            i += 2;
            continue;
        }
        let (name, attached) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if !WITH_VALUE.contains(&name) {
            return Err(());
        }
        let value = match attached {
            Some(v) => {
                i += 1;
                v
            }
            None => {
                let v = args.get(i + 1).ok_or(())?.clone();
                i += 2;
                v
            }
        };
        if name == "--config-env" {
            if let Some((key, var)) = value.split_once('=') {
                // An unset variable makes git fail; an alias we cannot see is treated as set
                // to nothing that could match (the subcommand then stays unexpanded).
                if let Some(v) = env(var) {
                    push_alias(aliases, key, &v);
                }
            }
        }
    }
    args.drain(..i);
    Ok(())
}

fn push_alias(aliases: &mut Vec<(String, String)>, key: &str, value: &str) {
    // Config keys: section and variable names are case-insensitive.
    let key = key.to_ascii_lowercase();
    if let Some(name) = key.strip_prefix("alias.") {
        aliases.push((name.to_string(), value.to_string()));
    }
}

/// Aliases git reads from its environment: `GIT_CONFIG_PARAMETERS` (what `-c` of a parent git
/// passes on) and `GIT_CONFIG_COUNT` with `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`.
pub(super) fn env_aliases(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut aliases = Vec::new();
    if let Some(params) = env("GIT_CONFIG_PARAMETERS") {
        for (key, value) in parse_config_parameters(&params) {
            push_alias(&mut aliases, &key, &value);
        }
    }
    let count = env("GIT_CONFIG_COUNT")
        .and_then(|c| c.trim().parse::<usize>().ok())
        .unwrap_or(0);
    for n in 0..count.min(1024) {
        if let (Some(k), Some(v)) = (
            env(&format!("GIT_CONFIG_KEY_{n}")),
            env(&format!("GIT_CONFIG_VALUE_{n}")),
        ) {
            push_alias(&mut aliases, &k, &v);
        }
    }
    aliases
}

/// `GIT_CONFIG_PARAMETERS`: entries separated by spaces, each `'key=value'` (old form) or
/// `'key'='value'` (git 2.31+), single-quoted the shell's way (`'\''` for a quote).
fn parse_config_parameters(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        // One entry: quoted segments and bare characters up to unquoted whitespace; an
        // unquoted `=` separates a quoted key from a quoted value (the newer form).
        let mut key: Option<String> = None;
        let mut current = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '\'' => {
                    for q in chars.by_ref() {
                        if q == '\'' {
                            break;
                        }
                        current.push(q);
                    }
                }
                '\\' => current.extend(chars.next()),
                '=' if key.is_none() => key = Some(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        let entry = match key {
            Some(key) => (key, current),
            None => match current.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (current, "true".to_string()),
            },
        };
        out.push(entry);
    }
}

/// git's `split_cmdline` for alias values: words separated by whitespace, single and double
/// quotes, backslash escapes outside single quotes. `None` for an unclosed quote (git refuses).
pub(super) fn split_cmdline(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        q => word.push(q),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        q => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}
