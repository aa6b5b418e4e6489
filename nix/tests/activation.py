#!/usr/bin/env python3
"""Checks of nix/darwin-module.nix inside nix-darwin's real module system, and of its activation.

Each scenario evaluates a nix-darwin configuration with nix/tests/eval.nix (nix-darwin's own
eval-config.nix, its whole module list, nixpkgs' lib; only `pkgs` is a stand-in), then runs the
activation fragments it renders (nix-darwin's checks, extraActivation, launchd, postActivation,
in that order, under `set -e` as nix-darwin's script runs them) on a stand-in Mac: a temporary
root the script's absolute paths are moved under, the stand-in commands of standins.py first on
PATH, the real agent-guard binary behind the package's, and the rest of the file system
read-only (a private mount namespace), so a path the move missed fails instead of touching
this machine. Run as root by .ci/nix-check.sh; `--module FILE` checks another version of the
module (the old one, to see each check fail without its fix).
"""

import argparse
import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STANDINS = HERE / "standins.py"
LABEL = "com.agent-guard.daemon"
APP_SUPPORT = "/Library/Application Support/agent-guard"
BUNDLE = f"{APP_SUPPORT}/AgentGuard.app"
DAEMON = f"{BUNDLE}/Contents/MacOS/agent-guard"
ES = "com.apple.developer.endpoint-security.client"
APP_ID = "com.apple.application-identifier"
TEAM_ID = "com.apple.developer.team-identifier"
POLICY = "/etc/agent-guard/policy.json"
STATE_DIR = "/var/db/agent-guard"
LOG_DIR = "/var/log/agent-guard"
TEAM = "ABCDE12345"
DEVELOPER_ID = f"Developer ID Application: Example Corp ({TEAM})"
CMS_HEADER = b"STANDIN-CMS-SIGNED-DATA\n"
# The directories a script's absolute paths are moved under the stand-in root from.
ROOTED = ("etc", "var", "Library", "usr/local", "run", "Applications")
STANDIN_COMMANDS = ("codesign", "csrutil", "security", "plutil", "launchctl", "sw_vers", "tccutil")

failures = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


class EvalError(Exception):
    pass


