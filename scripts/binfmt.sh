#!/usr/bin/env bash
# Registers Debian's qemu-user-static handlers for the architectures named
# (Debian's qemu names: aarch64, arm, riscv64, ...) with the kernel's
# binfmt_misc, mounting it first when it is not mounted, so that foreign
# build steps and the other platform's images can run here. A handler
# already registered is left as it is. Needs root; changes kernel state for
# the whole machine (as binfmt-support does at boot).
#
# Usage: scripts/binfmt.sh aarch64 [ARCH...]
# Exits 0 when every handler named is registered and enabled, else 1 with
# the reason on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh qemu-user-static

dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/register" ]; then
  if ! mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null; then
    echo "binfmt.sh: cannot mount binfmt_misc on $dir (not root, or not allowed here)" >&2
    exit 1
  fi
fi
status=0
for arch in "$@"; do
  entry="$dir/qemu-$arch"
  conf="/usr/lib/binfmt.d/qemu-$arch.conf"
  if [ ! -e "$entry" ]; then
    if [ ! -f "$conf" ]; then
      echo "binfmt.sh: qemu-user-static has no $conf" >&2
      status=1
      continue
    fi
    if ! cat "$conf" > "$dir/register" 2>/dev/null; then
      echo "binfmt.sh: the kernel refused the qemu-$arch handler" >&2
      status=1
      continue
    fi
  fi
  if ! head -n1 "$entry" | grep -qx enabled; then
    echo "binfmt.sh: $entry is registered but not enabled" >&2
    status=1
  fi
done
exit "$status"
