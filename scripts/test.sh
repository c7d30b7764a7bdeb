#!/usr/bin/env bash
# strata's whole test suite, as CI runs it. On a fresh Debian machine it
# first installs what the tests drive (registry, skopeo, umoci, runc,
# busybox-static, ...). Docker checks run when an engine answers and are
# reported as skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh docker-registry zsh apache2-utils openssl skopeo umoci runc podman busybox-static tar gzip zstd util-linux coreutils findutils gcc make pkg-config ca-certificates gnupg gpgv dpkg

# The other platform's images and build steps run through qemu-user: register
# its binfmt_misc handler where the kernel lets us.
case "$(uname -m)" in
  aarch64) foreign=x86_64 ;;
  *) foreign=aarch64 ;;
esac
binfmt_ready=0
if scripts/binfmt.sh "$foreign"; then
  binfmt_ready=1
else
  echo "qemu-$foreign is not registered: the checks that run it will be skipped" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (rustup) first" >&2
  exit 1
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

export STRATA_REQUIRE_TOOLS=1
log=target/tmp/external-checks.log
mkdir -p target/tmp
rm -f "$log"

echo "== tests"
status=0
cargo test --doc --quiet || status=$?
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --failure-output final || status=$?
else
  cargo test --no-fail-fast || status=$?
fi

# Printed whether or not a test failed: what ran and what was skipped.
echo "== external checks (ran / skipped)"
if [ -f "$log" ]; then sort "$log" | uniq -c; else echo "none recorded"; fi
skipped=$(grep -c '^SKIPPED' "$log" 2>/dev/null || true)
echo "external checks skipped: ${skipped:-0}"
# In strict mode a skip is a failure, except for a machine with no Docker
# engine (the Docker checks need a daemon this script does not start), the
# checks that need a qemu-user handler when scripts/binfmt.sh could not
# register one, the check that needs an architecture with no handler
# when every one has a handler, and examples/cross off amd64 (Debian builds
# its cross gcc for amd64 machines).
if [ "${STRATA_REQUIRE_TOOLS:-}" = 1 ] && [ -f "$log" ]; then
  excused=(-e 'no Docker engine' -e 'every candidate architecture has a binfmt_misc handler'
    -e "cross-compiler is Debian's for amd64 machines")
  if [ "$binfmt_ready" != 1 ]; then excused+=(-e 'binfmt_misc'); fi
  hidden=$(grep '^SKIPPED' "$log" | grep -v "${excused[@]}" || true)
  if [ -n "$hidden" ]; then
    echo "strict mode (STRATA_REQUIRE_TOOLS=1): these checks were skipped:" >&2
    echo "$hidden" | sort -u >&2
    [ "$status" != 0 ] || status=1
  fi
fi
exit "$status"