class Mac:
    """A stand-in Mac: a root directory, the packages, macOS's state and the stand-in commands."""

    def __init__(self, args, sip="disabled", identities=(), usr_local_owner=None):
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="agent-guard-nix-"))
        self.root = self.dir / "root"
        self.build = self.dir / "build"
        self.state = self.dir / "state"
        self.bin = self.dir / "bin"
        for d in (self.build, self.state, self.bin, self.dir / "tmp", self.dir / "system/etc"):
            d.mkdir(parents=True)
        for d in ("Library/LaunchDaemons", "Library/LaunchAgents", "Library/Application Support",
                  "etc", "var/db", "var/log", "var/root", "Applications"):
            (self.root / d).mkdir(parents=True)
        (self.root / "etc/profile").write_text("# macOS's /etc/profile\n")
        if usr_local_owner is not None:  # Intel Homebrew: /usr/local/bin belongs to the user
            (self.root / "usr/local/bin").mkdir(parents=True)
            os.chown(self.root / "usr/local/bin", usr_local_owner, 20)
        (self.state / "sip").write_text(sip)
        (self.state / "identities.json").write_text(json.dumps(list(identities)))
        for name in STANDIN_COMMANDS:
            self.shim(self.bin / name, f'exec {sys.executable} -S -B {STANDINS} {name} "$@"')
        for version in ("0.1.0", "0.2.0"):
            standin = f'exec {sys.executable} -S -B {STANDINS} agent-guard "$0" "$@"'
            self.shim(self.build / f"agent-guard-{version}/bin/agent-guard", f"# agent-guard {version}\n{standin}")
        (self.build / "jq/bin").mkdir(parents=True)
        (self.build / "jq/bin/jq").symlink_to(shutil.which("jq"))
        self.output = ""

    @staticmethod
    def shim(path, body):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def close(self):
        shutil.rmtree(self.dir)

    def at(self, path):
        """A Mac path, under the stand-in root."""
        return self.root / path.lstrip("/")

    def profile(self, team=TEAM, app_id=None, grant=True, cms=True, serial=1):
        """Write the provisioning profile (for the stand-in `security cms -D`); returns its path."""
        ents = {APP_ID: app_id or f"{team}.{LABEL}", TEAM_ID: team, "keychain-access-groups": [f"{team}.*"]}
        if grant:
            ents[ES] = True
        plist = plistlib.dumps({"AppIDName": "agent-guard", "TeamIdentifier": [team], "Entitlements": ents,
                                "Name": f"agent-guard {serial}", "UUID": f"0000-{serial}"})
        path = self.dir / "profiles/agent-guard.provisionprofile"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes((CMS_HEADER if cms else b"") + plist)
        return path

    def evaluate(self, config, is_darwin=True):
        """Evaluate a system whose services.agent-guard is `config` (Nix attribute bindings)."""
        # --read-write-mode: writeText's stand-in writes its file into the store (builtins.toFile).
        cmd = ["nix-instantiate", "--eval", "--read-write-mode", "--strict", "--json", str(HERE / "eval.nix"),
               "--argstr", "buildDir", str(self.build),
               "--arg", "isDarwin", "true" if is_darwin else "false",
               "--arg", "module", str(self.args.module),
               "--arg", "inputs", str(self.args.inputs),
               "--arg", "config", f"{{ pkgs, lib, ... }}: {{ services.agent-guard = {{ {config} }}; }}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise EvalError(r.stderr.strip())
        ev = json.loads(r.stdout)
        for b in ev["builds"]:
            if not os.path.exists(b["out"]):
                env = {"out": b["out"], "PATH": os.environ["PATH"]}
                subprocess.run(["bash", "-euc", b["script"]], env=env, check=True)
        return ev

    def script(self, ev):
        """The fragments in nix-darwin's order, every absolute path moved under the root."""
        f = ev["fragments"]
        names = ("checks", "extraActivation", "launchd", "postActivation")
        body = "\n".join(f[n] for n in names)
        for cmd in STANDIN_COMMANDS:  # however the script names them
            body = re.sub(rf"(?<![\w./-])/(?:usr/bin|bin|usr/sbin|sbin)/{cmd}\b", cmd, body)
        rooted = "|".join(re.escape(p) for p in ROOTED)
        body = re.sub(rf"(?<![\w.~$}}/-])/(?=(?:{rooted})(?:[/'\"\s;)]|$))", f"{self.root}/", body)
        return "set -e\nset -o pipefail\numask 0022\ncd /\n" + body

    def activate(self, ev):
        """Run the activation; its output is in self.output, its calls in the state files."""
        path = self.dir / "activate.sh"
        path.write_text(self.script(ev))
        env = {"PATH": f"{self.bin}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.at("/var/root")),
               "LANG": "C", "TMPDIR": str(self.dir / "tmp"), "systemConfig": str(self.dir / "system"),
               "STANDIN_STATE": str(self.state), "STANDIN_ROOT": str(self.root),
               "STANDIN_AGENT_GUARD": str(self.args.agent_guard), "PYTHONDONTWRITEBYTECODE": "1"}
        (self.state / "calls.jsonl").unlink(missing_ok=True)
        (self.state / "spawns.jsonl").unlink(missing_ok=True)
        # macOS names gid 0 wheel: so does the namespace's /etc/group.
        group = self.dir / "group"
        group.write_text(Path("/etc/group").read_text() + "wheel:x:0:root\n")
        inner = (f"mount --make-rprivate / && mount --bind {self.dir} {self.dir} && "
                 f"mount --bind {group} /etc/group && mount -o remount,bind,ro / && exec bash {path}")
        r = subprocess.run(["unshare", "--mount", "bash", "-c", inner],
                           env=env, capture_output=True, text=True)
        self.output = r.stdout + r.stderr
        if self.args.verbose:
            print(self.output)
        return r.returncode

    def jsonl(self, name):
        p = self.state / name
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def calls(self, cmd=None):
        return [c for c in self.jsonl("calls.jsonl") if cmd is None or c["cmd"] == cmd]

    def signs(self):
        return [c for c in self.calls("codesign") if "--sign" in c["args"]]

    def spawns(self):
        return self.jsonl("spawns.jsonl")

    def daemon_spawns(self):
        """Each time launchd started com.agent-guard.daemon, with AMFI's verdict."""
        return [s for s in self.spawns() if s["label"] == LABEL]

    def signatures(self):
        p = self.state / "signatures.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def signature(self, path):
        """What codesign signed `path` with, or None."""
        if path is None or not self.at(path).exists():
            return None
        st = os.stat(self.at(path))
        return self.signatures().get(f"{st.st_dev}:{st.st_ino}")

    def signed_paths(self):
        """Every file or directory, in the root or the packages, that holds a signature now."""
        sigs = self.signatures()
        found = []
        for base in (self.root, self.build):
            for dirpath, dirnames, filenames in os.walk(base):
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    if f"{st.st_dev}:{st.st_ino}" in sigs:
                        found.append(p)
        return found

    def owned_by_root_only(self, path):
        """Every directory from the root down to `path`: root's and writable by nobody else."""
        p = self.at(path)
        parts = [p] + [q for q in p.parents if q != self.root and self.root in q.parents]
        bad = [str(q) for q in parts if q.is_symlink() or not q.exists()
               or q.stat().st_uid != 0 or q.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH)]
        return not bad

    def daemon_program(self):
        """The executable the installed LaunchDaemon runs, as the Mac spells it."""
        plist = self.at(f"/Library/LaunchDaemons/{LABEL}.plist")
        return plistlib.loads(plist.read_bytes())["ProgramArguments"][0] if plist.exists() else None

    def tree(self, path):
        """The files under `path` and their contents, to compare before and after."""
        base = self.at(path)
        return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}

    def mode(self, path):
        """(uid, gid, permission bits with the sticky bit), or None."""
        if not self.at(path).exists():
            return None
        st = os.stat(self.at(path))
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode) | (st.st_mode & stat.S_ISVTX)


