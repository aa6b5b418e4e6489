#!/usr/bin/env bash
# A file-heavy agent workload, timed unsupervised, under `agent-guard run` (the embedded default
# policy, whose secret zones are hidden behind the supervisor's FUSE mounts; the same with every
# open supervised instead, the fall-back; and a policy without secret zones, where only writes
# are), and under bubblewrap (Claude Code's Linux sandbox) when installed. It also times the
# floor of the mechanism: the same seccomp filter served by a supervisor that answers every
# notification at once and judges nothing (examples/notify_floor.rs; it enforces nothing), so the
# share of the overhead that is the kernel's round trip itself is measured in the same run.
# Prints the median wall time of each and its ratio to the unsupervised run, all measured in
# this one run. The workload: unpack a C project (200 files), build it with make -j2, git
# init/add/commit/status/diff over it, delete the build output (target/, a carve-out of the
# default policy), then read every file once more; WORKLOAD=crate does the same with a small
# Rust crate built offline by cargo (see below).
# WORKLOAD=make also times one supervised call (a write-open) call by call in 1 and in
# LATENCY_THREADS (64) threads at once, natively, under the floor and under `run`
# (examples/call_latency.rs). Last come issue 19's verdicts, each from ratios of this run.
# WORKLOAD=destroy (issue 14) deletes, truncates and rewrites files in a protected zone instead
# (no build): timed with the zone keeping what it destroys (snapshots), with the zone denying,
# and unsupervised.
#   RUNS=5 bench/workload.sh
#   WORKLOAD=crate RUNS=5 bench/workload.sh
#   WORKLOAD=destroy RUNS=5 bench/workload.sh
# BENCH_DIR=/dev/shm runs it on tmpfs: it takes the disk out of the measurement (on a no-journal
# ext4, as on our CI machines, a create scans past every inode freed in the last minute or so,
# which makes the native time, and so every ratio, depend on what ran just before).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
# The comparison with bubblewrap is one of the verdicts: install it as scripts/test installs its
# Debian packages (as root, or with sudo), and say so in the verdict when that is not possible.
if ! command -v bwrap > /dev/null && command -v apt-get > /dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing bubblewrap (the benchmark compares with it)" >&2
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bubblewrap; } \
    > /dev/null 2>&1 || echo "cannot install bubblewrap: its comparison is skipped" >&2
fi
cargo build --release -q -p agent-guard --bin agent-guard --example notify_floor --example call_latency
AG="$PWD/target/release/agent-guard"
FLOOR="$PWD/target/release/examples/notify_floor"
LATENCY="$PWD/target/release/examples/call_latency"
# The per-call concurrency measurement (WORKLOAD=make only): each round times LATENCY_CALLS
# write-opens per thread with one thread and with LATENCY_THREADS threads.
LATENCY_THREADS=${LATENCY_THREADS:-64}
LATENCY_CALLS=${LATENCY_CALLS:-200}
root=$(mktemp -d -p "${BENCH_DIR:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$root"' EXIT
home="$root/home"; mkdir -p "$home/work" "$home/.ssh" "$root/state" "$root/src/proj/src"
echo key > "$home/.ssh/id_ed25519"

# WORKLOAD=make (the default): a C project of 200 tiny files built with make -j2, syscall-bound.
# WORKLOAD=crate: the issue's other example, a small Rust crate (regex and serde_json, both in
# the registry cache once agent-guard is built) built offline with cargo, compile-bound. Each
# unpacks its tree, builds it, runs git over it, deletes the build output, reads its sources.
WORKLOAD=${WORKLOAD:-make}
# cargo and rustup find their homes through HOME, which each run points at the throwaway home.
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
case $WORKLOAD in
make)
# The project: 200 C files with a few functions each, one header, a Makefile.
for i in $(seq 1 200); do
  {
    echo '#include "common.h"'
    for f in 1 2 3 4 5; do
      echo "int f${i}_${f}(int x) { int s = 0; for (int k = 0; k < x; k++) s += k * ${f} + ${i}; return s; }"
    done
  } > "$root/src/proj/src/m$i.c"
