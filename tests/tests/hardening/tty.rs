//! Item 5: an agent cannot type into a terminal. With `dev.tty.legacy_tiocsti=1` (or as root,
//! whatever the setting) TIOCSTI pushed a command into the input of the human's shell on the
//! shared terminal, which ran it after the agent exited; TIOCLINUX pastes a selection on a
//! virtual console. Both fail in the filter, on any fd; other terminal ioctls run.

use super::*;

/// In a new session with a pty as its controlling terminal (as the agent's shell has the
/// human's), try TIOCSTI and TIOCLINUX on it and read the window size; then check from the
/// master side that nothing was typed.
const TYPIST: &str = r#"
import errno, fcntl, os, select, struct, termios
master, slave = os.openpty()
name = os.ttyname(slave)
pid = os.fork()
if pid == 0:
    os.setsid()
    tty = os.open(name, os.O_RDWR)  # becomes the controlling terminal
    for what, request, arg in [("STI", termios.TIOCSTI, b"x"), ("LINUX", 0x541C, b"\x02")]:
        try:
            fcntl.ioctl(tty, request, arg)
            print(what, 0, flush=True)
        except OSError as e:
            print(what, e.errno, flush=True)
    fcntl.ioctl(tty, termios.TIOCGWINSZ, b"\0" * 8)
    print("WINSZ ok", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
# A byte typed with TIOCSTI would be in the slave's input queue.
print("QUEUED", struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0" * 4))[0])
"#;

#[test]
fn an_agent_cannot_type_into_a_terminal() {
    for mode in Mode::BOTH {
        let s = Sandbox::new();
        std::fs::write(s.root.join("typist.py"), TYPIST).unwrap();
        let out = agent_in(
            &s,
            mode,
            &format!("python3 {}", s.root.join("typist.py").display()),
        );
        let all = text(&out);
        let got = stdout(&out);
        // EPERM (1) from the filter; before, root typed (0) and others got EIO or ENOTTY.
        assert!(got.contains("STI 1\n"), "{mode:?}: {all}");
        assert!(got.contains("LINUX 1\n"), "{mode:?}: {all}");
        assert!(got.contains("WINSZ ok"), "{mode:?}: {all}");
        assert!(got.contains("QUEUED 0"), "{mode:?}: {all}");
    }
}