def scenario(title):
    """A scenario gets `mac(**kw)`, which sets up a fresh stand-in Mac (see Mac)."""
    def register(fn):
        SCENARIOS.append((title, fn))
        return fn
    return register


SCENARIOS = []
ENABLE = "enable = true;"


def plist_of(ev):
    return plistlib.loads(ev["daemonPlist"].encode()) if ev["daemonPlist"] else None


@scenario("defaults, SIP disabled: the module inside nix-darwin, and a first install")
def first_install(new):
    mac = new(sip="disabled")
    ev = mac.evaluate(ENABLE)
    problems = ev["failedAssertions"] + ev["warnings"]
    check(problems == [], f"eval: no failed assertion or warning {problems}")
    check(json.loads(ev["policy"]) == {"mode": "enforce", "fail_mode": "open"},
          "policy: unset lists are absent (the embedded default applies), not empty")
    check(str(mac.build / "agent-guard-0.1.0") in ev["systemPackages"],
          "item 1: the agent-guard command on PATH is the package's binary (environment.systemPackages)")
    d = plist_of(ev)
    check(d["ProgramArguments"] == [DAEMON, "daemon"],
          "item 1: the LaunchDaemon runs the bundle's executable, not the command")
    check(d["KeepAlive"] == {"SuccessfulExit": False},
          "item 5: KeepAlive restarts after a failure or a crash only (the daemon exits 0 when a restart cannot help)")
    check(d.get("ThrottleInterval") == 30, "item 5: a ThrottleInterval (30 s)")
    check(d["UserName"] == "root" and d["StandardOutPath"] == d["StandardErrorPath"] == f"{LOG_DIR}/daemon.log",
          "daemon: root, logs in /var/log/agent-guard/ (not /tmp)")
    shipped = plistlib.loads((REPO / "entitlements/com.agent-guard.daemon.plist").read_bytes())
    check(d == shipped, "the LaunchDaemon nix-darwin renders equals entitlements/com.agent-guard.daemon.plist")
    s, f = ev["script"], ev["fragments"]
    at = [s.find(f[n]) for n in ("checks", "extraActivation", "launchd", "postActivation")]
    check(-1 not in at and at == sorted(at),
          "nix-darwin's script runs its checks, then the install, then launchd, then the restart")
    syntax = subprocess.run(["bash", "-n"], input=s, capture_output=True, text=True)
    check(syntax.returncode == 0, f"the whole rendered activation script is valid bash {syntax.stderr.strip()}")
    ours = f["extraActivation"] + f["postActivation"]
    check("|| true" not in ours and "|| :" not in ours, "no error is swallowed (no '|| true')")

    rc = mac.activate(ev)
    check(rc == 0, f"activation succeeds (rc {rc})")
    check(not mac.at("/usr/local").exists(),
          "item 5: the install needs no /usr/local/bin (absent on many Apple silicon Macs)")
    info = mac.at(f"{BUNDLE}/Contents/Info.plist")
    package_binary = mac.build / "agent-guard-0.1.0/bin/agent-guard"
    check(info.exists() and info.read_bytes() == (REPO / "entitlements/Info.plist").read_bytes()
          and mac.at(DAEMON).read_bytes() == package_binary.read_bytes(),
          "item 1: the daemon is a copy of the package's binary in AgentGuard.app/Contents/MacOS")
    signs, sig = mac.signs(), mac.signature(DAEMON) or {}
    check(len(signs) == 1 and signs[0]["args"][-1].endswith("/AgentGuard.app") and sig.get("identity") == "-"
          and sig["entitlements"] == plistlib.loads((REPO / "entitlements/es.entitlements").read_bytes()),
          "item 1: one codesign, of the bundle, ad hoc, with entitlements/es.entitlements")
    signed = [p for p in mac.signed_paths() if not p.startswith(str(mac.at(BUNDLE)))]
    check(signed == [], f"item 1: only the bundle holds a signature from codesign, never the command {signed}")
    first = [c for c in mac.calls() if c["cmd"] in ("agent-guard", "codesign")][:1]
    check(first and first[0]["cmd"] == "agent-guard" and first[0]["args"][:2] == ["policy", "check"]
          and first[0]["exe"] == str(package_binary),
          "item 5: the policy is checked first, by the package's unsigned binary")
    check(mac.mode(POLICY) == (0, 0, 0o644) and json.loads(mac.at(POLICY).read_text()) == json.loads(ev["policy"]),
          "the policy is /etc/agent-guard/policy.json, root's, 0644")
    check(mac.mode(STATE_DIR) == (0, 0, 0o711) and mac.mode(f"{STATE_DIR}/requests") == (0, 0, 0o1777),
          "state 0711, override requests spool 1777 (sticky)")
    check(mac.owned_by_root_only(DAEMON),
          "item 5: every directory on the daemon's path is root's and writable by no one else")
    spawns = mac.daemon_spawns()
    check(len(spawns) == 1 and spawns[0]["killed"] is None, f"launchd starts the daemon once, AMFI lets it run {spawns}")

    inode = os.stat(mac.at(POLICY)).st_ino
    rc = mac.activate(ev)
    check(rc == 0 and mac.signs() == [], "again, nothing changed: no codesign")
    kicks = [c["args"] for c in mac.calls("launchctl") if c["args"][0] == "kickstart"]
    check(kicks == [["kickstart", f"system/{LABEL}"]],
          f"again: kickstart without -k (starts a daemon that stopped itself) {kicks}")
    check(os.stat(mac.at(POLICY)).st_ino == inode, "again: the unchanged policy is not rewritten (no needless reload)")


