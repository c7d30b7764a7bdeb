#!/usr/bin/env bash
# Benchmark for the core layer writer (issue: core). Not a test: run it by
# hand, it prints ratios measured in the same run.
#
# Workload: one layer from the Rust toolchain directory (rustc --print
# sysroot, ~1.4 GB in ~53k files), page cache warm.
#   gzip:  strata new --compression gzip  vs  umoci insert      (goal <= 0.5x time, <= +3% size)
#   zstd:  strata new --compression zstd  vs  tar -c | zstd -3 -T0  (goal <= 1.2x)
#   peak RSS of strata                                            (goal < 100 MB)
# Usage: bench/core.sh [RUNS]   (median of RUNS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/deps.sh umoci zstd time tar
cargo build --release --quiet
STRATA=$PWD/target/release/strata
SRC=${BENCH_SRC:-$(rustc --print sysroot)}
WORK=$(mktemp -d /tmp/strata-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "workload: $SRC ($(du -sh "$SRC" | cut -f1), $(find "$SRC" | wc -l) entries), $RUNS runs, $(nproc) cores"
find "$SRC" -type f -print0 | xargs -0 cat > /dev/null   # warm the page cache

# time_cmd NAME CMD... : appends "seconds maxrss_kb" to $WORK/NAME
time_cmd() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err"; exit 1; }
  cat "$WORK/t" >> "$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1" | median; }

for i in $(seq "$RUNS"); do
  rm -rf "$WORK/s" "$WORK/u" "$WORK/z.tar.zst"
  time_cmd strata-gzip env STRATA_STORE="$WORK/s" "$STRATA" new --add "$SRC:/opt/rust" --compression gzip --tag bench:gz
  gz_size=$(find "$WORK/s/blobs/sha256" -type f -size +1M -printf '%s\n' | sort -n | tail -1)
  umoci init --layout "$WORK/u" && umoci new --image "$WORK/u:t"
  time_cmd umoci umoci insert --image "$WORK/u:t" "$SRC" /opt/rust
  umoci_size=$(find "$WORK/u/blobs/sha256" -type f -size +1M -printf '%s\n' | sort -n | tail -1)
  rm -rf "$WORK/s"
  time_cmd strata-zstd env STRATA_STORE="$WORK/s" "$STRATA" new --add "$SRC:/opt/rust" --compression zstd --tag bench:zst
  zst_size=$(find "$WORK/s/blobs/sha256" -type f -size +1M -printf '%s\n' | sort -n | tail -1)
  time_cmd tar-zstd sh -c "tar -C '$SRC' -cf - . | zstd -3 -T0 -q -o '$WORK/z.tar.zst'"
  peer_zst_size=$(stat -c %s "$WORK/z.tar.zst")
done

sg=$(col strata-gzip 1); um=$(col umoci 1); sz=$(col strata-zstd 1); tz=$(col tar-zstd 1)
rss_g=$(col strata-gzip 2); rss_z=$(col strata-zstd 2)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '\n%-34s %10s %10s %8s %s\n' "measure" "strata" "peer" "ratio" "goal"
printf '%-34s %9ss %9ss %7sx %s\n' "gzip layer vs umoci insert" "$sg" "$um" "$(ratio "$sg" "$um")" "<= 0.50x"
printf '%-34s %9sM %9sM %7sx %s\n' "gzip size vs umoci" "$((gz_size / 1000000))" "$((umoci_size / 1000000))" "$(ratio "$gz_size" "$umoci_size")" "<= 1.03x"
printf '%-34s %9ss %9ss %7sx %s\n' "zstd layer vs tar|zstd -3 -T0" "$sz" "$tz" "$(ratio "$sz" "$tz")" "<= 1.20x"
printf '%-34s %9sM %9sM %7sx\n' "zstd size vs tar|zstd" "$((zst_size / 1000000))" "$((peer_zst_size / 1000000))" "$(ratio "$zst_size" "$peer_zst_size")"
printf '%-34s %9sM %10s %8s %s\n' "peak RSS gzip / zstd" "$((rss_g / 1024))/$((rss_z / 1024))" "" "" "< 100 MB"
