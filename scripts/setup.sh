#!/usr/bin/env bash
# Installs what vm-container needs on a Debian machine (as root) and builds
# xlcfg-check, the checker around Xen's own config parser, from
# tools/xlcfg-check into target/xlcfg-check. Safe to run again.
#
#   bash scripts/setup.sh           what the tests need (.ci/run)
#   bash scripts/setup.sh --demo    only what scripts/demo.sh needs
set -euo pipefail
cd "$(dirname "$0")/.."

# the demo builds vm-container, checks its image with e2fsck and its
# config with libxlutil
demo_packages=(e2fsprogs libxen-dev gcc libc6-dev)
# the tests also compare against GNU cpio/diff/patch, signify and
# minisign, serve FTP with vsftpd, mount images (util-linux) and measure
# memory (time); the benchmarks use hyperfine
test_packages=(cpio patch diffutils pigz signify-openbsd minisign vsftpd
               python3 git hyperfine util-linux mount time)

case "${1:-}" in
  --demo) packages=("${demo_packages[@]}") ;;
  "") packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: scripts/setup.sh [--demo]" >&2; exit 2 ;;
esac

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not on PATH: vm-container needs Rust 1.88 or later (rustup installs it)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# vsftpd's package starts a system instance on port 21; the tests start
# their own on free ports, so the system one is not needed.
if [ "${1:-}" != --demo ] && command -v systemctl >/dev/null 2>&1; then
  systemctl stop vsftpd >/dev/null 2>&1 || true
fi

# rebuilt whenever its source or build script is newer than the binary
checker=target/xlcfg-check
src=tools/xlcfg-check
if [ ! -x "$checker" ] || [ "$src/xlcfg-check.c" -nt "$checker" ] || [ "$src/build.sh" -nt "$checker" ]; then
  bash "$src/build.sh" "$PWD/$checker"
fi
echo "ready: $(cargo --version), xlcfg-check at $checker"
