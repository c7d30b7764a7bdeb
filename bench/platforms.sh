#!/usr/bin/env bash
# Benchmark for multi-platform builds (issue: multi-platform). Not a test:
# run it by hand; it prints ratios measured in the same run.
#
# Workload: examples/debian (debian-base, ca-certificates, git) in a fresh
# store whose download cache (.strata/deb: Release files, indexes, .debs of
# both architectures) is warm:
#   strata build --platform linux/amd64                 (one platform)
#   strata build (linux/amd64 + linux/arm64, one index) (goal <= 2.2x the first:
#                                                        the arm64 half is unpack + compress)
# and the bytes: blobs shared by both platforms vs per platform.
# The peer, buildah bud --platform linux/amd64,linux/arm64 --manifest on the
# equivalent Containerfile (FROM the same debian-base, apt-get install
# ca-certificates git), needs qemu-user registered with binfmt_misc to run
# the arm64 half's RUN lines: this script registers it (scripts/binfmt.sh,
# root) and says so when it cannot.
# Usage: bench/platforms.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-platforms.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
. bench/lib.sh

echo "warming the download cache (both architectures)"
STRATA_STORE=$WORK/warm "$STRATA" build -C examples/debian > /dev/null
fresh() {
  rm -rf "$WORK/store"
  mkdir -p "$WORK/store/.strata"
  cp -a "$WORK/warm/.strata/deb" "$WORK/store/.strata/deb"
  rm -rf "$WORK/store/.strata/deb/resolved"
}
b_strata() { STRATA_STORE=$WORK/store "$STRATA" "$@"; }
: > "$WORK/one"; : > "$WORK/two"
for _ in $(seq "$RUNS"); do
  fresh; sync
  t b_strata build -C examples/debian --platform linux/amd64 >> "$WORK/one"
  fresh; sync
  t b_strata build -C examples/debian >> "$WORK/two"
done
one=$(median < "$WORK/one"); two=$(median < "$WORK/two")

# Bytes: each platform's blobs, and those both share.
report=$(b_strata build -C examples/debian --json 2>/dev/null)
echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
by = {}
for l in r["layers"]:
    for d, s in zip(l["digests"], [l["size"]] if len(l["digests"]) == 1 else [0] * len(l["digests"])):
        by.setdefault(d, [s, set()])[1].add(l["platform"])
shared = sum(s for s, p in by.values() if len(p) > 1)
per = sum(s for s, p in by.values() if len(p) == 1)
print(f"blobs shared by both platforms: {shared/1e6:.1f} MB; per platform: {per/1e6:.1f} MB")
'

printf '\n%-52s %8s\n' "examples/debian, warm download cache" "seconds"
printf '%-52s %8s\n' "strata build --platform linux/amd64" "$one"
printf '%-52s %8s\n' "strata build (amd64 + arm64 index)" "$two"
printf '%-52s %8sx  (goal <= 2.2)\n' "ratio two platforms / one" "$(ratio "$two" "$one")"
# The peer: buildah bud --platform linux/amd64,linux/arm64 --manifest over
# the same debian-base (built by strata, served by a docker-registry on
# 127.0.0.1), installing ca-certificates and git with apt-get; arm64's RUN
# runs under qemu-user. Its apt caches (archives and lists, per
# architecture) are cache mounts, warmed by one untimed build first.
if ! scripts/deps.sh buildah docker-registry || ! scripts/binfmt.sh aarch64; then
  echo "buildah bud --platform linux/amd64,linux/arm64: not run (buildah or a qemu-aarch64 binfmt_misc handler is missing: its arm64 RUN lines need emulation, which strata's arm64 build does not)"
  exit 0
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
mkdir -p "$WORK/reg" "$WORK/ctx"
cat > "$WORK/reg/config.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/reg/data}}
http: {addr: $REG}
YML
docker-registry serve "$WORK/reg/config.yml" > "$WORK/reg/log" 2>&1 &
REG_PID=$!
# buildah keeps cache mounts under /var/tmp/buildah-cache*: this run's go.
trap 'kill $REG_PID 2>/dev/null; rm -rf "$WORK" /var/tmp/buildah-cache*/strata-bench-*' EXIT
for _ in $(seq 50); do curl -fs "http://$REG/v2/" >/dev/null && break; sleep 0.1; done
cp -a examples/debian "$WORK/proj"
cat >> "$WORK/proj/strata.toml" <<'TOML'

[images.base]
layers = ["debian-base"]
kind = "runtime"
tags = ["bench/base:latest"]
TOML
STRATA_STORE=$WORK/warm "$STRATA" build -C "$WORK/proj" base > /dev/null 2>&1
STRATA_STORE=$WORK/warm "$STRATA" copy --all bench/base:latest "docker://$REG/bench/base:1" > /dev/null
# The machine's apt sources, as strata reads them.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then src=/etc/apt/sources.list.d/debian.sources; else src=/etc/apt/sources.list; fi
cp "$src" "$WORK/ctx/debian.sources"
cat > "$WORK/ctx/Containerfile" <<DOCKERFILE
FROM $REG/bench/base:1
ARG TARGETARCH
COPY debian.sources $src
RUN --mount=type=cache,target=/var/cache/apt,id=strata-bench-apt-\$TARGETARCH \\
    --mount=type=cache,target=/var/lib/apt/lists,id=strata-bench-lists-\$TARGETARCH \\
    apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates git > /dev/null && git --version
DOCKERFILE
B=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run")
bud() {
  local platforms=$1
  "${B[@]}" manifest rm bench/m > /dev/null 2>&1 || true
  "${B[@]}" bud --quiet --tls-verify=false --platform "$platforms" --manifest bench/m \
    -f "$WORK/ctx/Containerfile" "$WORK/ctx" > /dev/null
}
echo "warming buildah's apt caches (both architectures): $(t bud linux/amd64,linux/arm64) s"
: > "$WORK/bone"; : > "$WORK/btwo"
for _ in $(seq "$RUNS"); do
  t bud linux/amd64 >> "$WORK/bone"
  t bud linux/amd64,linux/arm64 >> "$WORK/btwo"
done
bone=$(median < "$WORK/bone"); btwo=$(median < "$WORK/btwo")
printf '%-52s %8s\n' "buildah bud --platform linux/amd64" "$bone"
printf '%-52s %8s\n' "buildah bud --platform linux/amd64,linux/arm64" "$btwo"
printf '%-52s %8sx\n' "buildah ratio two platforms / one" "$(ratio "$btwo" "$bone")"
printf '%-52s %8sx\n' "strata / buildah, two platforms" "$(ratio "$two" "$btwo")"
