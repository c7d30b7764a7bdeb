#!/usr/bin/env bash
# Benchmark for build steps on the build machine (issue: multi-platform,
# "cross-compilation as the faster route"). Not a test: run it by hand, as
# root; it prints ratios measured in the same run.
#
# Workload: examples/cross's hello layer compiling its C program and a
# generated C file of FUNCS functions (-O2) for linux/arm64, with every
# layer beneath it cached (the step alone runs, its source changed each
# run):
#   cross:    platform = "build", Debian's aarch64-linux-gnu-gcc run
#             natively over the build machine's stack (examples/cross)
#   emulated: the same step as an ordinary arm64 step, arm64's own gcc run
#             under qemu-user (binfmt_misc; scripts/binfmt.sh registers it)
# Needs an amd64 machine (Debian builds the cross gcc for amd64).
# Usage: bench/cross.sh [RUNS] [FUNCS]   (median of RUNS, default 3; FUNCS default 400)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
FUNCS=${2:-400}
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  echo "bench/cross.sh needs an amd64 machine (examples/cross's cross gcc is Debian's for amd64)"
  exit 0
fi
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-cross.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
. bench/lib.sh
if ! scripts/binfmt.sh aarch64 > /dev/null; then
  echo "the emulated side needs a qemu-aarch64 binfmt_misc handler, which could not be registered"
  exit 0
fi

# Both projects: examples/cross with the generated file compiled too.
cp -a examples/cross "$WORK/cross"
rm -f "$WORK/cross/strata.lock"
python3 - "$FUNCS" > "$WORK/cross/layers/hello/src/big.c" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"""
double f{i}(const double *v, int n) {{
    double s = {i}.0;
    for (int k = 0; k < n; k++) {{
        s += v[k] * (k % {i % 7 + 2}) - s / (k + {i + 1});
        if (s > 1e9) s = s / 3.0 + k;
    }}
    return s;
}}""")
PY
step() { # $1: build or target, $2: compiler selection
  cat <<TOML
[layer]
name = "hello"
version = "1"

[requires]
layers = ["$3"]

[runtime]
layers = ["debian-base"]

[source.run]
platform = "$1"
commands = ['''
  $2
  mkdir -p /usr/local/bin /usr/local/lib
  \$cc -O2 -o /usr/local/bin/hello /src/hello.c
  \$cc -O2 -c -o /usr/local/lib/big.o /src/big.c
''']
outputs = ["/usr/local/bin/hello", "/usr/local/lib/big.o"]

[[source.run.inputs]]
from = "src"
to = "/src"
TOML
}
cp -a "$WORK/cross" "$WORK/emu"
step build 'case "$TARGETARCH" in amd64) cc=x86_64-linux-gnu-gcc ;; arm64) cc=aarch64-linux-gnu-gcc ;; esac' cross-gcc \
  > "$WORK/cross/layers/hello/layer.toml"
mkdir -p "$WORK/emu/layers/gcc"
cat > "$WORK/emu/layers/gcc/layer.toml" <<'TOML'
[layer]
name = "gcc"

[requires]
layers = ["debian-base"]

[runtime]
layers = ["debian-base"]

[source.deb]
packages = ["gcc", "libc6-dev"]
TOML
rm -rf "$WORK/emu/layers/cross-gcc"
step target 'cc=gcc' gcc > "$WORK/emu/layers/hello/layer.toml"

b() { STRATA_STORE=$WORK/store "$STRATA" build -C "$WORK/$1" --platform linux/arm64; }
echo "warming the store (Debian downloads, every layer beneath the step)"
b cross > /dev/null 2>&1
b emu > /dev/null 2>&1
: > "$WORK/t-cross"; : > "$WORK/t-emu"
for i in $(seq "$RUNS"); do
  for p in cross emu; do
    echo "/* run $i */" >> "$WORK/$p/layers/hello/src/hello.c"
    sync
    t b "$p" >> "$WORK/t-$p"
  done
done
cross=$(median < "$WORK/t-cross"); emu=$(median < "$WORK/t-emu")
printf '\n%-60s %8s\n' "hello + $FUNCS generated functions for linux/arm64, -O2" "seconds"
printf '%-60s %8s\n' "cross: platform = \"build\", aarch64-linux-gnu-gcc natively" "$cross"
printf '%-60s %8s\n' "emulated: arm64 step, gcc under qemu-user" "$emu"
printf '%-60s %8sx\n' "ratio emulated / cross" "$(ratio "$emu" "$cross")"
