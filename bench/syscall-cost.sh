#!/bin/sh
# Per-call cost of supervised calls (write-open, unlink, read-open) against the same calls run
# natively, and a file-heavy workload natively, under the supervisor (writes only / reads too)
# and with an overmount in a private user+mount namespace. All ratios come from one run.
# BENCH_SOURCE_TREE=dir picks the tree the workload unpacks (default /usr/include);
# BENCH_DIR=/dev/shm runs the workload on tmpfs (takes the disk out of the measurement);
# BENCH_PART=calls|workload runs one half only.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench -p agent-guard --bench supervisor "$@"
