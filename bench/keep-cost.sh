#!/usr/bin/env bash
# Per-call cost of keeping (issue 14), every figure measured in this one run:
# - an unlink in a zone that keeps (the file moved into the snapshot store) against the same
#   unlink in the zone's carve-out (supervised and judged, nothing kept), and natively;
# - the first write-open of an existing 64 KiB file in a zone that keeps (its content copied into
#   the store before the open goes ahead), against the same open in the carve-out and natively.
# Each round runs every mode once, in rotating order; the figures are the medians over rounds of
# each run's median call. The verdict lines compare them with the issue's targets. Every run
# is a session of its own, with a fresh directory; the store grows by CALLS * 64 KiB per run.
#   RUNS=5 CALLS=2000 bench/keep-cost.sh
# BENCH_DIR picks the file system (default $TMPDIR or /tmp; the targets are for ext4).
# BASELINE=/path/to/an/older/agent-guard adds its kept calls to every round ("keep-base"),
# interleaved with this build's, so that a change is judged against the same machine's load.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
CALLS=${CALLS:-2000}
cargo build --release -q -p agent-guard --bin agent-guard --example keep_calls
AG=${AG:-"$PWD/target/release/agent-guard"}
CALLER="$PWD/target/release/examples/keep_calls"
root=$(mktemp -d -p "${BENCH_DIR:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$root"' EXIT
home="$root/home"
mkdir -p "$home/proj/scratch" "$root/state"
policy="$root/policy.json"
# The brake would stop a session's 2000th delete: it is lifted here, the store's limits are not.
cat > "$policy" <<JSON
{"secret_zones": [], "exec_rules": [],
 "protected_zones": [{"path": "~/proj", "except": ["**/scratch/**"]}],
 "snapshots": {"brake": {"files": 1000000, "mb": 100000, "window": "60s"}}}
JSON
echo "file system: $(df --output=fstype "$root" | tail -1); $CALLS calls per run, $RUNS rounds"

# One run: prints "median_ns mean_ns" of the calls.
run_once() {
  local kind=$1 mode=$2 dir
  case $mode in
    native) dir="$home/proj/native-$RANDOM$RANDOM" ;;
    keep | keep-base) dir="$home/proj/kept-$RANDOM$RANDOM" ;;
    carve) dir="$home/proj/scratch/c-$RANDOM$RANDOM" ;;
  esac
  if [ "$kind" = first-write ]; then
    mkdir -p "$dir"
    head -c 65536 /dev/urandom > "$dir/w0"
    for i in $(seq 1 $((CALLS - 1))); do cp "$dir/w0" "$dir/w$i"; done
    sync -f "$dir/w0"
  fi
  local ag=$AG
  if [ "$mode" = keep-base ]; then ag=$BASELINE; fi
  if [ "$mode" = native ]; then
    "$CALLER" "$kind" "$dir" "$CALLS"
  else
    HOME="$home" AGENT_GUARD_STATE_DIR="$root/state" \
      "$ag" run --policy "$policy" --agent bench -- "$CALLER" "$kind" "$dir" "$CALLS"
  fi
  # Nothing is removed before the end: on an ext4 without a journal (our CI machines) every
  # create scans past the inodes freed in the last minute or so, which would time the file
  # system's bookkeeping of the previous run instead of the store's create.
}

declare -A got
modes=(native keep carve)
if [ -n "${BASELINE:-}" ]; then
  [ -x "$BASELINE" ] || { echo "BASELINE=$BASELINE: not an executable agent-guard" >&2; exit 2; }
  modes+=(keep-base)
fi
# The write-opens first: the unlinks free inodes (in the carve-out and natively).
for kind in first-write unlink; do
  for round in $(seq 1 "$RUNS"); do
    for k in "${!modes[@]}"; do
      mode=${modes[$(((round + k) % ${#modes[@]}))]}
      read -r median _ < <(run_once "$kind" "$mode")
      got[$kind.$mode]+="$median "
    done
  done
done

median_of() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
us() { awk -v n="$1" 'BEGIN {printf "%.1f", n / 1000}'; }
for kind in unlink first-write; do
  for mode in "${modes[@]}"; do
    m=$(median_of "${got[$kind.$mode]}")
    declare "med_${kind//-/_}_${mode//-/_}=$m"
    printf '%-12s %-7s median call %8s µs  (runs: %s)\n' "$kind" "$mode" "$(us "$m")" "${got[$kind.$mode]}"
  done
done

ratio=$(awk -v a="$med_unlink_keep" -v b="$med_unlink_carve" 'BEGIN {printf "%.2f", a / b}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.2) ? "met" : "NOT met"}')
echo "verdict: unlink kept into the store / plain supervised unlink = ${ratio}x (target <= 1.2x): $verdict"
first=$(us "$med_first_write_keep")
verdict=$(awk -v n="$med_first_write_keep" 'BEGIN {print (n <= 150000) ? "met" : "NOT met"}')
echo "verdict: first write-open of a 64 KiB file, copy included = ${first} µs (target <= 150 µs): $verdict"
if [ -n "${BASELINE:-}" ]; then
  ratio=$(awk -v a="$med_unlink_keep_base" -v b="$med_unlink_carve" 'BEGIN {printf "%.2f", a / b}')
  echo "baseline ($BASELINE): unlink kept / plain supervised = ${ratio}x; first write-open = $(us "$med_first_write_keep_base") µs"
fi