@scenario("SIP enabled, ad hoc identity: activation stops before changing anything")
def sip_on_ad_hoc(new):
    mac = new(sip="enabled")
    ev = mac.evaluate(ENABLE)
    rc = mac.activate(ev)
    check(rc != 0 and "SIP is enabled" in mac.output and 'ad hoc ("-")' in mac.output,
          f"item 1: activation fails early and names SIP and the ad hoc identity (rc {rc})")
    check("invalid" not in mac.output, "item 1: no misleading 'policy invalid'")
    check(mac.calls("codesign") == [] and not mac.at(BUNDLE).exists() and not mac.at(POLICY).exists()
          and mac.spawns() == [], "item 1: nothing was signed, installed or started")
    (mac.state / "sip").write_text("custom")
    rc = mac.activate(ev)
    check(rc == 0 and "custom configuration" in mac.output, "a custom SIP configuration: a warning, not a stop")


@scenario("Developer ID and a provisioning profile, SIP enabled, no /usr/local/bin")
def provisioned(new):
    mac = new(sip="enabled", identities=[DEVELOPER_ID])
    profile = mac.profile()
    ev = mac.evaluate(f'{ENABLE} signingIdentity = "{DEVELOPER_ID}"; provisioningProfile = "{profile}";')
    check(ev["failedAssertions"] == [], f"eval: no failed assertion {ev['failedAssertions']}")
    rc = mac.activate(ev)
    check(rc == 0, f"item 5: activation succeeds without /usr/local/bin (rc {rc})")
    sig = mac.signature(DAEMON) or {}
    check(sig.get("entitlements") == {ES: True, APP_ID: f"{TEAM}.{LABEL}", TEAM_ID: TEAM},
          f"item 2: signed with the ES entitlement, {APP_ID} {TEAM}.{LABEL} and {TEAM_ID} {TEAM}")
    embedded = mac.at(f"{BUNDLE}/Contents/embedded.provisionprofile")
    check(sig.get("identity") == DEVELOPER_ID and embedded.exists() and embedded.read_bytes() == profile.read_bytes(),
          "item 2: signed by the Developer ID, the profile embedded")
    check(any(c["args"][:2] == ["cms", "-D"] for c in mac.calls("security")),
          "item 2: the profile is read with security cms -D")
    spawns = mac.daemon_spawns()
    check(spawns and all(s["killed"] is None for s in spawns), f"item 2: with SIP on, AMFI lets the daemon run {spawns}")

    mac.profile(app_id=f"{TEAM}.*", serial=2)
    rc = mac.activate(ev)
    check(rc == 0 and (mac.signature(DAEMON) or {}).get("entitlements", {}).get(APP_ID) == f"{TEAM}.{LABEL}"
          and mac.daemon_spawns()[-1:] == [{"label": LABEL, "program": DAEMON, "killed": None}],
          f"item 2: a wildcard App ID profile signs {TEAM}.{LABEL}, and the daemon runs")


