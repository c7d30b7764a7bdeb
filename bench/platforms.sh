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
# The peer, buildah bud --platform linux/amd64,linux/arm64 --manifest, needs
# qemu-user registered with binfmt_misc to run the arm64 half's RUN lines;
# this script runs it only where that handler is registered and says so
# otherwise.
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
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  echo "buildah: a qemu-aarch64 handler is registered; run buildah bud --platform linux/amd64,linux/arm64 --manifest on an equivalent Containerfile by hand to compare"
else
  echo "buildah bud --platform linux/amd64,linux/arm64: not run (no qemu-aarch64 binfmt_misc handler here: its arm64 RUN lines (apt-get) need emulation, which strata's arm64 build does not)"
fi
