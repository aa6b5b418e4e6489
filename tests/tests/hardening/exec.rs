//! Item 3: exec rules judge the program the kernel really runs. `/dev/fd/N` and
//! `/proc/self/fd/N` are the task's fd N (the "missing program" shortcut used to look in the
//! supervisor's own fd table and let them through unjudged), `execveat(fd, "", AT_EMPTY_PATH)`
//! runs fd's file, a `#!` script runs its interpreter with the script's arguments (judged as the
//! kernel starts it, nested scripts too), and git's aliases from its environment
//! (`GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n`) are read with the exec.

use super::*;

/// proj/ as a git repository with src/ committed and README.md untracked (git clean would
/// delete it).
fn repo(s: &Sandbox) {
    assert!(
        agent_guard_e2e::on_path("git"),
        "git is required for this test"
    );
    let setup = s.human(
        "cd proj && git init -q && git add src && git -c user.name=t -c user.email=t@t commit -qm init",
    );
    assert!(setup.status.success(), "{}", text(&setup));
}

fn exec_rule_records(new: &[serde_json::Value]) -> usize {
    new.iter()
        .filter(|r| r["rule"] == "exec_rule" && r["op"] == "exec")
        .count()
}

/// Run each attack as the agent in `mode`; README.md must survive each one and each must leave
/// an exec-rule record.
fn assert_each_refused(s: &Sandbox, mode: Mode, attacks: &[&str]) {
    for attack in attacks {
        let before = s.denials().len();
        let out = agent_in(s, mode, &format!("cd proj && {attack}"));
        let all = text(&out);
        assert!(
            s.path("proj/README.md").exists(),
            "{mode:?}: {attack}: README.md was cleaned\n{all}"
        );
        let new = new_denials(s, before, 1);
        assert!(
            exec_rule_records(&new) >= 1,
            "{mode:?}: {attack}: {new:#?}\n{all}"
        );
    }
}

#[test]
fn a_program_run_through_an_fd_is_the_fd_s_file() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        repo(&s);
        assert_each_refused(
            &s,
            mode,
            &[
                "exec 200<$(command -v git); /dev/fd/200 clean -fdx",
                "exec 200<$(command -v git); /proc/self/fd/200 clean -fdx",
                "ln -s /dev/fd/200 ../g; exec 200<$(command -v git); ../g clean -fdx",
                // fexecve: execveat(fd, \"\", AT_EMPTY_PATH), argv[0] no help.
                "python3 -c 'import os,shutil; fd=os.open(shutil.which(\"git\"), os.O_RDONLY); os.execve(fd, [\"x\", \"clean\", \"-fdx\"], dict(os.environ))'",
            ],
        );
        // The same ways, harmless, still run.
        let out = agent_in(
            &s,
            mode,
            "cd proj && exec 201<$(command -v git); /dev/fd/201 status --short; \
             python3 -c 'import os,shutil; fd=os.open(shutil.which(\"git\"), os.O_RDONLY); os.execve(fd, [\"x\", \"status\", \"--short\"], dict(os.environ))'",
        );
        assert_eq!(
            stdout(&out).matches("?? README.md").count(),
            2,
            "{mode:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_script_runs_its_interpreter_as_the_kernel_starts_it() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        repo(&s);
        let git = String::from_utf8(
            std::process::Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let scripts = s.root.join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        let script = |name: &str, body: String| {
            use std::os::unix::fs::PermissionsExt;
            let path = scripts.join(name);
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let cleaner = script("cleaner", format!("#!{} clean\n", git.trim()));
        // A script whose interpreter is itself a script: the kernel runs git at the end.
        let nested = script("nested", format!("#!{cleaner}\n"));
        let hello = script("hello", "#!/bin/sh\necho hello from sh\n".to_string());
        let py = script(
            "py",
            "#!/usr/bin/env python3\nprint('hello from python')\n".to_string(),
        );
        assert_each_refused(
            &s,
            mode,
            &[
                &format!("{cleaner} -fdx ."),
                &format!("{nested} -fdx ."),
                &format!("exec 200<{cleaner}; /dev/fd/200 -fdx ."),
            ],
        );
        // A script nobody but the kernel can read (mode 0111): the kernel still reads its
        // `#!` line; when the supervisor cannot (unprivileged), the exec is refused unjudged.
        // (In the repository: git refuses a pathspec outside it, the script's own name.)
        let hidden = s.path("proj/hidden");
        std::fs::write(&hidden, format!("#!{} clean\n", git.trim())).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o111)).unwrap();
        }
        let out = agent_in(&s, mode, "cd proj && ./hidden -fdx .");
        assert!(
            s.path("proj/README.md").exists(),
            "{mode:?}: an unreadable #!git script cleaned\n{}",
            text(&out)
        );
        let out = agent_in(&s, mode, &format!("{hello}; {py}"));
        assert!(
            stdout(&out).contains("hello from sh\nhello from python\n"),
            "{mode:?}: {}",
            text(&out)
        );
    }
}

/// git execs itself again for an alias of a builtin (`git x` runs `git clean -fdx`), and that
/// exec is judged anyway; but the first one, `git x`, must already be judged as what it is, so
/// that git does nothing at all (GIT_TRACE shows whether it started).
#[test]
fn git_aliases_from_the_environment_are_judged() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        repo(&s);
        let attacks = [
                "GIT_CONFIG_PARAMETERS=\"'alias.x=clean -fdx'\" git x",
                "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=alias.y GIT_CONFIG_VALUE_0='clean -fdx' git y",
                // The entry hidden behind many others is still read.
                "for i in $(seq 1 400); do export FILLER_$i=$i; done; GIT_CONFIG_PARAMETERS=\"'alias.x=clean -fdx'\" git x",
                "CMD='clean -fdx' git --config-env=alias.z=CMD z",
            ];
        assert_each_refused(&s, mode, &attacks);
        for attack in attacks {
            let out = agent_in(
                &s,
                mode,
                &format!("cd proj && export GIT_TRACE=1; {attack}"),
            );
            assert!(
                !text(&out).contains("alias expansion"),
                "{mode:?}: {attack}: git started\n{}",
                text(&out)
            );
        }
        let out = agent_in(
            &s,
            mode,
            "cd proj && GIT_CONFIG_PARAMETERS=\"'alias.st=status --short'\" git st",
        );
        assert!(
            stdout(&out).contains("?? README.md"),
            "{mode:?}: {}",
            text(&out)
        );
    }
}