@scenario("provisioning profiles that cannot authorize the daemon: stopped, named, nothing changed")
def bad_profiles(new):
    other = "Developer ID Application: Other (ZZZZZ99999)"
    mac = new(sip="enabled", identities=[DEVELOPER_ID, other])
    cases = [
        ("for another App ID", dict(app_id=f"{TEAM}.com.example.other"), DEVELOPER_ID, "com.example.other"),
        ("without the ES grant", dict(grant=False), DEVELOPER_ID, "does not grant"),
        ("that is not a profile", dict(cms=False), DEVELOPER_ID, "could not decode"),
        ("of another team than the identity", {}, other, "ZZZZZ99999"),
    ]
    for what, kw, identity, said in cases:
        profile = mac.profile(**kw)
        rc = mac.activate(mac.evaluate(f'{ENABLE} signingIdentity = "{identity}"; provisioningProfile = "{profile}";'))
        check(rc != 0 and said in mac.output and mac.signs() == [] and not mac.at(BUNDLE).exists(),
              f"item 2: a profile {what} stops activation before signing, saying so (rc {rc})")


@scenario("re-signing: identity, profile and tampering each re-sign; nothing else does")
def resign(new):
    dev = f"Apple Development: Example ({TEAM})"
    mac = new(sip="disabled", identities=[dev, DEVELOPER_ID])
    mac.activate(mac.evaluate(ENABLE))
    rc = mac.activate(mac.evaluate(f'{ENABLE} signingIdentity = "{dev}";'))
    check(rc == 0 and len(mac.signs()) == 1 and (mac.signature(mac.daemon_program()) or {}).get("identity") == dev,
          "item 5: a new signingIdentity re-signs the daemon")
    check(["kickstart", "-k", f"system/{LABEL}"] in [c["args"] for c in mac.calls("launchctl")],
          "a new bundle restarts the running daemon (kickstart -k)")
    profile = mac.profile(serial=1)
    ev = mac.evaluate(f'{ENABLE} signingIdentity = "{DEVELOPER_ID}"; provisioningProfile = "{profile}";')
    rc = mac.activate(ev)
    check(rc == 0 and len(mac.signs()) == 1 and APP_ID in (mac.signature(DAEMON) or {}).get("entitlements", {}),
          "item 5: a new provisioningProfile (and its entitlements) re-signs the daemon")
    mac.profile(serial=2)  # the same path, a renewed profile
    rc = mac.activate(ev)
    embedded = mac.at(f"{BUNDLE}/Contents/embedded.provisionprofile")
    check(rc == 0 and len(mac.signs()) == 1 and embedded.read_bytes() == profile.read_bytes(),
          "item 5: a renewed profile at the same path re-signs and is embedded")
    rc = mac.activate(ev)
    check(rc == 0 and mac.signs() == [], "unchanged: no re-signing")
    with open(mac.at(DAEMON), "ab") as f:
        f.write(b"# swapped\n")
    rc = mac.activate(ev)
    check(rc == 0 and len(mac.signs()) == 1 and b"swapped" not in mac.at(DAEMON).read_bytes(),
          "a daemon changed after signing (its signature no longer verifies) is re-installed")


