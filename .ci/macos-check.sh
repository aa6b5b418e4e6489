#!/usr/bin/env bash
# Type-check and lint the crate for macOS (both architectures) on Linux, without a Mac:
# Debian's rustc-web/cargo-web/rust-web-src/rust-web-clippy rebuild std for *-apple-darwin
# (-Zbuild-std, allowed on stable by RUSTC_BOOTSTRAP), nothing is linked. rusqlite's bundled
# SQLite is C with no macOS SDK here, so a stand-in compiler (.ci/macos-fake-cc.sh) emits empty
# objects: fine for check/clippy, never for a build that links.
# Separate target dir (target/macos) so it never fights the normal build.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in /usr/bin/cargo /usr/bin/rustc /usr/bin/cargo-clippy; do
  [ -x "$tool" ] || { echo "macos-check: $tool missing: apt-get install rustc-web cargo-web rust-web-src rust-web-clippy" >&2; exit 1; }
done

fake_cc="$PWD/.ci/macos-fake-cc.sh"
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  t=${target//-/_}
  run() { # subcommand, then its own arguments (clippy's "-- -D warnings" must stay last)
    local sub=$1
    shift
    env PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      "CC_$t=$fake_cc" "AR_$t=ar" \
      /usr/bin/cargo "$sub" -p agent-guard -Zbuild-std=std,panic_abort \
      --target "$target" --target-dir target/macos "$@"
  }
  echo "macos-check: cargo check --target $target"
  run check --all-targets
  echo "macos-check: cargo clippy --target $target -- -D warnings"
  run clippy --all-targets -- -D warnings
done
echo "macos-check: all good"
