#!/usr/bin/env bash
# Benchmark for the registry client (issue: registry). Not a test: run it by
# hand; it prints ratios measured in the same run.
#
# Workload: the Rust toolchain image from bench/core.sh (one ~300 MB gzip
# layer), pushed to and pulled from a docker-registry on 127.0.0.1 with fresh
# storage for every run.
#   push:          strata copy IMG docker://...      vs skopeo copy oci:... docker://...  (goal <= 1.0x)
#   no-op push:    strata copy again (every blob exists)                                  (goal < 100 ms)
#   pull:          strata copy docker://... into an empty store vs skopeo copy docker://... oci:...  (goal <= 1.0x)
#   peak RSS of strata push / pull                                                        (goal < 100 MB)
# Usage: bench/registry.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh docker-registry skopeo time
cargo build --release --quiet
STRATA=$PWD/target/release/strata
SRC=${BENCH_SRC:-$(rustc --print sysroot)}
WORK=$(mktemp -d /tmp/strata-bench-reg.XXXXXX)
REG_PID=""
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

export STRATA_STORE=$WORK/store
echo "building the workload image from $SRC"
"$STRATA" new --add "$SRC:/opt/rust" --tag bench/rust:1 > /dev/null
"$STRATA" copy bench/rust:1 "oci:$WORK/layout:rust" > /dev/null
echo "image: $(du -sh "$WORK/layout/blobs" | cut -f1) compressed"

start_registry() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK/reg"; mkdir -p "$WORK/reg"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$WORK/reg/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/reg/data}}
http: {addr: 127.0.0.1:$PORT}
YML
  docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done
  REG=127.0.0.1:$PORT
}

time_cmd() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err"; exit 1; }
  cat "$WORK/t" >> "$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1" | median; }

for i in $(seq "$RUNS"); do
  start_registry
  time_cmd strata-push "$STRATA" copy bench/rust:1 "docker://$REG/strata/rust:1"
  time_cmd strata-noop "$STRATA" copy bench/rust:1 "docker://$REG/strata/rust:1"
  rm -rf "$WORK/pull-store"
  time_cmd strata-pull env STRATA_STORE="$WORK/pull-store" "$STRATA" copy "docker://$REG/strata/rust:1" pulled:1
  start_registry
  time_cmd skopeo-push skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout:rust" "docker://$REG/skopeo/rust:1"
  rm -rf "$WORK/pull-oci"
  time_cmd skopeo-pull skopeo copy -q --src-tls-verify=false "docker://$REG/skopeo/rust:1" "oci:$WORK/pull-oci:rust"
done

sp=$(col strata-push 1); kp=$(col skopeo-push 1); sn=$(col strata-noop 1)
sl=$(col strata-pull 1); kl=$(col skopeo-pull 1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '\n%-34s %10s %10s %8s %s\n' "measure" "strata" "skopeo" "ratio" "goal"
printf '%-34s %9ss %9ss %7sx %s\n' "push to loopback registry" "$sp" "$kp" "$(ratio "$sp" "$kp")" "<= 1.0x"
printf '%-34s %9sms %10s %8s %s\n' "no-op push (all blobs exist)" "$(awk -v s="$sn" 'BEGIN {printf "%d", s * 1000}')" "" "" "< 100 ms"
printf '%-34s %9ss %9ss %7sx %s\n' "pull into an empty store" "$sl" "$kl" "$(ratio "$sl" "$kl")" "<= 1.0x"
printf '%-34s %9sM %10s %8s %s\n' "peak RSS push / pull" "$(($(col strata-push 2) / 1024))/$(($(col strata-pull 2) / 1024))" "" "" "< 100 MB"
