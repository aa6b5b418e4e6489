#!/usr/bin/env bash
# Check the Nix files without a Mac, offline: every .nix file parses, and nix/darwin-module.nix,
# evaluated inside nix-darwin's real module system (../shared/nix-inputs: nix-darwin's
# eval-config.nix with its whole module list, nixpkgs' lib; only `pkgs` is a stand-in), renders
# a policy, a LaunchDaemon and an activation that nix/tests/activation.py runs on a stand-in Mac
# (a temporary root, stand-in codesign/csrutil/security/plutil/launchctl, the real agent-guard
# binary behind the package's, the rest of the file system read-only).
# As root (the stand-in Mac chowns files and mounts in a private namespace). Idempotent; installs
# Debian's nix-bin only if nix-instantiate is missing, builds target/debug/agent-guard only if it
# is missing. About 20 seconds.
# `.ci/nix-check.sh --module OLD.nix` runs the same checks against another version of the module.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "nix-check: installing nix-bin" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nix-bin >/dev/null
fi
inputs=${NIX_INPUTS:-../shared/nix-inputs}
[ -f "$inputs/nix-darwin/eval-config.nix" ] || {
  echo "nix-check: $inputs/nix-darwin/eval-config.nix is missing (set NIX_INPUTS to the nix-inputs snapshot)" >&2
  exit 1
}

echo "nix-check: parsing"
mapfile -t files < <(find flake.nix nix -name '*.nix' | sort)
for f in "${files[@]}"; do
  nix-instantiate --parse "$f" >/dev/null || { echo "nix-check: $f does not parse" >&2; exit 1; }
done
echo "  ${#files[@]} files parse"

if [ ! -x target/debug/agent-guard ]; then
  echo "nix-check: building target/debug/agent-guard (the package's binary checks the policy)" >&2
  cargo build --locked -q -p agent-guard --bin agent-guard
fi

echo "nix-check: the module in nix-darwin, and its activation on a stand-in Mac"
python3 nix/tests/activation.py --inputs "$inputs" "$@"
echo "nix-check: all good"
