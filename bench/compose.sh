#!/usr/bin/env bash
# Benchmark for project builds (issue: layer composition). Not a test: run it
# by hand; it prints ratios measured in the same run.
#
# Workload: a 3-layer project: a busybox base, the Rust toolchain directory
# (rustc --print sysroot, ~1.4 GB) as a tool layer at /opt/rust, and a
# one-file app. Measured after a first (cold) build:
#   no-op build                       strata build  vs buildah bud --layers   (goal < 0.5 s)
#   after a one-line change to the app                                       (goal < 1 s)
# buildah runs with overlay storage (what it uses on this kernel by default) in
# a private root, on an equivalent Containerfile. Both tools' times are the
# median of RUNS runs (default 3), each tool's sequence on its own.
# Usage: bench/compose.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh buildah busybox-static time
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-compose.XXXXXX)
trap 'buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver overlay rm -a >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
P=$WORK/project
. bench/lib.sh
compose_project "$P" runtime
printf '#!/bin/sh\necho app 1\n' > "$P/layers/app/src/app.sh"

export STRATA_STORE=$WORK/store
B=(buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver overlay)

# Each tool's whole sequence runs on its own (strata first), so neither is
# measured while the other's writes are still flushing.
sync; sleep 2
echo "cold builds (not compared)"
echo "  strata:  $(t "$STRATA" build -C "$P")s"
sync; sleep 2
s_noop=$(for i in $(seq "$RUNS"); do t "$STRATA" build -C "$P"; done | median)
s_change=$(for i in $(seq "$RUNS"); do printf '#!/bin/sh\necho app s%s\n' "$i" > "$P/layers/app/src/app.sh"; t "$STRATA" build -C "$P"; done | median)
printf '#!/bin/sh\necho app 1\n' > "$P/layers/app/src/app.sh"
echo "  buildah: $(t "${B[@]}" bud --layers -t bench -f "$P/Containerfile" "$P")s"
sync; sleep 2
b_noop=$(for i in $(seq "$RUNS"); do t "${B[@]}" bud --layers -t bench -f "$P/Containerfile" "$P"; done | median)
b_change=$(for i in $(seq "$RUNS"); do printf '#!/bin/sh\necho app b%s\n' "$i" > "$P/layers/app/src/app.sh"; t "${B[@]}" bud --layers -t bench -f "$P/Containerfile" "$P"; done | median)

printf '\n%-40s %9s %9s %9s %s\n' "measure" "strata" "buildah" "ratio" "goal"
printf '%-40s %8ss %8ss %8sx %s\n' "no-op build" "$s_noop" "$b_noop" "$(ratio "$s_noop" "$b_noop")" "strata < 0.5 s"
printf '%-40s %8ss %8ss %8sx %s\n' "rebuild after a one-line app change" "$s_change" "$b_change" "$(ratio "$s_change" "$b_change")" "strata < 1 s"