@scenario("an invalid policy with a new package: nothing is replaced, stamped or restarted")
def bad_policy(new):
    mac = new(sip="disabled")
    mac.activate(mac.evaluate(ENABLE))
    program = mac.daemon_program()
    before = {p: mac.tree(p) for p in (STATE_DIR, "/etc/agent-guard")}
    rc = mac.activate(mac.evaluate(f'{ENABLE} package = pkgs.agentGuardAt "0.2.0"; protectedZones = [ "rel/src" ];'))
    check(rc != 0 and "is relative" in mac.output and "nothing was changed" in mac.output,
          f"item 5: activation fails with the binary's reason (rc {rc})")
    check(program and b"0.1.0" in mac.at(program).read_bytes() and mac.signs() == []
          and mac.tree(STATE_DIR) == before[STATE_DIR],
          "item 5: the installed daemon and its install stamp are the old ones (the next switch retries)")
    check(mac.tree("/etc/agent-guard") == before["/etc/agent-guard"]
          and not any(c["args"][0] == "kickstart" for c in mac.calls("launchctl")),
          "item 5: so 'nothing was changed' is true: old policy, no restart")


@scenario("the documented object forms of protectedZones and temporaryOverrides, and settings")
def object_forms(new):
    mac = new(sip="disabled")
    ev = mac.evaluate(f"""{ENABLE}
      mode = "audit";
      failMode = "closed";
      agentPatterns = [ "claude" "codex" ];
      protectedZones = [ "~/src" {{ path = "~/work"; except = [ "**/target/**" "~/work/scratch/**" ]; }} ];
      readonlyZones = [ ];
      secretZones = [ "~/.ssh" ];
      temporaryOverrides = [
        "~/src/playground"
        {{ path = "~/src/app/generated"; ops = [ "unlink" "rename" ]; expires_at = "2026-12-31T00:00:00Z"; }}
      ];
      trustedTools = [ "git" {{ name = "cargo"; paths = [ "**/target/**" ]; }} ];
      execRules = [ {{ program = "terraform"; args = [ "destroy" ]; reason = "ask the user"; }} ];
      settings.max_override_ttl = "2h";
      settings.audit_retention = {{ max_age = "30d"; max_size_mb = 512; }};
    """)
    generated = {"path": "~/src/app/generated", "ops": ["unlink", "rename"], "expires_at": "2026-12-31T00:00:00Z"}
    check(json.loads(ev["policy"]) == {
        "mode": "audit",
        "fail_mode": "closed",
        "ai_agent_patterns": ["claude", "codex"],
        "protected_zones": ["~/src", {"path": "~/work", "except": ["**/target/**", "~/work/scratch/**"]}],
        "readonly_zones": [],
        "secret_zones": ["~/.ssh"],
        "temporary_overrides": ["~/src/playground", generated],
        "trusted_tools": ["git", {"name": "cargo", "paths": ["**/target/**"]}],
        "exec_rules": [{"program": "terraform", "args": ["destroy"], "reason": "ask the user"}],
        "max_override_ttl": "2h",
        "audit_retention": {"max_age": "30d", "max_size_mb": 512},
    }, "item 5: object forms and free JSON settings reach policy.json as written")
    rc = mac.activate(ev)
    check(rc == 0, f"item 5: and the real agent-guard accepts that policy (rc {rc})")


@scenario("wrongly typed options are evaluation errors that name the option")
def bad_types(new):
    mac = new()
    cases = [
        ('failMode = "sometimes";', "failMode"),
        ('protectedZones = "~/src";', "protectedZones"),
        ("protectedZones = [ { except = [ ]; } ];", "path"),
        ("settings.max_override_ttl = x: x;", "max_override_ttl"),
    ]
    for expr, named in cases:
        try:
            mac.evaluate(f"{ENABLE} {expr}")
            check(False, f"{expr} is rejected")
        except EvalError as e:
            check(named in str(e), f"{expr} is rejected, naming {named}")


