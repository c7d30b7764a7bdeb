#!/usr/bin/env bash
# The main job on the bundled example (examples/hello): build a small image
# into the store, write it as an OCI layout and as a docker-archive, and run
# it — with docker where an engine answers, otherwise with umoci + runc.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh busybox-static umoci runc ca-certificates gcc pkg-config
cargo build --release --quiet

OUT=${OUT:-target/demo}
mkdir -p "$OUT"
export STRATA_STORE=${STRATA_STORE:-$OUT/store}
strata=target/release/strata

echo "== strata new (store: $STRATA_STORE)"
digest=$($strata new \
  --add examples/hello/rootfs:/ \
  --add /bin/busybox:/bin/busybox \
  --entrypoint '["/bin/sh","/hello.sh"]' \
  --label org.opencontainers.image.title=hello \
  --tag hello:latest)
echo "$digest"
$strata inspect hello:latest

echo "== strata copy -> OCI layout and docker-archive"
rm -rf "$OUT/layout" "$OUT/hello.tar"
$strata copy hello:latest "oci:$OUT/layout:hello"
$strata copy hello:latest "docker-archive:$OUT/hello.tar:strata-example/hello:latest"
$strata validate "oci:$OUT/layout:hello"
ls -l "$OUT/hello.tar" "$OUT/layout"

echo "== run"
if command -v docker >/dev/null && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "(docker engine answers: docker load + docker run)"
  docker load -i "$OUT/hello.tar" >/dev/null
  docker run --rm strata-example/hello:latest
else
  echo "(no docker engine: umoci unpack + runc run)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  rm -rf "$OUT/bundle"
  $SUDO umoci unpack --image "$OUT/layout:hello" "$OUT/bundle" >/dev/null
  $SUDO sed -i 's/"terminal": *true/"terminal":false/' "$OUT/bundle/config.json"
  $SUDO runc run -b "$OUT/bundle" "strata-demo-$$"
fi
