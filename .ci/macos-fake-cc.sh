#!/bin/sh
# Stand-in C compiler for `cargo check`/`clippy --target *-apple-darwin` on Linux.
# Why: rusqlite's bundled SQLite is C, and its build script compiles it even for `check`; there
# is no macOS SDK here. `check` never links, so an empty object is enough. Never use this for a
# build that links: the result would be missing SQLite.
out=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-o" ]; then out="$arg"; fi
  case "$arg" in -o?*) out="${arg#-o}" ;; esac
  prev="$arg"
done
# Preprocessor probes (-E) write to stdout; print nothing.
if [ -n "$out" ]; then : > "$out"; fi
exit 0
