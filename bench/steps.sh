#!/usr/bin/env bash
# Benchmark for build steps (issue: build steps). Not a test: run it by
# hand, as root; it prints ratios measured in the same run.
#
# Workload: a busybox base layer and a build-step layer over it, built with
# strata and, from an equivalent Dockerfile, with the Docker engine's
# BuildKit (DOCKER_BUILDKIT=1 /usr/bin/docker build; its base loaded from a
# strata-built docker-archive, since nothing can be pulled), and with
# buildah bud --layers (overlay storage driver, a private root):
#   per-step overhead: a step that touches one file, no cache  (goal <= 150 ms, <= 0.5x BuildKit)
#   no-op rebuild of the project                                (goal <= 0.1x BuildKit)
# Medians of RUNS runs (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
scripts/deps.sh busybox-static runc buildah
cargo build --release --quiet
STRATA=$PWD/target/release/strata
WORK=$(mktemp -d /tmp/strata-bench-steps.XXXXXX)
TAG=strata-bench-steps-$$
B=(buildah --root "$WORK/buildah" --runroot "$WORK/buildah-run" --storage-driver overlay)
trap '"${B[@]}" rm -a >/dev/null 2>&1 || true; "${B[@]}" rmi -af >/dev/null 2>&1 || true; umount -R "$WORK/buildah" 2>/dev/null || true; docker rmi -f "$TAG-base:1" "$TAG:1" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
export STRATA_STORE=$WORK/store
P=$WORK/project
mkdir -p "$P/layers/base/rootfs/bin" "$P/layers/step"
install -m 0755 /bin/busybox "$P/layers/base/rootfs/bin/busybox"
ln -s busybox "$P/layers/base/rootfs/bin/sh"
cat > "$P/strata.toml" <<'TOML'
[project]
name = "bench"
[images.img]
layers = ["step"]
TOML
cat > "$P/layers/base/layer.toml" <<'TOML'
[layer]
name = "base"
[[source.copy]]
from = "rootfs"
to = "/"
TOML
step_toml() {
  cat > "$P/layers/step/layer.toml" <<TOML
[layer]
name = "step"
[requires]
layers = ["base"]
[runtime]
layers = ["base"]
[source.run]
commands = ["touch /made-$1"]
TOML
}
step_toml 0
# The same base for BuildKit, through a docker-archive.
"$STRATA" new --add /bin/busybox:/bin/busybox --tag base:1 >/dev/null
"$STRATA" copy base:1 "docker-archive:$WORK/base.tar:$TAG-base:1" >/dev/null
docker load -q -i "$WORK/base.tar" >/dev/null
mkdir -p "$WORK/ctx"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

echo "strata: first build"
"$STRATA" build -C "$P" >/dev/null
strata_step=()
for i in $(seq 1 "$RUNS"); do
  step_toml "$i"
  t0=$(now); "$STRATA" build -C "$P" >/dev/null 2>&1; t1=$(now)
  strata_step+=("$(secs "$t0" "$t1")")
done
strata_noop=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); "$STRATA" build -C "$P" >/dev/null 2>&1; t1=$(now)
  strata_noop+=("$(secs "$t0" "$t1")")
done

printf 'FROM %s-base:1\nRUN ["/bin/busybox", "touch", "/made"]\n' "$TAG" > "$WORK/ctx/Dockerfile"
echo "BuildKit: first build"
DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t "$TAG:1" "$WORK/ctx" >/dev/null
bk_step=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); DOCKER_BUILDKIT=1 /usr/bin/docker build -q --no-cache -t "$TAG:1" "$WORK/ctx" >/dev/null; t1=$(now)
  bk_step+=("$(secs "$t0" "$t1")")
done
bk_noop=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t "$TAG:1" "$WORK/ctx" >/dev/null; t1=$(now)
  bk_noop+=("$(secs "$t0" "$t1")")
done

echo "buildah: first build"
id=$("${B[@]}" pull -q "docker-archive:$WORK/base.tar")
mkdir -p "$WORK/bctx"
printf 'FROM %s\nRUN ["/bin/busybox", "touch", "/made"]\n' "$id" > "$WORK/bctx/Containerfile"
"${B[@]}" bud --layers -q -t "bench-step" "$WORK/bctx" >/dev/null
bh_step=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); "${B[@]}" bud --layers --no-cache -q -t bench-step "$WORK/bctx" >/dev/null; t1=$(now)
  bh_step+=("$(secs "$t0" "$t1")")
done
bh_noop=()
for i in $(seq 1 "$RUNS"); do
  t0=$(now); "${B[@]}" bud --layers -q -t bench-step "$WORK/bctx" >/dev/null; t1=$(now)
  bh_noop+=("$(secs "$t0" "$t1")")
done

s_step=$(printf '%s\n' "${strata_step[@]}" | median)
s_noop=$(printf '%s\n' "${strata_noop[@]}" | median)
b_step=$(printf '%s\n' "${bk_step[@]}" | median)
b_noop=$(printf '%s\n' "${bk_noop[@]}" | median)
h_step=$(printf '%s\n' "${bh_step[@]}" | median)
h_noop=$(printf '%s\n' "${bh_noop[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
echo
echo "| measure | strata | BuildKit | ratio | buildah | ratio | goal |"
echo "|---|---|---|---|---|---|---|"
echo "| build with one changed step (touch a file), whole build | ${s_step} s | ${b_step} s | $(ratio "$s_step" "$b_step") | ${h_step} s | $(ratio "$s_step" "$h_step") | <= 0.5x BuildKit, <= 150 ms of overhead |"
echo "| no-op rebuild | ${s_noop} s | ${b_noop} s | $(ratio "$s_noop" "$b_noop") | ${h_noop} s | $(ratio "$s_noop" "$h_noop") | <= 0.1x BuildKit |"
