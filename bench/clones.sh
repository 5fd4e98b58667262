#!/usr/bin/env bash
# Many domains from one base image: N domains (default 100), each with its
# own hostname and the users patch (examples/patches/users.patch), made
#   ours-reflink  by vm-container clones on XFS (reflink=1): one container
#                 a domain, `[image D SIZE base BASE]`, `[replace ... image D]`,
#                 `[patch D ...]`;
#   ours-full     by vm-container building each domain's whole image from
#                 the base tree (`[image]`, `[populate image]`, the same edits);
#   usual         by `cp --sparse=always` of the base, `mount -o loop`, the
#                 hostname written, `patch -p1`, `umount` (as root);
#   ours-qcow2    by vm-container qcow2 overlays of the base, when this
#                 build writes them (else the table says "not available");
#   qemu-img+guestfish
#                 by `qemu-img create -b` overlays edited with guestfish,
#                 when libguestfs-tools is installed (else the table says
#                 why not).
# All on one loop-mounted XFS file system. Prints hyperfine medians, the
# milliseconds a domain (wall and CPU), the MiB of new disk a domain (df
# before and after one round of each) and how many times faster than the
# usual way each way is.
#
#   sudo bash bench/clones.sh
# Environment: N (domains, default 100), RUNS (default 3), SIZE (the
#   base image, default 128M), BIN (a built vm-container; default: a
#   release build).
# Needs root (mount), hyperfine, xfsprogs, e2fsprogs, patch.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
RUNS=${RUNS:-3}
SIZE=${SIZE:-128M}
for tool in hyperfine mkfs.xfs e2fsck patch; do
  command -v "$tool" >/dev/null || { echo "needs $tool: run scripts/setup.sh" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (loop mounts)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release -q >&2
  BIN=$PWD/target/release/vm-container
fi
PATCH=$PWD/examples/patches/users.patch

work=$(mktemp -d)
mnt=$work/xfs
cleanup() {
  umount "$work/edit" 2>/dev/null || true
  umount "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt" "$work/edit" "$work/c"
truncate -s 8G "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img"
mount -o loop "$work/xfs.img" "$mnt"

# the base: the example tree and /usr/share/perl
tree=$work/tree
cp -a examples/trees/base "$tree"
mkdir -p "$tree/usr/share"
cp -a /usr/share/perl "$tree/usr/share/perl"
printf '[image %s %s root][end]\n[populate image %s / %s][end]\n' \
  "$mnt/base.img" "$SIZE" "$mnt/base.img" "$tree" > "$work/base.vmc"
"$BIN" --container "$work/base.vmc" --dir "$work/w" -q
e2fsck -fn "$mnt/base.img" >/dev/null

# one container a domain, for each of our two ways
for i in $(seq -w 1 "$N"); do
  d=$mnt/clone/dom$i.img
  {
    printf '[image %s %s base %s][end]\n' "$d" "$SIZE" "$mnt/base.img"
    printf '[replace /etc/HOSTNAME image %s\n\ndom%s\n] [end]\n' "$d" "$i"
    printf '[patch %s %s][end]\n' "$d" "$PATCH"
  } > "$work/c/clone$i.vmc"
  d=$mnt/full/dom$i.img
  {
    printf '[image %s %s root][end]\n[populate image %s / %s][end]\n' "$d" "$SIZE" "$d" "$tree"
    printf '[replace /etc/HOSTNAME image %s\n\ndom%s\n] [end]\n' "$d" "$i"
    printf '[patch %s %s][end]\n' "$d" "$PATCH"
  } > "$work/c/full$i.vmc"
done

cat > "$work/ours.sh" <<SH
set -e
mkdir -p $mnt/\$1
for i in \$(seq -w 1 $N); do
  $BIN --container $work/c/\$1\$i.vmc --dir $work/w-\$1 -q
done
SH
cat > "$work/usual.sh" <<SH
set -e
mkdir -p $mnt/usual
for i in \$(seq -w 1 $N); do
  d=$mnt/usual/dom\$i.img
  cp --sparse=always $mnt/base.img \$d
  mount -o loop \$d $work/edit
  echo dom\$i > $work/edit/etc/HOSTNAME
  patch -s -d $work/edit -p1 < $PATCH
  umount $work/edit
done
SH
# qemu-img overlays edited by guestfish: the hostname written, the
# patched files downloaded, patched on the host and uploaded
cat > "$work/guestfish.sh" <<SH
set -e
mkdir -p $mnt/guestfish $work/gf
for i in \$(seq -w 1 $N); do
  d=$mnt/guestfish/dom\$i.qcow2
  qemu-img create -q -f qcow2 -b $mnt/base.img -F raw \$d
  rm -rf $work/gf/etc; mkdir -p $work/gf/etc
  guestfish -a \$d -m /dev/sda <<GF
download /etc/passwd $work/gf/etc/passwd
download /etc/group $work/gf/etc/group
download /etc/shadow $work/gf/etc/shadow
GF
  patch -s -d $work/gf -p1 < $PATCH
  guestfish -a \$d -m /dev/sda <<GF
write /etc/HOSTNAME "dom\$i\n"
upload $work/gf/etc/passwd /etc/passwd
upload $work/gf/etc/group /etc/group
upload $work/gf/etc/shadow /etc/shadow
GF
done
SH
ways="clone full usual"
declare -A missing
missing[ours-qcow2]="not available: this build writes no qcow2 images"
if command -v guestfish >/dev/null && command -v qemu-img >/dev/null; then
  ways="$ways guestfish"
else
  missing[qemu-img+guestfish]="not available: libguestfs-tools is not installed (about 170 packages with a kernel and an appliance; without KVM every guestfish launch boots that appliance under TCG, seconds a domain)"
fi
reset="rm -rf $mnt/clone $mnt/full $mnt/usual $mnt/guestfish $work/w-clone $work/w-full; sync"

used() { df --output=used -B1 "$mnt" | tail -n 1; }
declare -A mib
for way in $ways; do
  eval "$reset"
  before=$(used)
  case $way in
    usual) bash "$work/usual.sh" ;;
    guestfish) bash "$work/guestfish.sh" ;;
    *) bash "$work/ours.sh" "$way" ;;
  esac
  sync
  mib[$way]=$(( ($(used) - before) / N ))
  [ "$way" = guestfish ] && continue
  # the first and last domains check clean and have their own name
  for i in $(seq -w 1 "$N" | sed -n '1p;$p'); do
    e2fsck -fn "$mnt/$way/dom$i.img" >/dev/null
    debugfs -R "cat /etc/HOSTNAME" "$mnt/$way/dom$i.img" 2>/dev/null | grep -qx "dom$i"
  done
