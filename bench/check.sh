#!/usr/bin/env bash
# Benchmark for `strata check` on a built project (issue: workflows, item 4).
# Not a test: run it by hand; it prints times and ratios measured in the same
# run.
#
# Workload: 10 images over a busybox base, the Rust toolchain directory
# (rustc --print sysroot, ~1.4 GB, 53k files) as a shared tool layer, and one
# app layer per image; with examples/debian's Debian layers (debian-base,
# ca-certificates, git) as a second project when the archive answers.
# After one build, measured (median of RUNS, default 3):
#   strata check        vs   strata build (no-op)          (goal: check <= 1 s)
# `check` must take the layer keys and cached listings a build uses, not walk
# the toolchain or unpack .debs again.
# Usage: bench/check.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh busybox-static time
cargo build --release --quiet
STRATA=$PWD/target/release/strata
SYSROOT=${BENCH_SRC:-$(rustc --print sysroot)}
WORK=$(mktemp -d /tmp/strata-bench-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export STRATA_STORE=$WORK/store

P=$WORK/project
mkdir -p "$P/layers/base/rootfs/bin" "$P/layers/rust"
install -m 0755 /bin/busybox "$P/layers/base/rootfs/bin/busybox"
ln -s busybox "$P/layers/base/rootfs/bin/sh"
cp -al "$SYSROOT" "$P/layers/rust/toolchain" 2>/dev/null || cp -a "$SYSROOT" "$P/layers/rust/toolchain"
printf '[layer]\nname = "base"\n[provides]\nbinaries = ["sh"]\npaths = ["/bin"]\n[[source.copy]]\nfrom = "rootfs"\nto = "/"\n' > "$P/layers/base/layer.toml"
printf '[layer]\nname = "rust"\n[runtime]\nlayers = ["base"]\n[[source.copy]]\nfrom = "toolchain"\nto = "/opt/rust"\n' > "$P/layers/rust/layer.toml"
printf '[project]\nname = "bench"\n' > "$P/strata.toml"
for i in $(seq 1 10); do
  mkdir -p "$P/layers/app$i/src"
  printf '#!/bin/sh\necho app %s\n' "$i" > "$P/layers/app$i/src/app.sh"
  printf '[layer]\nname = "app%s"\n[runtime]\nlayers = ["base", "rust"]\n[[source.copy]]\nfrom = "src"\nto = "/srv/app%s"\n' "$i" "$i" > "$P/layers/app$i/layer.toml"
  printf '[images.app%s]\nlayers = ["app%s"]\nkind = "runtime"\n' "$i" "$i" >> "$P/strata.toml"
done

t() { /usr/bin/time -f "%e" -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err"; exit 1; }; cat "$WORK/t"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}'; }

measure() { # NAME DIR
  "$STRATA" build -C "$2" > /dev/null
  local build check
  build=$(for i in $(seq "$RUNS"); do t "$STRATA" build -C "$2"; done | median)
  check=$(for i in $(seq "$RUNS"); do t "$STRATA" check -C "$2"; done | median)
  printf '%-44s %8ss %8ss %8sx %s\n' "$1" "$check" "$build" "$(ratio "$check" "$build")" "check <= 1 s"
}

printf '%-44s %9s %9s %9s %s\n' "project (after one build)" "check" "build" "ratio" "goal"
measure "10 images, toolchain layer (53k files)" "$P"
if "$STRATA" build -C examples/debian > /dev/null 2>&1; then
  measure "examples/debian (3 Debian layers, 117 .debs)" examples/debian
else
  echo "examples/debian: the Debian archive did not answer; skipped"
fi