done
echo 'int helper(int);' > "$root/src/proj/src/common.h"
cat > "$root/src/proj/Makefile" <<'MK'
SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,target/%.o,$(SRCS))
all: target/libproj.a
target/%.o: src/%.c src/common.h
	@mkdir -p target
	@$(CC) -O0 -c $< -o $@
target/libproj.a: $(OBJS)
	@ar rcs $@ $(OBJS)
MK
build='make -s -j2'
sources='src/*.c src/*.h Makefile'
;;
crate)
cat > "$root/src/proj/Cargo.toml" <<'TOML'
[package]
name = "proj"
version = "0.1.0"
edition = "2021"

[dependencies]
regex = "1"
serde_json = "1"
TOML
cat > "$root/src/proj/src/main.rs" <<'RS'
fn main() {
    let words = regex::Regex::new(r"\w+").unwrap();
    let n = words.find_iter("a small crate, built").count();
    println!("{}", serde_json::json!({ "words": n }));
}
RS
# A first cargo build in a protected zone needs target/ made first (README, known limits).
build='mkdir target && cargo build --offline -q'
sources='src/*.rs Cargo.toml'
;;
destroy)
# 400 files of 4 KiB in 20 directories; the agent rewrites a quarter in place, truncates a
# quarter, saves over a quarter (temp file and rename), deletes the rest one by one, then
# removes the tree. In a zone that denies the deletes fail (and are ignored): the run with
# snapshots does all of it, keeping everything first.
for d in $(seq 1 20); do
  mkdir -p "$root/src/proj/src/d$d"
  for f in $(seq 1 20); do head -c 4096 /dev/urandom > "$root/src/proj/src/d$d/f$f"; done
done
build='for d in src/*/; do
  for f in 1 2 3 4 5; do printf edit >> "$d/f$f"; done
  for f in 6 7 8 9 10; do : > "$d/f$f"; done
  for f in 11 12 13 14 15; do printf new > "$d/.f$f.tmp" && mv "$d/.f$f.tmp" "$d/f$f"; done
  for f in 16 17 18 19 20; do rm -f "$d/f$f" 2>/dev/null || true; done
done
rm -rf src 2>/dev/null || true'
sources='/dev/null'
;;
*) echo "WORKLOAD is make, crate or destroy, not $WORKLOAD" >&2; exit 2;;
esac
tar -C "$root/src" -czf "$root/proj.tar.gz" proj

if [ "$WORKLOAD" = destroy ]; then
workload='set -e
cd "$HOME/work" && rm -rf proj 2>/dev/null || true
tar xzf "$TARBALL" && cd proj
'"$build"
else
workload='set -e
cd "$HOME/work" && rm -rf proj 2>/dev/null || true
tar xzf "$TARBALL" && cd proj
'"$build"'
git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm init
git status --short > /dev/null && git diff HEAD > /dev/null
rm -rf target
cat '"$sources"' > /dev/null'
fi

nosecrets="$root/nosecrets.json"
echo '{"secret_zones": []}' > "$nosecrets"
keeping="$root/keep.json"; denying="$root/deny.json"
echo '{"secret_zones": [], "protected_zones": ["~/work"]}' > "$keeping"
echo '{"secret_zones": [], "protected_zones": [{"path": "~/work", "on_destroy": "deny"}]}' > "$denying"

