#!/usr/bin/env bash
# A Debian minbase as a domain, booted to its login prompt without Xen:
# `debootstrap --variant=minbase --include=systemd-sysv,udev bookworm`
# (without udev no device unit ever appears, and the serial getty gives
# up after waiting 90 s for dev-ttyS0.device), packed
# with `vm-container pack`, its hostname replaced by a container that also
# builds and populates the ext3 root image, then `vm-container boot` until
# systemd's serial getty prints "FCDOBBS login:". Prints the boot time
# (the goal: under 120 s with TCG).
#
#   bash bench/boot-minbase.sh
# Environment: ACCEL (auto, tcg or kvm; default auto), TIMEOUT (default 300),
#   MIRROR (default: the first Debian archive in this machine's apt sources).
# Needs scripts/setup.sh (QEMU, busybox-static, the kernel in
# target/boot-kernel/) and debootstrap. The debootstrapped tree (about
# 3 minutes to make) and its archive are cached in target/boot-minbase/.
set -euo pipefail
cd "$(dirname "$0")/.."

ACCEL=${ACCEL:-auto}
TIMEOUT=${TIMEOUT:-300}
# the archive apt already uses here (deb822 sources or the one-line form)
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources) sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' "$f" ;;
      *) awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f" ;;
    esac
  done | grep -v -- '-security' | head -n 1 || true
}
MIRROR=${MIRROR:-$(apt_mirror)}
[ -n "$MIRROR" ] || { echo "no Debian archive in the apt sources: set MIRROR" >&2; exit 1; }
work=$PWD/target/boot-minbase
kdir=$PWD/target/boot-kernel
[ -d "$kdir/lib/modules" ] || { echo "no kernel in $kdir: run scripts/setup.sh" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "needs debootstrap" >&2; exit 1; }
v=$(ls "$kdir/lib/modules")
cargo build -q
vmc=$PWD/target/debug/vm-container
mkdir -p "$work"

# the tests make the same tree (tests/it/ext4_tree.rs): one at a time
exec 9>"$work/.lock"
flock 9
if [ ! -d "$work/rootfs" ]; then
  rm -rf "$work/rootfs.new"
  debootstrap --variant=minbase --include=systemd-sysv,udev bookworm "$work/rootfs.new" "$MIRROR"
  mv "$work/rootfs.new" "$work/rootfs"
fi
if [ ! -f "$work/minbase.cpio.gz" ]; then
  "$vmc" pack "$work/rootfs" "$work/minbase.cpio.gz.new"
  mv "$work/minbase.cpio.gz.new" "$work/minbase.cpio.gz"
fi
exec 9>&-

# The initramfs tests/it/boot.rs makes: busybox, the virtio modules in load
# order, examples/trees/boot-initramfs/init.
ird=$work/initramfs
rm -rf "$ird" && mkdir -p "$ird/bin" "$ird/etc" "$ird/lib/modules"
cp examples/trees/boot-initramfs/init "$ird/init"
cp /bin/busybox "$ird/bin/busybox"
modprobe -d "$kdir" -S "$v" -a --show-depends virtio_pci virtio_blk |
  awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
  while read -r m; do cp "$m" "$ird/lib/modules/"; basename "$m"; done > "$ird/etc/modules"
"$vmc" pack "$ird" "$work/initrd.cpio.gz"

cat > "$work/minbase.vmc" <<EOF
name = "minbase"
memory = 512
vcpus = 1
kernel = "$kdir/boot/vmlinuz-$v"
ramdisk = "initrd.cpio.gz"
root = "/dev/xvda1 rw"
extra = "console=hvc0"
disk = [ 'file:minbase-root,xvda1,w' ]

[replace /etc/hostname archive minbase.cpio.gz

FCDOBBS
] [end]
[image minbase-root 1G minbase_root][end]
[populate image minbase-root /mnt/ minbase.cpio.gz][end]
EOF

start=$(date +%s.%N)
"$vmc" boot "$work/minbase.vmc" --dir "$work/vmc" --accel "$ACCEL" --timeout "$TIMEOUT" \
  --expect "FCDOBBS login:" --console "$work/console.log" 2>&1 | tee "$work/boot.log" | grep -v '^/' || true
end=$(date +%s.%N)
if grep -q "^boot: every expected text seen after" "$work/boot.log"; then
  seen=$(sed -n 's/^boot: every expected text seen after \([0-9.]*\) s (\(.*\))$/\1 s (\2)/p' "$work/boot.log")
  printf 'minbase: "FCDOBBS login:" after %s; build and boot %.1f s; console in %s\n' \
    "$seen" "$(echo "$end - $start" | bc)" "$work/console.log"
else
  echo "minbase: no login prompt; see $work/console.log" >&2
  exit 1
fi
