#!/usr/bin/env bash
# Installs what vm-container's tests and examples need on a Debian machine
# (as root), and builds xlcfg-check, the checker around Xen's own config
# parser, into target/xlcfg-check. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cpio patch diffutils pigz e2fsprogs signify-openbsd minisign
          libxen-dev vsftpd python3 git hyperfine util-linux mount gcc time)
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
if command -v systemctl >/dev/null 2>&1; then systemctl stop vsftpd >/dev/null 2>&1 || true; fi

shared=${VMC_SHARED:-../shared}
mkdir -p target
if [ ! -x target/xlcfg-check ]; then
  bash "$shared/tools/xlcfg-check/build.sh" "$PWD/target/xlcfg-check" >/dev/null
fi
echo "ready: $(cargo --version), xlcfg-check at target/xlcfg-check"