# One timed run of the workload in a fresh copy of the home; prints seconds. A run that fails
# stops the benchmark: its time would measure how fast the workload gives up.
run_once() {
  local mode=$1
  rm -rf "$home/work"; mkdir -p "$home/work"
  local start end
  start=$(date +%s.%N)
  case $mode in
    native) HOME="$home" TARBALL="$root/proj.tar.gz" bash -c "$workload" ;;
    guard) HOME="$home" TARBALL="$root/proj.tar.gz" AGENT_GUARD_STATE_DIR="$root/state" AGENT_GUARD_POLICY= \
             "$AG" run --agent bench -- bash -c "$workload" ;;
    guard-reads) HOME="$home" TARBALL="$root/proj.tar.gz" AGENT_GUARD_STATE_DIR="$root/state" AGENT_GUARD_POLICY= \
             AGENT_GUARD_SUPERVISE_READS=1 "$AG" run --agent bench -- bash -c "$workload" ;;
    floor) HOME="$home" TARBALL="$root/proj.tar.gz" "$FLOOR" -- bash -c "$workload" ;;
    guard-writes) HOME="$home" TARBALL="$root/proj.tar.gz" AGENT_GUARD_STATE_DIR="$root/state" \
             "$AG" run --policy "$nosecrets" --agent bench -- bash -c "$workload" ;;
    keep) HOME="$home" TARBALL="$root/proj.tar.gz" AGENT_GUARD_STATE_DIR="$root/state" \
             "$AG" run --policy "$keeping" --agent bench -- bash -c "$workload" ;;
    deny) HOME="$home" TARBALL="$root/proj.tar.gz" AGENT_GUARD_STATE_DIR="$root/state" \
             "$AG" run --policy "$denying" --agent bench -- bash -c "$workload" ;;
    # The benchmark's own directory is bound again: under BENCH_DIR=/dev/shm, --dev would hide it.
    bwrap) HOME="$home" TARBALL="$root/proj.tar.gz" bwrap --bind / / --dev /dev --proc /proc \
             --bind "$root" "$root" --tmpfs "$home/.ssh" -- bash -c "$workload" ;;
  esac || { echo "workload failed in mode $mode" >&2; return 1; }
  end=$(date +%s.%N)
  # The agent could not remove what the guard protects; clean up as the human.
  rm -rf "$home/work/proj"
  echo "$end - $start" | bc
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

if [ "$WORKLOAD" = destroy ]; then
  modes=(native deny keep)
else
  modes=(native floor guard guard-reads guard-writes)
  command -v bwrap > /dev/null && bwrap --bind / / --dev /dev --proc /proc true 2>/dev/null && modes+=(bwrap)
fi
declare -A times
n=${#modes[@]}
for ((r = 0; r < RUNS; r++)); do
  # Interleave the modes so a change in machine load touches all of them alike, and rotate their
  # order each round: a run pays for the inodes the previous one freed (ext4 reuses them
  # lazily), so a fixed order would charge one mode for its predecessor.
  for ((i = 0; i < n; i++)); do
    m=${modes[$(((i + r) % n))]}
    t=$(run_once "$m")
    times[$m]+="$t "
  done
done
base=$(echo "${times[native]}" | tr ' ' '\n' | grep . | median)
declare -A ratio
printf '%-50s %10s %8s\n' "$WORKLOAD workload (median of $RUNS)" "seconds" "ratio"
for m in "${modes[@]}"; do
  t=$(echo "${times[$m]}" | tr ' ' '\n' | grep . | median)
  ratio[$m]=$(echo "$t / $base" | bc -l)
  case $m in
    native) label="unsupervised";;
    floor) label="notification round trips alone (judges nothing)";;
    guard) label="agent-guard run, default policy (secrets hidden)";;
    guard-reads) label="agent-guard run, default policy (reads supervised)";;
    guard-writes) label="agent-guard run, no secret zones (writes only)";;
    bwrap) label="bwrap (ro ~/.ssh overmount), for comparison";;
    deny) label="agent-guard run, the zone denies destruction";;
    keep) label="agent-guard run, the zone keeps (snapshots)";;
  esac
  printf '%-50s %10.3f %7.2fx\n' "$label" "$t" "${ratio[$m]}"
done