@scenario("assertions: Darwin only; a profile needs a real identity")
def assertions(new):
    mac = new()
    ev = mac.evaluate(ENABLE, is_darwin=False)
    check(any("macOS" in m for m in ev["failedAssertions"]),
          f"item 5: on Linux an assertion fails {ev['failedAssertions']}")
    ev = mac.evaluate(f'{ENABLE} provisioningProfile = "/x.provisionprofile";')
    check(any("provisioningProfile" in m for m in ev["failedAssertions"]),
          f"item 5: a profile with the ad hoc identity fails an assertion {ev['failedAssertions']}")
    ev = mac.evaluate("enable = false;")
    check(ev["daemonPlist"] is None and ev["policy"] is None and "agent-guard" not in ev["fragments"]["extraActivation"],
          "disabled: the module sets nothing")


@scenario("a user-owned directory on the daemon's path (Intel Homebrew's /usr/local/bin)")
def ownership(new):
    mac = new(sip="disabled", usr_local_owner=501)
    ev = mac.evaluate(ENABLE)
    rc = mac.activate(ev)
    program = plist_of(ev)["ProgramArguments"][0]
    check(rc == 0 and mac.owned_by_root_only(program) and mac.mode("/usr/local/bin")[0] == 501,
          f"item 5: the daemon runs from directories only root can change ({program}), "
          "and Homebrew's /usr/local/bin is left to its owner")
    mac = new(sip="disabled")
    os.chown(mac.at("/Library/Application Support"), 501, 20)
    rc = mac.activate(mac.evaluate(ENABLE))
    check(rc != 0 and "Application Support is owned by uid 501" in mac.output and mac.signs() == [],
          f"item 5: a user-owned parent stops activation before installing (rc {rc})")
    mac = new(sip="disabled")
    elsewhere = mac.dir / "elsewhere"
    elsewhere.mkdir()
    mac.at(APP_SUPPORT).symlink_to(elsewhere)
    rc = mac.activate(mac.evaluate(ENABLE))
    check(rc != 0 and "symbolic link" in mac.output,
          f"item 5: a symlink on the daemon's path stops activation (rc {rc})")


@scenario("upgrade from the /usr/local/bin layout")
def migration(new):
    mac = new(sip="disabled", usr_local_owner=0)
    mac.at(STATE_DIR).mkdir(parents=True)
    mac.at(f"{STATE_DIR}/installed-from").write_text("/nix/store/old-agent-guard\n")
    mac.at("/usr/local/bin/agent-guard").write_text("old entitled copy")
    rc = mac.activate(mac.evaluate(ENABLE))
    check(rc == 0 and not mac.at("/usr/local/bin/agent-guard").exists()
          and not mac.at(f"{STATE_DIR}/installed-from").exists(),
          "item 1: the entitled /usr/local/bin/agent-guard an earlier version installed is removed")
    mac = new(sip="disabled", usr_local_owner=0)
    mac.at("/usr/local/bin/agent-guard").write_text("someone else's")
    mac.activate(mac.evaluate(ENABLE))
    check(mac.at("/usr/local/bin/agent-guard").exists(),
          "a /usr/local/bin/agent-guard this module did not install is left alone")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--module", type=Path, default=REPO / "nix/darwin-module.nix")
    p.add_argument("--inputs", type=Path, default=REPO.parent / "shared/nix-inputs")
    p.add_argument("--agent-guard", type=Path, default=REPO / "target/debug/agent-guard")
    p.add_argument("--only", help="run the scenarios whose function name contains this")
    p.add_argument("-v", "--verbose", action="store_true", help="print each activation's output")
    args = p.parse_args()
    args.module, args.inputs, args.agent_guard = (p.resolve() for p in (args.module, args.inputs, args.agent_guard))
    if os.geteuid() != 0:
        sys.exit("activation.py: run as root (the stand-in Mac owns files as root and as users, "
                 "in a private mount namespace)")
    for x in (args.inputs / "nix-darwin/eval-config.nix", args.agent_guard):
        if not x.exists():
            sys.exit(f"activation.py: {x} is missing")
    for title, fn in SCENARIOS:
        if args.only and args.only not in fn.__name__:
            continue
        print(f"{title}")
        macs = []

        def new(**kw):
            macs.append(Mac(args, **kw))
            return macs[-1]

        try:
            fn(new)
        except EvalError as e:
            check(False, f"evaluation failed: {str(e).splitlines()[0]}")
        except Exception as e:  # a scenario that cannot go on is a failed check, not the end
            check(False, f"the scenario stopped: {type(e).__name__}: {e}")
        finally:
            for mac in macs:
                mac.close()
    if failures:
        print(f"activation.py: {len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
