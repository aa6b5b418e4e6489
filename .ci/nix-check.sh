#!/usr/bin/env bash
# Check the Nix files without a Mac and without nixpkgs: every .nix file parses, and the
# nix-darwin module, evaluated against the stand-in option set in nix/tests/, renders the
# policy, the LaunchDaemon and an activation script that fails loudly.
# Idempotent; installs Debian's nix-bin only if nix-instantiate is missing. Takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "nix-check: installing nix-bin" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nix-bin >/dev/null
fi

echo "nix-check: parsing"
mapfile -t files < <(find flake.nix nix -name '*.nix' | sort)
for f in "${files[@]}"; do
  nix-instantiate --parse "$f" >/dev/null || { echo "nix-check: $f does not parse" >&2; exit 1; }
done
echo "  ${#files[@]} files parse"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

evaluate() { # name, userConfig expression
  nix-instantiate --eval --strict --json nix/tests/eval.nix --arg userConfig "$2" >"$out/$1.json"
}

evaluate full '{
  enable = true;
  mode = "audit";
  failMode = "closed";
  agentPatterns = [ "claude" "codex" ];
  protectedZones = [ "~/src" ];
  readonlyZones = [ ];
  secretZones = [ "~/.ssh" "~/.aws" ];
  temporaryOverrides = [ "~/src/scratch" ];
  trustedTools = [ "git" { name = "cargo"; paths = [ "**/target/**" ]; } { name = "git"; signing_id = "com.apple.git"; } ];
  execRules = [ { program = "git"; args = [ "clean" "-f*" ]; action = "deny"; reason = "git clean deletes untracked files"; } ];
  extraPolicy = { mode = "enforce"; };
}'
evaluate defaults '{ enable = true; }'
evaluate disabled '{ enable = false; }'
evaluate bundle '{ enable = true; provisioningProfile = "/etc/agent-guard/es.provisionprofile"; signingIdentity = "Developer ID Application: Example (ABCDE12345)"; }'
evaluate badtype '{ enable = true; failMode = "sometimes"; protectedZones = "~/src"; }'

jq -r .activation "$out/full.json" >"$out/activation.sh"
bash -n "$out/activation.sh" || { echo "nix-check: the activation script is not valid shell" >&2; exit 1; }
jq -r .activation "$out/bundle.json" >"$out/activation-bundle.sh"
bash -n "$out/activation-bundle.sh" || { echo "nix-check: the bundle activation script is not valid shell" >&2; exit 1; }

python3 - "$out" <<'PY'
import json, plistlib, re, sys, pathlib
out = pathlib.Path(sys.argv[1])
load = lambda n: json.loads((out / f"{n}.json").read_text())
failures = []
def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        failures.append(what)

full, defaults, disabled, bundle, bad = (load(n) for n in ("full", "defaults", "disabled", "bundle", "badtype"))

for name, r in (("full", full), ("defaults", defaults), ("disabled", disabled), ("bundle", bundle)):
    check(r["ok"], f"{name}: only nix-darwin options set {r['unknown']}, values type-check {r['badOptions']}")

check(full["policy"] == {
    "mode": "enforce",  # extraPolicy wins
    "fail_mode": "closed",
    "ai_agent_patterns": ["claude", "codex"],
    "protected_zones": ["~/src"],
    "readonly_zones": [],
    "secret_zones": ["~/.ssh", "~/.aws"],
    "temporary_overrides": ["~/src/scratch"],
    "trusted_tools": ["git", {"name": "cargo", "paths": ["**/target/**"]}, {"name": "git", "signing_id": "com.apple.git"}],
    "exec_rules": [{"program": "git", "args": ["clean", "-f*"], "action": "deny", "reason": "git clean deletes untracked files"}],
}, "full: policy.json has every option under its policy key, extraPolicy last")
check(defaults["policy"] == {"mode": "enforce", "fail_mode": "open"},
      "defaults: unset lists are absent (embedded default applies), not empty")
check(not disabled["enabled"] and disabled["daemon"] is None, "disabled: the module sets nothing")

shipped = plistlib.loads(pathlib.Path("entitlements/com.agent-guard.daemon.plist").read_bytes())
check(full["daemon"] == shipped, "full: the nix-darwin LaunchDaemon equals entitlements/com.agent-guard.daemon.plist")
d = full["daemon"]
check(d["KeepAlive"] is True and d["RunAtLoad"] is True, "daemon: KeepAlive and RunAtLoad")
check(all(d[k].startswith("/var/log/agent-guard/") for k in ("StandardOutPath", "StandardErrorPath")),
      "daemon: logs under /var/log/agent-guard/, not /tmp")
check(d["ProgramArguments"] == ["/usr/local/bin/agent-guard", "daemon"], "daemon: runs /usr/local/bin/agent-guard daemon")

act = (out / "activation.sh").read_text()
check("|| true" not in act and "|| :" not in act, "activation: no error is swallowed (no '|| true')")
check(re.search(r"/usr/bin/codesign --force --options runtime\s*\\\s*--sign '-'", act) is not None,
      "activation: codesigns ad hoc by default")
check(re.search(r"--entitlements /nix/store/[a-z0-9]{32}-es\.entitlements", act) is not None,
      "activation: signs with entitlements/es.entitlements")
check(act.count("exit 1") >= 4, "activation: every failing step exits non-zero")
check("policy check /etc/agent-guard/policy.json.new" in act and "mv -f /etc/agent-guard/policy.json.new /etc/agent-guard/policy.json" in act,
      "activation: policy validated, then swapped in atomically")
check("install -m 0644 -o root -g wheel" in act, "activation: policy.json is root-owned 0644")

b = bundle["daemon"]["ProgramArguments"][0]
check(b == "/Library/Application Support/agent-guard/AgentGuard.app/Contents/MacOS/agent-guard",
      "bundle: with a provisioning profile the daemon runs from the app bundle")
ab = (out / "activation-bundle.sh").read_text()
check("embedded.provisionprofile" in ab and "ln -sfn" in ab and "Developer ID Application: Example (ABCDE12345)" in ab,
      "bundle: profile embedded, CLI linked, the given identity signs")

check(not bad["ok"] and sorted(bad["badOptions"]) == ["failMode", "protectedZones"],
      "harness: wrongly typed options are caught (the check can fail)")

if failures:
    print(f"nix-check: {len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
PY
echo "nix-check: all good"
