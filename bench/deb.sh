#!/usr/bin/env bash
# Benchmark for layers from Debian packages (issue: Debian packages). Not a
# test: run it by hand (as root, debootstrap needs it); it prints ratios
# measured in the same run.
#
# Workload: examples/debian (debian-base = Priority: required + apt,
# ca-certificates, git), from a warm package cache:
#   strata build -C examples/debian, in a fresh store whose download cache
#     (.strata/deb: Release files, indexes, .debs) is warm; resolution,
#     unpacking, compression and image writing are all timed;
#   vs debootstrap --variant=minbase SUITE DIR MIRROR --cache-dir (warm),
#     then umoci insert of DIR into an OCI layout.          (goal <= 0.5x)
# The mirror and suite are the first deb entry of this machine's apt sources.
# Usage: bench/deb.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh debootstrap umoci time
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# The first deb entry of the apt sources (deb822 or one-line).
read -r MIRROR SUITE < <(
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
      /^URIs:/ {u=$2} /^Suites:/ {s=$2} /^$/ {if (u && s) {print u, s; exit} u=""; s=""}
      END {if (u && s) print u, s}'
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -E 's/\[[^]]*\]//' | awk '{print $2, $3}'
  } | head -n1)
echo "suite $SUITE from the configured mirror, $RUNS runs, $(nproc) cores"

time_cmd() { # NAME CMD... : appends seconds to $WORK/NAME
  local name=$1; shift
  /usr/bin/time -f "%e" -o "$WORK/t" "$@" > "$WORK/out" 2> "$WORK/err" || { cat "$WORK/err"; exit 1; }
  cat "$WORK/t" >> "$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Warm both package caches, each with the very package set it is timed on.
STRATA_STORE=$WORK/warm "$STRATA" build -C examples/debian --platform linux/amd64 > /dev/null
mkdir -p "$WORK/debcache"
debootstrap --variant=minbase --include=ca-certificates,git --cache-dir="$WORK/debcache" "$SUITE" "$WORK/warmroot" "$MIRROR" > /dev/null
rm -rf "$WORK/warmroot"

for i in $(seq "$RUNS"); do
  rm -rf "$WORK/store"
  mkdir -p "$WORK/store/.strata"
  cp -a "$WORK/warm/.strata/deb" "$WORK/store/.strata/deb"
  rm -rf "$WORK/store/.strata/deb/resolved"
  time_cmd strata env STRATA_STORE="$WORK/store" "$STRATA" build -C examples/debian --platform linux/amd64

  rm -rf "$WORK/root" "$WORK/layout"
  cat > "$WORK/peer.sh" <<EOS
set -e
debootstrap --variant=minbase --include=ca-certificates,git --cache-dir="$WORK/debcache" "$SUITE" "$WORK/root" "$MIRROR"
umoci init --layout "$WORK/layout"
umoci new --image "$WORK/layout:base"
umoci insert --image "$WORK/layout:base" "$WORK/root" /
EOS
  time_cmd peer bash "$WORK/peer.sh"
done

s=$(median < "$WORK/strata"); p=$(median < "$WORK/peer")
echo "runs, strata: $(tr '\n' ' ' < "$WORK/strata")  peer: $(tr '\n' ' ' < "$WORK/peer")"
echo "strata build (debian-base + ca-certificates + git, warm cache): ${s}s (median of $RUNS)"
echo "debootstrap --variant=minbase (+ca-certificates,git) + umoci insert: ${p}s"
awk -v s="$s" -v p="$p" 'BEGIN {printf "ratio strata/peer: %.2fx (goal <= 0.5x)\n", s/p}'
