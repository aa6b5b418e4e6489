//! Completions, man pages and the Debian package (issue 17 item 3): `scripts/package-deb` packs
//! the built binary, the package is installed with dpkg into a private root (its own dpkg
//! database), and the binary, a man page per command and the shell completions are where the
//! system looks for them, generated from the same clap definitions as the binary's own help.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_agent-guard");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn completions_name_every_subcommand_and_load_in_bash() {
    let bash = run(Command::new(BIN).args(["completions", "bash"]));
    for sub in [
        "install",
        "uninstall",
        "init",
        "override",
        "approve",
        "run",
        "denials",
    ] {
        assert!(bash.contains(sub), "bash completions lack {sub}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent-guard");
    std::fs::write(&file, &bash).unwrap();
    let loaded = run(Command::new("bash").arg("-c").arg(format!(
        "source {}; complete -p agent-guard",
        file.display()
    )));
    assert!(loaded.contains("agent-guard"), "{loaded}");
    let zsh = run(Command::new(BIN).args(["completions", "zsh"]));
    assert!(
        zsh.starts_with("#compdef agent-guard"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let (code, err) = {
        let out = Command::new(BIN)
            .args(["completions", "tcsh"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2));
    assert!(err.contains("bash") && err.contains("zsh"), "{err}");
}

#[test]
fn the_deb_installs_the_binary_man_pages_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/package-deb");
    let deb = run(Command::new(&script).arg(BIN).arg(&out_dir));
    let deb = deb.trim();
    assert!(deb.ends_with(".deb") && Path::new(deb).exists(), "{deb}");

    // A private root with an empty dpkg database: dpkg installs there as it would in /.
    let root = dir.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let root_arg = format!("--root={}", root.display());
    run(Command::new("dpkg").args([
        root_arg.as_str(),
        "--force-not-root",
        "--force-script-chrootless",
        "--log=/dev/null",
        "-i",
        deb,
    ]));
    let listed = run(Command::new("dpkg").args([root_arg.as_str(), "-L", "agent-guard"]));

    let installed = root.join("usr/bin/agent-guard");
    let version = run(Command::new(&installed).arg("--version"));
    assert!(version.starts_with("agent-guard "), "{version}");
    for page in [
        "agent-guard.1.gz",
        "agent-guard-install.1.gz",
        "agent-guard-override-approve.1.gz",
    ] {
        let path = root.join("usr/share/man/man1").join(page);
        assert!(
            listed.contains(&format!("/usr/share/man/man1/{page}")),
            "{listed}"
        );
        let roff = run(Command::new("gzip").arg("-dc").arg(&path));
        assert!(roff.contains(".TH"), "{page}: {roff}");
    }
    let install_page = run(Command::new("gzip")
        .arg("-dc")
        .arg(root.join("usr/share/man/man1/agent-guard-install.1.gz")));
    assert!(install_page.contains("dry\\-run"), "{install_page}");
    for completion in [
        "usr/share/bash-completion/completions/agent-guard",
        "usr/share/zsh/vendor-completions/_agent-guard",
        "usr/share/fish/vendor_completions.d/agent-guard.fish",
    ] {
        assert!(listed.contains(&format!("/{completion}")), "{listed}");
        let text = std::fs::read_to_string(root.join(completion)).unwrap();
        assert!(text.contains("uninstall"), "{completion}");
    }
}
