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
# the tests also compare against GNU cpio/tar/diff/patch (tar sources
# compressed by xz, zstd and bzip2 too), signify and
# minisign, serve FTP with vsftpd, mount images (util-linux) and measure
# memory (time), boot a debootstrapped minbase (debootstrap), run
# `make install` into a scratch root and render its man pages (make,
# man-db), load the shell completions it installs (bash, zsh, fish),
# watch progress bars on a pseudo-terminal (script, in bsdutils); OCI
# images are built by umoci, copied by skopeo and served by
# docker-registry (bearer tokens signed with openssl); clones are made on
# XFS with reflinks (xfsprogs) and qcow2 told from raw (qemu-utils); the
# benchmarks use
# hyperfine and libdeflate-gunzip (the fastest inflate, their floor);
# extended attributes are set and read by setcap/getcap (libcap2-bin)
# and setfattr/getfattr (attr)
test_packages=(cpio tar xz-utils zstd bzip2 patch diffutils pigz signify-openbsd minisign vsftpd
               python3 git hyperfine libdeflate-tools util-linux mount time debootstrap
               make man-db zsh fish bsdutils umoci skopeo docker-registry openssl
               xfsprogs qemu-utils libcap2-bin attr)

case "${1:-}" in
  --demo) packages=("${demo_packages[@]}") ;;
  "") packages=("${demo_packages[@]}" "${test_packages[@]}") ;;
  *) echo "usage: scripts/setup.sh [--demo]" >&2; exit 2 ;;
esac

# the oldest Rust that builds vm-container is Cargo.toml's rust-version;
# Debian's own rustc is older (1.63 in Debian 12), rustup installs a
# current one
need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
rustup_hint="install it with rustup: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y, then . \"\$HOME/.cargo/env\" (see README.md, Prerequisites)"
if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
  echo "setup: cargo or rustc is not on PATH: vm-container needs Rust $need or later; $rustup_hint" >&2
  exit 1
fi
for tool in rustc cargo; do
  have=$("$tool" --version | awk '{ print $2 }')
  if [ "$(printf '%s\n%s\n' "$need" "${have%%-*}" | sort -V | sed -n 1p)" != "$need" ]; then
    echo "setup: $(command -v "$tool") is $have, older than the Rust $need vm-container needs (Debian's packaged Rust is too old); $rustup_hint" >&2
    exit 1
  fi
done

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
  # likewise docker-registry's system instance (port 5000)
  systemctl stop docker-registry >/dev/null 2>&1 || true
fi

# rebuilt whenever its source or build script is newer than the binary
checker=target/xlcfg-check
src=tools/xlcfg-check
if [ ! -x "$checker" ] || [ "$src/xlcfg-check.c" -nt "$checker" ] || [ "$src/build.sh" -nt "$checker" ]; then
  bash "$src/build.sh" "$PWD/$checker"
fi

if [ "${1:-}" = --demo ]; then
  echo "ready: $(cargo --version), xlcfg-check at $checker"
  exit 0
fi
# --- boot: QEMU, busybox and a Debian kernel for `vm-container boot` ------
# tests/it/boot.rs boots real kernels under QEMU: the kernel of Debian's cloud
# flavour (small, virtio drivers as modules) is unpacked into
# target/boot-kernel/ with its modules.dep, and reused until Debian's
# linux-image-cloud-amd64 points at another package.

# (the commands the packages provide tell whether they are there)
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ] ||
   ! command -v depmod >/dev/null; then
  echo "installing: qemu-system-x86 busybox-static kmod"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-system-x86 busybox-static kmod >/dev/null
fi
kernel_package() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && !found { print $2; found = 1 }'
}
kpkg=$(kernel_package)
if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(kernel_package); fi
[ -n "$kpkg" ] || { echo "setup: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
kdir=target/boot-kernel
if [ "$(cat "$kdir/package" 2>/dev/null)" != "$kpkg" ]; then
  echo "fetching $kpkg into $kdir"
  ktmp=$(mktemp -d) && chmod 755 "$ktmp"   # apt-get download fetches as _apt
  (cd "$ktmp" && apt-get download -qq "$kpkg")
  rm -rf "$kdir.new" && mkdir -p "$kdir.new"
  dpkg-deb -x "$ktmp"/*.deb "$kdir.new"
  rm -rf "$ktmp"
  kver=$(ls "$kdir.new/lib/modules")
  depmod -b "$kdir.new" "$kver"
  # names that do not change with the kernel's version, for the example
  ln -s "boot/vmlinuz-$kver" "$kdir.new/vmlinuz"
  ln -s "lib/modules/$kver" "$kdir.new/modules"
  echo "$kpkg" > "$kdir.new/package"
  rm -rf "$kdir" && mv "$kdir.new" "$kdir"
fi
echo "boot kernel: $kpkg in $kdir"
# --- end boot ---------------------------------------------------------------
echo "ready: $(cargo --version), xlcfg-check at $checker"
