# Shared by the bench scripts (source it; not run on its own).

# compose_project DIR KIND: the bench project: a busybox base, the Rust
# toolchain directory ($BENCH_SRC or rustc's sysroot, ~1.4 GB, hardlinked
# where possible) as a tool layer at /opt/rust, and a one-file app
# (src/app.sh) on both; image `app` of kind KIND (builder or runtime).
compose_project() {
  local P=$1 kind=$2
  local src=${BENCH_SRC:-$(rustc --print sysroot)}
  mkdir -p "$P/layers/base/rootfs/bin" "$P/layers/rust" "$P/layers/app/src"
  install -m 0755 /bin/busybox "$P/layers/base/rootfs/bin/busybox"
  ln -s busybox "$P/layers/base/rootfs/bin/sh"
  echo "copying the toolchain into the project (hardlinks where possible)"
  cp -al "$src" "$P/layers/rust/toolchain" 2>/dev/null || cp -a "$src" "$P/layers/rust/toolchain"
  printf '#!/bin/sh\necho app 0\n' > "$P/layers/app/src/app.sh"
  cat > "$P/strata.toml" <<TOML
[project]
name = "bench"
[images.app]
layers = ["app"]
kind = "$kind"
entrypoint = ["/bin/sh", "/srv/app.sh"]
TOML
  cat > "$P/layers/base/layer.toml" <<'TOML'
[layer]
name = "base"
[[source.copy]]
from = "rootfs"
to = "/"
TOML
  cat > "$P/layers/rust/layer.toml" <<'TOML'
[layer]
name = "rust"
[runtime]
layers = ["base"]
[[source.copy]]
from = "toolchain"
to = "/opt/rust"
TOML
  cat > "$P/layers/app/layer.toml" <<'TOML'
[layer]
name = "app"
[requires]
layers = ["base", "rust"]
[runtime]
layers = ["base", "rust"]
[[source.copy]]
from = "src"
to = "/srv"
TOML
  # The same image as a Dockerfile / Containerfile, for the peers.
  cat > "$P/Containerfile" <<'EOF2'
FROM scratch
COPY layers/base/rootfs/ /
COPY layers/rust/toolchain/ /opt/rust/
COPY layers/app/src/app.sh /srv/app.sh
ENTRYPOINT ["/bin/sh", "/srv/app.sh"]
EOF2
}

# t CMD...: runs CMD (a program or a shell function) with its output
# discarded, prints its wall time in seconds.
t() {
  local s0 s1
  s0=$(date +%s.%N)
  "$@" > /dev/null 2> "$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  s1=$(date +%s.%N)
  awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.2f\n", b - a}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
