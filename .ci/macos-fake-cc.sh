#!/bin/sh
# Stand-in C compiler for `cargo check`/`clippy --target *-apple-darwin` on Linux.
# Why: rusqlite's bundled SQLite is C, and its build script compiles it even for `check`; there
# is no macOS SDK here. `check` never links, so an empty object is enough. Never use this for a
# build that links: the result would be missing SQLite.
out=""
prev=""
for arg in "$@"; do
  case "$arg" in
    # cc-rs asks whether this is MSVC: it is not.
    "-?") exit 1 ;;
    # cc-rs's compiler-family probe preprocesses a file and looks for the family's name.
    -E) echo '"clang"'; echo '"clang"' >&2; exit 0 ;;
    -o?*) out="${arg#-o}" ;;
  esac
  if [ "$prev" = "-o" ]; then out="$arg"; fi
  prev="$arg"
done
if [ -n "$out" ]; then : > "$out"; fi
exit 0
