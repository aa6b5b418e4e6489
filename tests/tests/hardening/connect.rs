//! Item 4: servers outside the agent's tree that run commands for it or hold the user's keys.
//! A tmux server the human started ran the agent's commands (`new-session -d`, `if-shell`,
//! `set-hook`: argv rules cannot list them all), and a client without the tmux binary talks to
//! the socket too. connect() to a local socket is judged by who listens: a known command runner
//! or credential holder outside the tree (tmux, ssh-agent here) is refused whatever the client;
//! the agent's own servers and other servers of the human's keep working.

use std::process::{Command, Stdio};

use super::*;

/// Kills what the human started when the test ends.
struct Human(Vec<std::process::Child>, Vec<String>);

impl Drop for Human {
    fn drop(&mut self) {
        for script in &self.1 {
            let _ = Command::new("sh").args(["-c", script]).output();
        }
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(path: &Path) {
    let start = std::time::Instant::now();
    while !path.exists() && start.elapsed() < agent_guard_e2e::LIVENESS {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(path.exists(), "{} never appeared", path.display());
}

const RAW_CLIENT: &str = r#"
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        print("CONNECTED", path, flush=True)
    except OSError as e:
        print("REFUSED", path, e.errno, flush=True)
"#;

const PLAIN_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"hello")
    c.close()
"#;

#[test]
fn command_servers_outside_the_tree_are_refused_and_other_servers_reached() {
    if !agent_guard_e2e::on_path("tmux") || !agent_guard_e2e::on_path("ssh-agent") {
        eprintln!("note: tmux or ssh-agent missing: nothing to test");
        return;
    }
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        let socks = s.root.join("socks");
        std::fs::create_dir_all(&socks).unwrap();
        open_up(&s, &socks);
        let (tmux, agent, plain) = (
            socks.join("tmux"),
            socks.join("ssh-agent"),
            socks.join("plain"),
        );
        std::fs::write(s.root.join("client.py"), RAW_CLIENT).unwrap();
        std::fs::write(s.root.join("server.py"), PLAIN_SERVER).unwrap();
        // tmux runs a session's command with $SHELL, else the passwd shell: a test user's is
        // nologin, and its sessions (and with them the server) would end at once.
        let started = Command::new("tmux")
            .env("SHELL", "/bin/sh")
            .arg("-S")
            .arg(&tmux)
            .args(["new-session", "-d", "-s", "human", "sleep 300"])
            .output()
            .unwrap();
        assert!(started.status.success(), "{}", text(&started));
        let human = Human(
            vec![
                Command::new("ssh-agent")
                    .args(["-D", "-a"])
                    .arg(&agent)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
                Command::new("python3")
                    .arg(s.root.join("server.py"))
                    .arg(&plain)
                    .spawn()
                    .unwrap(),
            ],
            vec![format!("tmux -S {} kill-server", tmux.display())],
        );
        wait_for(&agent);
        wait_for(&plain);
        let before = s.denials().len();
        let out = agent_in(
            &s,
            mode,
            &format!(
                "export SHELL=/bin/sh; T={tmux}; tmux -S $T new-session -d \"touch $HOME/pwned-new\"; \
                 tmux -S $T if-shell true \"run-shell 'touch $HOME/pwned-if'\"; \
                 SSH_AUTH_SOCK={agent} ssh-add -l >/dev/null 2>&1; echo SSH-ADD=$?; \
                 python3 {client} $T {agent} {plain}; \
                 tmux -S $HOME/own.sock new-session -d 'sleep 30' && tmux -S $HOME/own.sock ls >/dev/null && echo OWN-TMUX; \
                 tmux -S $HOME/own.sock kill-server",
                tmux = tmux.display(),
                agent = agent.display(),
                plain = plain.display(),
                client = s.root.join("client.py").display(),
            ),
        );
        let all = text(&out);
        std::thread::sleep(std::time::Duration::from_millis(300));
        for pwned in ["pwned-new", "pwned-if"] {
            assert!(!s.path(pwned).exists(), "{mode:?}: {pwned}: {all}");
        }
        let got = stdout(&out);
        // ssh-add: 2 = cannot connect to the agent (1 would be "no identities": it talked).
        assert!(got.contains("SSH-ADD=2"), "{mode:?}: {all}");
        assert!(
            got.contains(&format!("REFUSED {} 1\n", tmux.display())),
            "{mode:?}: {all}"
        );
        assert!(
            got.contains(&format!("REFUSED {} 1\n", agent.display())),
            "{mode:?}: {all}"
        );
        assert!(
            got.contains(&format!("CONNECTED {}\n", plain.display())),
            "{mode:?}: {all}"
        );
        assert!(got.contains("OWN-TMUX"), "{mode:?}: {all}");
        let new = new_denials(&s, before, 3);
        let servers: Vec<_> = new
            .iter()
            .filter(|r| r["rule"] == "command_server" && r["op"] == "connect")
            .collect();
        assert!(servers.len() >= 3, "{mode:?}: {new:#?}");
        drop(human);
    }
}
