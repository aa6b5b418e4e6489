//! `override watch` driven as a human would: in a real terminal (a tmux pane), read with
//! capture-pane, answered with single keys sent by send-keys (no Enter).

use super::*;

/// A tmux server of its own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(w: &World, command: &str) -> Tmux {
        // One server per test: tests of this file run at once in one process.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("agent-guard-watch-{}-{n}", std::process::id());
        let env = format!(
            "env -i PATH={} HOME={} AGENT_GUARD_STATE_DIR={} AGENT_GUARD_POLICY={} TERM=xterm",
            std::env::var("PATH").unwrap_or_default(),
            w.home.display(),
            w.state.display(),
            w.policy_file.display()
        );
        // $SHELL runs the session's command; the passwd shell may be nologin.
        let status = Command::new("tmux")
            .env("SHELL", "/bin/sh")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "w",
                "-x",
                "200",
                "-y",
                "50",
            ])
            .arg(format!("{env} {command}; echo watch-exited-$?; sleep 30"))
            .status()
            .expect("tmux is installed (scripts/test installs it)");
        assert!(status.success());
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-t",
                "w",
                "-S",
                "-200",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (liveness bound) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {text:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn key(&self, key: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "w", key])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn file(w: &World, path: &Path, reason: &str) -> String {
    let (code, out, err) = w.run_with(
        &[
            "override",
            "request",
            path.to_str().unwrap(),
            "--op",
            "unlink",
            "--reason",
            reason,
            "--json",
        ],
        &[("AGENT_GUARD_AGENT", "claude:4200")],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn state_of(w: &World, id: &str) -> String {
    let (_, out, _) = w.run(&["override", "status", id, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_default();
    v["state"].as_str().unwrap_or("").to_string()
}

fn wait_state(w: &World, id: &str, want: &str) {
    let deadline = Instant::now() + LIVENESS;
    while state_of(w, id) != want {
        assert!(
            Instant::now() < deadline,
            "{id} never became {want}: {}",
            state_of(w, id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_shows_each_request_and_answers_it_with_one_key() {
    let w = World::new();
    let tmux = Tmux::start(&w, &format!("{BIN} override watch --no-notify"));
    tmux.wait_for("watching for override requests");

    let old = w.project.join("docs/old.md");
    let id = file(&w, &old, "the user asked to delete the old notes");
    // Who asked, exactly what, why, and the keys.
    let screen = tmux.wait_for(&id);
    assert!(
        screen.contains("the user asked to delete the old notes"),
        "{screen}"
    );
    assert!(
        screen.contains("claude") && screen.contains("old.md"),
        "{screen}"
    );
    assert!(screen.contains("[y] approve as asked"), "{screen}");
    assert_eq!(state_of(&w, &id), "pending");
    tmux.key("y");
    wait_state(&w, &id, "approved");
    tmux.wait_for(&format!("approved {id}"));

    // The next request, turned down with n.
    std::fs::write(w.project.join("docs/b.md"), "b").unwrap();
    let second = file(
        &w,
        &w.project.join("docs/b.md"),
        "the user wants b gone too",
    );
    tmux.wait_for(&second);
    tmux.key("n");
    wait_state(&w, &second, "denied");
    tmux.wait_for(&format!("denied {second}"));

    // q ends the view, with status 0.
    tmux.key("q");
    tmux.wait_for("watch-exited-0");
}

/// A notification service of the freedesktop spec (org.freedesktop.Notifications) on the bus
/// it is started on, which appends each notification it is asked to show to a file.
const NOTIFICATION_SERVICE: &str = r#"
import sys, json, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
out = sys.argv[1]
class Service(dbus.service.Object):
    @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("fake", "agent-guard-tests", "1", "1.2")
    @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body"]
    @dbus.service.method("org.freedesktop.Notifications", in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        with open(out, "a") as f:
            f.write(json.dumps({"app": str(app), "summary": str(summary), "body": str(body)}) + "\n")
        return 1
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
name = dbus.service.BusName("org.freedesktop.Notifications", dbus.SessionBus())
Service(dbus.SessionBus(), "/org/freedesktop/Notifications")
print("serving", flush=True)
GLib.MainLoop().run()
"#;

/// Where the session has a notification service, a new request is also a desktop notification
/// that names the agent and holds the reason and the approve command; the terminal view stays.
#[test]
fn a_request_is_also_a_desktop_notification_with_the_approve_command() {
    let w = World::new();
    let service = w.home.join("notifications.py");
    let (shown, ready) = (w.home.join("shown.jsonl"), w.home.join("ready"));
    std::fs::write(&service, NOTIFICATION_SERVICE).unwrap();
    // A private session bus with the service on it; watch runs on that bus.
    let tmux = Tmux::start(
        &w,
        &format!(
            "dbus-run-session -- sh -c '/usr/bin/python3 {service} {shown} > {ready} 2>&1 & \
             while ! grep -q serving {ready}; do sleep 0.05; done; {BIN} override watch'",
            service = service.display(),
            shown = shown.display(),
            ready = ready.display(),
        ),
    );
    tmux.wait_for("watching for override requests");
    let old = w.project.join("docs/old.md");
    let id = file(&w, &old, "the user asked to delete the old notes");
    tmux.wait_for(&id);
    let deadline = Instant::now() + LIVENESS;
    let notification: Value = loop {
        if let Some(line) = std::fs::read_to_string(&shown)
            .unwrap_or_default()
            .lines()
            .next()
        {
            break serde_json::from_str(line).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no notification was shown; the service said: {}\n{}",
            std::fs::read_to_string(&ready).unwrap_or_default(),
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(notification["app"], "agent-guard", "{notification}");
    let summary = notification["summary"].as_str().unwrap();
    assert!(
        summary.contains("claude") && summary.contains("asks for an override"),
        "{notification}"
    );
    let body = notification["body"].as_str().unwrap();
    assert!(
        body.contains("the user asked to delete the old notes")
            && body.contains("old.md")
            && body.contains(&format!("agent-guard override approve {id}")),
        "{notification}"
    );
    tmux.key("q");
    tmux.wait_for("watch-exited-0");
}

#[test]
fn an_agent_cannot_watch() {
    let w = World::new();
    let (code, _, err) = w.run_with(
        &["override", "watch", "--no-notify"],
        &[("AGENT_GUARD_AGENT", "claude:4200")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("watch"), "{err}");
}
