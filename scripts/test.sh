#!/usr/bin/env bash
# strata's whole test suite, as CI runs it. On a fresh Debian machine it
# first installs what the tests drive (registry, skopeo, umoci, runc,
# busybox-static, ...). Docker checks run when an engine answers and are
# reported as skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh docker-registry apache2-utils openssl skopeo umoci runc podman busybox-static tar gzip zstd util-linux coreutils findutils gcc make pkg-config ca-certificates gnupg gpgv dpkg

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
cargo test --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --failure-output final
else
  cargo test --no-fail-fast
fi

echo "== external checks (ran / skipped)"
if [ -f "$log" ]; then sort "$log" | uniq -c; else echo "none recorded"; fi