done

runs=(-n ours-reflink "bash $work/ours.sh clone"
  -n ours-full "bash $work/ours.sh full"
  -n usual "bash $work/usual.sh")
case " $ways " in
  *" guestfish "*) runs+=(-n qemu-img+guestfish "bash $work/guestfish.sh") ;;
esac
hyperfine --runs "$RUNS" --prepare "$reset" --export-json "$work/h.json" "${runs[@]}" >&2

{
  echo "ours-reflink ${mib[clone]}"
  echo "ours-full ${mib[full]}"
  echo "usual ${mib[usual]}"
  [ -n "${mib[guestfish]:-}" ] && echo "qemu-img+guestfish ${mib[guestfish]}"
  for w in "${!missing[@]}"; do echo "$w - ${missing[$w]}"; done
} > "$work/mib"
python3 - "$work/h.json" "$N" "$work/mib" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
mib, missing = {}, {}
for line in open(sys.argv[3]):
    way, v, *why = line.split(" ", 2)
    if v == "-":
        missing[way] = why[0].strip()
    else:
        mib[way] = int(v)
usual = next((r["median"] for r in h["results"] if r["command"] == "usual"), None)
print(f"{'way':19} {'median s':>9} {'ms/domain':>10} {'CPU ms/domain':>14} "
      f"{'MiB new disk/domain':>20} {'x usual':>8}")
for r in h["results"]:
    m = r["median"]
    cpu = (r["user"] + r["system"]) * 1000 / n
    x = f"{usual / m:8.1f}" if usual else ""
    print(f"{r['command']:19} {m:9.2f} {m * 1000 / n:10.1f} {cpu:14.1f} "
          f"{mib[r['command']] / 2**20:20.2f} {x}")
for way in sorted(missing):
    print(f"{way:19} {missing[way]}")
PY
