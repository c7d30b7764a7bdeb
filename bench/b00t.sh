#!/usr/bin/env bash
# Benchmark of examples/b00t (issue: build steps). Not a test: run it by
# hand, as root, with the Debian archive reachable; it prints ratios
# measured in the same run.
#
# strata builds examples/b00t (eight Debian-package layers, the app
# compiled by a build step, a builder and a runtime image). BuildKit (the
# Docker engine's, DOCKER_BUILDKIT=1 /usr/bin/docker build) builds the
# equivalent multi-stage Dockerfile below over strata's debian-base layer
# (loaded from a docker-archive, since nothing can be pulled): apt-get with
# its archives and lists in cache mounts, cargo with its registry in one,
# the target directory in /tmp as in the strata step.
#   first build with warm package caches: strata from an empty store but
#     its .deb cache; BuildKit --no-cache with its cache mounts warm  (goal <= 1.0x)
#   rebuild after a one-line change of the app's source                (goal <= 0.8x)
#   no-op rebuild                                                       (goal <= 0.1x)
#   peak RSS of strata during the first build (the commands excluded)   (goal <= 100 MB)
# Medians of RUNS runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh runc
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-b00t.XXXXXX)
TAG=strata-bench-b00t-$$
cleanup() {
  docker rmi -f "$TAG-base:1" "$TAG-builder:1" "$TAG-runtime:1" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export STRATA_STORE=$WORK/store
P=$WORK/b00t
cp -r examples/b00t "$P"
# The base BuildKit starts from: strata's debian-base layer alone.
cat >> "$P/strata.toml" <<'TOML'

[images.bkbase]
layers = ["debian-base"]
tags = ["b00t/bkbase:latest"]
TOML

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
edit_app() { sed -i "s/b00t app[^,]*, linked with {}/b00t app $1-$$-$(date +%s%N), linked with {}/" "$P/app/src/main.rs"; }
# Runs strata, recording the peak RSS of the strata process itself (not
# the commands it runs in the sandbox) in $WORK/rss, in kB.
strata_rss() {
  "$STRATA" "$@" >/dev/null 2>&1 &
  local pid=$! peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.1
  done
  wait "$pid"
  echo "$peak" > "$WORK/rss"
}

echo "strata: first build (downloads the packages)"
"$STRATA" build -C "$P" >/dev/null 2>&1
"$STRATA" copy b00t/bkbase:latest "docker-archive:$WORK/base.tar:$TAG-base:1" >/dev/null
docker load -q -i "$WORK/base.tar" >/dev/null

s_first=() ; s_rss=()
for i in $(seq 1 "$RUNS"); do
  # An empty store but for the .deb downloads (apt's archives, for strata).
  mv "$STRATA_STORE/.strata/deb" "$WORK/deb"
  rm -rf "$STRATA_STORE"; mkdir -p "$STRATA_STORE/.strata"
  mv "$WORK/deb" "$STRATA_STORE/.strata/deb"
  t0=$(now)
  strata_rss build -C "$P"
  t1=$(now)
  s_first+=("$(secs "$t0" "$t1")")
  s_rss+=("$(cat "$WORK/rss")")
done
s_edit=()
for i in $(seq 1 "$RUNS"); do
  edit_app "s$i"
  t0=$(now); "$STRATA" build -C "$P" >/dev/null 2>&1; t1=$(now)
  s_edit+=("$(secs "$t0" "$t1")")
done
s_noop=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); "$STRATA" build -C "$P" >/dev/null 2>&1; t1=$(now)
  s_noop+=("$(secs "$t0" "$t1")")
done

mkdir -p "$WORK/ctx"
cp -r "$P/app" "$WORK/ctx/app"
rm -rf "$WORK/ctx/app/target"
cat > "$WORK/ctx/Dockerfile" <<EOF
FROM $TAG-base:1 AS pkgs
RUN rm -f /etc/apt/apt.conf.d/docker-clean \\
 && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep \\
 && echo 'deb http://deb.debian.org/debian bookworm main' > /etc/apt/sources.list

FROM pkgs AS builder
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \\
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      gcc libc6-dev make libssl3 libssl-dev rustc cargo git ca-certificates >/dev/null
COPY app /src
WORKDIR /src
RUN --mount=type=cache,target=/root/.cargo/registry,sharing=locked \\
    CARGO_TARGET_DIR=/tmp/target cargo build --release --offline --locked \\
 && install -D -m755 /tmp/target/release/app /usr/local/bin/app

FROM pkgs AS runtime
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
    --mount=type=cache,target=/var/lib/apt/lists,sharing=locked \\
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      libssl3 ca-certificates git mosquitto-clients >/dev/null
COPY --from=builder /usr/local/bin/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
EOF
bk() {
  DOCKER_BUILDKIT=1 /usr/bin/docker build -q "$@" --target builder -t "$TAG-builder:1" "$WORK/ctx" >/dev/null
  DOCKER_BUILDKIT=1 /usr/bin/docker build -q "$@" --target runtime -t "$TAG-runtime:1" "$WORK/ctx" >/dev/null
}
echo "BuildKit: first build (downloads the packages into its cache mounts)"
bk
b_first=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); bk --no-cache; t1=$(now)
  b_first+=("$(secs "$t0" "$t1")")
done
b_edit=()
for i in $(seq 1 "$RUNS"); do
  sed -i "s/b00t app[^,]*, linked with {}/b00t app b$i-$$-$(date +%s%N), linked with {}/" "$WORK/ctx/app/src/main.rs"
  t0=$(now); bk; t1=$(now)
  b_edit+=("$(secs "$t0" "$t1")")
done
b_noop=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); bk; t1=$(now)
  b_noop+=("$(secs "$t0" "$t1")")
done

m() { printf '%s\n' "$@" | median; }
sf=$(m "${s_first[@]}"); se=$(m "${s_edit[@]}"); sn=$(m "${s_noop[@]}")
bf=$(m "${b_first[@]}"); be=$(m "${b_edit[@]}"); bn=$(m "${b_noop[@]}")
rss=$(m "${s_rss[@]}")
echo
echo "| measure (examples/b00t, builder + runtime) | strata | BuildKit | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| first build, warm package caches | ${sf} s | ${bf} s | $(ratio "$sf" "$bf") | <= 1.0x |"
echo "| rebuild after a one-line app change | ${se} s | ${be} s | $(ratio "$se" "$be") | <= 0.8x |"
echo "| no-op rebuild | ${sn} s | ${bn} s | $(ratio "$sn" "$bn") | <= 0.1x |"
echo "| peak RSS of strata, first build | $((rss / 1024)) MB | | | <= 100 MB |"
