#!/usr/bin/env bash
# The main job on the bundled examples:
#  1. examples/hello: build a small image into the store, write it as an OCI
#     layout and as a docker-archive, and run it;
#  2. examples/project: build a layered project (busybox base, two tool
#     layers, a layer taken from another image, an app) into a builder and a
#     runtime image, then build it again (everything cached) and run it.
# Images run with docker where an engine answers, otherwise umoci + runc.
#
# Environment: OUT (default target/demo) holds everything it writes;
# STRATA_STORE (default $OUT/store); STRATA (or STRATA_BIN), a strata already
# built (else it builds one with cargo); DEMO_TAG, the tag of the images it loads into
# docker (default latest), removed again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh busybox-static umoci runc ca-certificates gcc pkg-config
STRATA_BIN=${STRATA:-${STRATA_BIN:-}}
if [ -z "$STRATA_BIN" ]; then
  cargo build --release --quiet
fi
strata=${STRATA_BIN:-target/release/strata}
echo "== using $strata"

OUT=${OUT:-target/demo}
mkdir -p "$OUT"
export STRATA_STORE=${STRATA_STORE:-$OUT/store}
TAG=${DEMO_TAG:-latest}

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
$strata copy hello:latest "docker-archive:$OUT/hello.tar:strata-example/hello:$TAG"
$strata validate "oci:$OUT/layout:hello"
ls -l "$OUT/hello.tar" "$OUT/layout"

# run_image STORE_TAG LAYOUT_TAG ARCHIVE NAME
run_image() {
  if command -v docker >/dev/null && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "(docker engine answers: docker load + docker run)"
    docker load -i "$3" >/dev/null
    docker run --rm "$4"
    docker rmi "$4" >/dev/null
  else
    echo "(no docker engine: umoci unpack + runc run)"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    rm -rf "$OUT/bundle"
    $SUDO umoci unpack --image "$2" "$OUT/bundle" >/dev/null
    $SUDO sed -i 's/"terminal": *true/"terminal":false/' "$OUT/bundle/config.json"
    $SUDO runc run -b "$OUT/bundle" "strata-demo-$$"
  fi
}

echo "== run hello"
run_image hello:latest "$OUT/layout:hello" "$OUT/hello.tar" "strata-example/hello:$TAG"

echo "== examples/project (a copy in $OUT/project): graph, check, build, build again"
rm -rf "$OUT/project"
cp -a examples/project "$OUT/project"
install -m 0755 /bin/busybox "$OUT/project/layers/base/rootfs/bin/busybox"
$strata graph -C "$OUT/project"
$strata check -C "$OUT/project"
$strata build -C "$OUT/project"
$strata build -C "$OUT/project"
rm -rf "$OUT/project-layout" "$OUT/project.tar"
$strata copy example/runtime:latest "oci:$OUT/project-layout:runtime"
$strata copy example/runtime:latest "docker-archive:$OUT/project.tar:strata-example/project:$TAG"
echo "== run the project's runtime image"
run_image example/runtime:latest "$OUT/project-layout:runtime" "$OUT/project.tar" "strata-example/project:$TAG"
