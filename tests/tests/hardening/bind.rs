//! Item 7: bind() of a local socket to a path makes a file, and is judged as a create of that
//! path (it used to be allowed in a read-only directory and in ~/.ssh). Binding in an ordinary
//! directory, to an abstract name, and serving on it keep working.

use super::*;

const BINDER: &str = r#"
import os, socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        print("BOUND", path, flush=True)
    except OSError as e:
        print("REFUSED", path, e.errno, flush=True)
# An ordinary server and client, path and abstract.
for name in ["scratch/ok.sock", "\0agent-guard-test-%d" % os.getpid()]:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(1)
    cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cli.connect(name)
    conn, _ = srv.accept()
    cli.sendall(b"ping")
    print("SERVED", conn.recv(4).decode(), flush=True)
"#;

#[test]
fn binding_a_socket_is_creating_a_file() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        std::fs::write(s.root.join("binder.py"), BINDER).unwrap();
        std::fs::create_dir_all(s.path("scratch")).unwrap();
        let before = s.denials().len();
        let out = agent_in(
            &s,
            mode,
            &format!(
                "python3 {} ro/planted.sock .ssh/agent.sock proj/src/x.sock",
                s.root.join("binder.py").display()
            ),
        );
        let all = text(&out);
        for refused in ["ro/planted.sock", ".ssh/agent.sock"] {
            assert!(
                stdout(&out).contains(&format!("REFUSED {refused} 1\n")),
                "{mode:?}: {refused}: {all}"
            );
            assert!(!s.path(refused).exists(), "{mode:?}: {refused}");
        }
        // A protected zone forbids deleting, not creating.
        assert!(
            stdout(&out).contains("BOUND proj/src/x.sock"),
            "{mode:?}: {all}"
        );
        assert_eq!(
            stdout(&out).matches("SERVED ping").count(),
            2,
            "{mode:?}: {all}"
        );
        let new = new_denials(&s, before, 2);
        for refused in ["ro/planted.sock", ".ssh/agent.sock"] {
            let path = s.path(refused).display().to_string();
            assert!(
                new.iter()
                    .any(|r| r["op"] == "create" && r["path"] == path.as_str()),
                "{mode:?}: {path}: {new:#?}"
            );
        }
    }
}
