#!/usr/bin/env bash
# Benchmark for loading images into the Docker Engine (issue: workflows,
# item 3). Not a test: run it by hand; it prints ratios measured in the same
# run.
#
# Workload: the bench/compose.sh project (a busybox base, the Rust toolchain
# directory, ~1.4 GB, as a tool layer, a one-file app), built once and loaded
# once. Then, RUNS times: a one-line change to the app, a rebuild (not
# timed), and the image reloaded three ways, each timed:
#   strata copy IMAGE docker-daemon:NAME          (sends the changed layer)
#   docker load -i FULL.tar                       (the archive of the whole image)
#   strata copy IMAGE docker-archive:FULL.tar && docker load   (the old workflow)
# Goal: strata's reload <= 0.1x docker load of the full archive.
# Usage: bench/daemon.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh busybox-static time
docker version --format '{{.Server.Version}}' >/dev/null
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-daemon.XXXXXX)
NAME=strata-bench/daemon
trap 'docker rmi -f $(docker images -q $NAME) >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
P=$WORK/project
. bench/lib.sh
compose_project "$P" builder

export STRATA_STORE=$WORK/store

echo "cold build and first load (not compared)"
echo "  strata build:       $(t "$STRATA" build -C "$P")s"
echo "  first load:         $(t "$STRATA" copy bench/app:latest "docker-daemon:$NAME:0")s"
: > "$WORK/s"; : > "$WORK/d"; : > "$WORK/w"
for i in $(seq "$RUNS"); do
  printf '#!/bin/sh\necho app %s\n' "$i" > "$P/layers/app/src/app.sh"
  "$STRATA" build -C "$P" > /dev/null
  sync
  t "$STRATA" copy bench/app:latest "docker-daemon:$NAME:s$i" >> "$WORK/s"
  docker run --rm "$NAME:s$i" | grep -qx "app $i"
  printf '#!/bin/sh\necho app %s-b\n' "$i" > "$P/layers/app/src/app.sh"
  "$STRATA" build -C "$P" > /dev/null
  sync
  t "$STRATA" copy bench/app:latest "docker-archive:$WORK/full.tar:$NAME:d$i" >> "$WORK/w"
  sync
  t docker load -i "$WORK/full.tar" >> "$WORK/d"
  docker run --rm "$NAME:d$i" | grep -qx "app $i-b"
  rm -f "$WORK/full.tar"
done
s=$(median < "$WORK/s"); d=$(median < "$WORK/d"); w=$(median < "$WORK/w")
old=$(awk -v a="$w" -v b="$d" 'BEGIN {printf "%.2f", a + b}')
size=$(du -sh "$P/layers/rust/toolchain" | cut -f1)
printf '\nreload after a one-line app change (image with a %s tool layer), median of %s\n' "$size" "$RUNS"
printf '%-52s %8ss\n' "strata copy IMAGE docker-daemon:NAME" "$s"
printf '%-52s %8ss\n' "docker load -i FULL.tar" "$d"
printf '%-52s %8ss\n' "strata copy docker-archive: + docker load (old)" "$old"
printf '%-52s %8sx  (goal <= 0.1)\n' "ratio strata / docker load" "$(ratio "$s" "$d")"
printf '%-52s %8sx\n' "ratio strata / old workflow" "$(ratio "$s" "$old")"