# The per-call concurrency measurement: one supervised call (a write-open, judged and let
# through) timed call by call in one thread and in LATENCY_THREADS threads at once, natively,
# under the floor and under `run`; modes and thread counts interleaved in each round.
if [ "$WORKLOAD" = make ]; then
  declare -A p50s walls
  lat_modes=(native floor guard)
  for ((r = 0; r < RUNS; r++)); do
    for ((i = 0; i < ${#lat_modes[@]}; i++)); do
      m=${lat_modes[$(((i + r) % ${#lat_modes[@]}))]}
      for threads in 1 "$LATENCY_THREADS"; do
        rm -rf "$home/work"; mkdir -p "$home/work"
        args=("$LATENCY" "$threads" "$LATENCY_CALLS" "$home/work")
        case $m in
          native) line=$(HOME="$home" "${args[@]}") ;;
          floor) line=$(HOME="$home" "$FLOOR" -- "${args[@]}") ;;
          guard) line=$(HOME="$home" AGENT_GUARD_STATE_DIR="$root/state" AGENT_GUARD_POLICY= \
                   "$AG" run --agent bench -- "${args[@]}") ;;
        esac || { echo "call_latency failed in mode $m" >&2; exit 1; }
        p50s[$m-$threads]+="${line%% *} "
        read -r _ _ calls wall <<< "$line"
        walls[$m-$threads]+="$(echo "$wall / $calls" | bc -l) "
      done
    done
  done
  echo
  # p50: how long one call waits; wall/call: the run's wall time over all its calls (with many
  # threads, the inverse of the throughput: a call that costs more CPU shows here).
  printf '%-50s %10s %10s %8s %12s %12s\n' "write-open p50 (median of $RUNS), microseconds" "1 thread" \
    "$LATENCY_THREADS threads" "ratio" "wall/call 1" "wall/call $LATENCY_THREADS"
  for m in "${lat_modes[@]}"; do
    one=$(echo "${p50s[$m-1]}" | tr ' ' '\n' | grep . | median)
    many=$(echo "${p50s[$m-$LATENCY_THREADS]}" | tr ' ' '\n' | grep . | median)
    case $m in
      native) label="unsupervised";;
      floor) label="notification round trips alone (judges nothing)";;
      guard) label="agent-guard run, default policy";;
    esac
    ratio[lat-$m]=$(echo "$many / $one" | bc -l)
    wall_one=$(echo "${walls[$m-1]}" | tr ' ' '\n' | grep . | median)
    wall_many=$(echo "${walls[$m-$LATENCY_THREADS]}" | tr ' ' '\n' | grep . | median)
    printf '%-50s %10.1f %10.1f %7.2fx %12.1f %12.1f\n' "$label" "$(echo "$one / 1000" | bc -l)" \
      "$(echo "$many / 1000" | bc -l)" "${ratio[lat-$m]}" "$(echo "$wall_one / 1000" | bc -l)" \
      "$(echo "$wall_many / 1000" | bc -l)"
  done
fi

# The verdicts of issue 19, from the ratios above (all measured in this run).
verdict() { # label, value, comparison, target
  local met="not met"
  [ "$(echo "$2 $3 $4" | bc -l)" = 1 ] && met="met"
  printf 'verdict: %-62s %6.2f %s %6.2f: %s\n' "$1" "$2" "$3" "$4" "$met"
}
fs=$(df --output=fstype "$root" | tail -1)
echo
case $WORKLOAD in
make)
  verdict "run / unsupervised, make workload on $fs" "${ratio[guard]}" "<=" 1.10
  if [ -n "${ratio[bwrap]:-}" ]; then
    verdict "run / unsupervised at or below bwrap's, on $fs" "${ratio[guard]}" "<=" "${ratio[bwrap]}"
  else
    echo "verdict: run against bwrap on $fs: not measured (bwrap missing or cannot make namespaces)"
  fi
  verdict "64-thread / 1-thread p50 of a write-open under run" "${ratio[lat-guard]}" "<=" 3
  # With more threads than cores, a call also waits for the calls queued before it, whoever
  # serves them: the floor's own ratio says how much of the above is that.
  printf 'note: the same ratio with nothing judged (the floor): %.2f; unsupervised: %.2f; %s cores\n' \
    "${ratio[lat-floor]}" "${ratio[lat-native]}" "$(nproc)"
  ;;
crate) verdict "run / unsupervised, crate workload on $fs" "${ratio[guard]}" "<=" 1.05 ;;
destroy) verdict "keep / unsupervised within deny's + 5 points, on $fs" "${ratio[keep]}" "<=" "$(echo "${ratio[deny]} + 0.05" | bc -l)" ;;
esac
