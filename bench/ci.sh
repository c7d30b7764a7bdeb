#!/usr/bin/env bash
# Benchmark for the registry as the shared build cache (issue: cache). Not a
# test: run it by hand; it prints ratios measured in the same run.
#
# Workload: the bench/compose.sh project (a busybox base, the Rust toolchain
# directory, ~1.4 GB, as a tool layer, a one-file app) and the same image as a
# Dockerfile. A docker-registry on 127.0.0.1 is the cache and the target.
# Machine A builds and pushes once with its cache (strata: [defaults] cache;
# BuildKit: an inline-cache image). Then, RUNS times, a one-line change to the
# app and a build + push on a fresh "machine B", each timed with the bytes it
# moved over loopback (registry traffic: both directions, as the kernel
# counts lo):
#   strata build --push, empty store and HOME, with the cache   (goal <= 2 s, <= 2 MB)
#   DOCKER_BUILDKIT=1 docker build --cache-from IMAGE + docker push,
#     after docker builder prune -af and removing every bench image
#                                                              (strata goal <= 0.2x)
#   strata build --push, empty store and HOME, --no-cache       (today's behaviour)
# Usage: bench/ci.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh docker-registry busybox-static time
docker version --format '{{.Server.Version}}' >/dev/null
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-ci.XXXXXX)
REG_PID=""
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
BK=$REG/bench/bk
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  docker rmi -f $(docker images -q "$BK" 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/lib.sh
P=$WORK/project
compose_project "$P" runtime
cat >> "$P/strata.toml" <<TOML
[defaults]
registry = "$REG/bench"
cache = "docker://$REG/bench/cache"
TOML

mkdir -p "$WORK/reg"
cat > "$WORK/reg/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/reg/data}, delete: {enabled: true}}
http: {addr: $REG}
YML
docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done

lo_bytes() { cat /sys/class/net/lo/statistics/rx_bytes; }
# timed_bytes FILE CMD...: appends "SECONDS BYTES" of CMD to FILE.
timed_bytes() {
  local f=$1; shift
  local b0; b0=$(lo_bytes)
  local s; s=$(t "$@")
  echo "$s $(( $(lo_bytes) - b0 ))" >> "$f"
}
# machine B: a fresh store and HOME.
fresh() { rm -rf "$WORK/b"; mkdir -p "$WORK/b/home"; }
b_strata() { STRATA_STORE=$WORK/b/store HOME=$WORK/b/home "$STRATA" "$@"; }
change() { printf '#!/bin/sh\necho app %s\n' "$1" > "$P/layers/app/src/app.sh"; }
bk_build() {
  DOCKER_BUILDKIT=1 /usr/bin/docker build -q --build-arg BUILDKIT_INLINE_CACHE=1 "$@" \
    -t "$BK:latest" -f "$P/Containerfile" "$P" && /usr/bin/docker push -q "$BK:latest"
}
bk_forget() {
  /usr/bin/docker builder prune -af >/dev/null 2>&1
  docker rmi -f $(docker images -q "$BK") >/dev/null 2>&1 || true
}

echo "machine A: cold builds and pushes (not compared)"
echo "  strata:   $(STRATA_STORE=$WORK/a HOME=$WORK/a-home t "$STRATA" build -C "$P" --push)s"
echo "  buildkit: $(t bk_build)s"
bk_forget
: > "$WORK/s"; : > "$WORK/k"; : > "$WORK/n"
for i in $(seq "$RUNS"); do
  sync
  change "s$i"; fresh
  timed_bytes "$WORK/s" b_strata build -C "$P" --push
  change "k$i"; bk_forget; sync
  timed_bytes "$WORK/k" bk_build --cache-from "$BK:latest"
  change "n$i"; fresh; sync
  timed_bytes "$WORK/n" b_strata build -C "$P" --push --no-cache
done
# The last strata run's own account of what it moved.
change "r"; fresh
report=$(b_strata build -C "$P" --push --json)
down=$(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["cache"]["bytes_downloaded"])')
up=$(echo "$report" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(i["push"]["bytes"] for i in r["images"]) + r["cache"]["bytes_uploaded"])')

col() { awk -v c="$2" '{print $c}' "$1" | median; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }
s=$(col "$WORK/s" 1); k=$(col "$WORK/k" 1); n=$(col "$WORK/n" 1)
printf '\nmachine B after a one-line app change (image with a %s tool layer), median of %s\n' \
  "$(du -sh "$P/layers/rust/toolchain" | cut -f1)" "$RUNS"
printf '%-52s %8s %12s\n' "" "seconds" "MB over lo"
printf '%-52s %8s %12s\n' "strata build --push (cache)" "$s" "$(mb "$(col "$WORK/s" 2)")"
printf '%-52s %8s %12s\n' "docker build --cache-from (BuildKit) + docker push" "$k" "$(mb "$(col "$WORK/k" 2)")"
printf '%-52s %8s %12s\n' "strata build --push --no-cache" "$n" "$(mb "$(col "$WORK/n" 2)")"
printf '%-52s %8sx  (goal <= 0.2)\n' "ratio strata (cache) / BuildKit" "$(ratio "$s" "$k")"
printf '%-52s %8sx\n' "ratio strata (cache) / strata without it" "$(ratio "$s" "$n")"
printf 'strata report: %s bytes downloaded from the cache, %s bytes uploaded\n' "$down" "$up"
