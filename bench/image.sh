#!/usr/bin/env bash
# Building an ext3 (or FS=ext4) image from a cpio.gz archive of a real tree
# (a copy of /usr/share unless TREE is given), every image the same SIZE (2G):
#   ours  a container `[image IMG SIZE fs FS][end]` + `[populate image IMG /mnt ARCHIVE][end]`
#         (its time includes the image's final fsync)
#   (a)   `gzip -dc ARCHIVE | cpio -idm` into a directory, then `mke2fs -q -t FS -d DIR IMG SIZE`
#   (b)   the paper's way, as root: `mkfs.FS -q IMG SIZE`, `mount -o loop IMG MNT`,
#         `gzip -dc ARCHIVE | cpio -idm` into MNT, `umount MNT`
#   (c)   `gzip -dc ARCHIVE > /dev/null` alone (decompression only)
#   (p)   `pigz -dc ARCHIVE > /dev/null`
#   (l)   `libdeflate-gunzip -c ARCHIVE > /dev/null` (the floor: the fastest inflate)
# Prints hyperfine medians, the ratios ours/a, ours/b, ours/min(a,b) (goal <= 0.4),
# ours/c (goal <= 0.5), ours/p and ours/l (goal <= 1.5), user/sys/wall and peak
# RSS of each (GNU time), our peak RSS (goal < 64 MiB), and checks our image
# once with `e2fsck -fn`.
#
#   bench/image.sh [TREE [SIZE]]
# Environment: TREE, SIZE (default 2G), FS (ext3 or ext4, default ext3),
#   RUNS (default 3), WARMUP (default 1),
#   ARCHIVE (use this cpio.gz instead of packing TREE), BENCH_WORK (where to
#   make the work directory, default /tmp), BENCH_KEEP=1 (keep it).
# Every timed run starts from nothing: its --prepare removes the image, the
# extraction directory and our --dir, then runs `sync` so that write-back of
# the previous run does not land in the next one. No command syncs at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

TREE=${1:-${TREE:-/usr/share}}
SIZE=${2:-${SIZE:-2G}}
FS=${FS:-ext3}
case $FS in ext3 | ext4) ;; *) echo "FS must be ext3 or ext4" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}

missing=()
for tool in hyperfine cpio gzip pigz libdeflate-gunzip mke2fs "mkfs.$FS" e2fsck python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(/usr/bin/time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y hyperfine cpio gzip pigz libdeflate-tools e2fsprogs time python3 (and a Rust toolchain for cargo)" >&2
    exit 1
fi
WITH_B=1
if [ "$(id -u)" -ne 0 ] || ! command -v mount >/dev/null || ! command -v losetup >/dev/null; then
    echo "note: (b) needs root, mount and loop devices (apt-get install -y mount); skipping (b)" >&2
    WITH_B=0
fi

cargo build --release -q >&2
BIN=$PWD/target/release/vm-container

mkdir -p "${BENCH_WORK:-/tmp}"
WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/vmc-image-bench.XXXXXX")
WORK=$(cd "$WORK" && pwd)
cleanup() {
    if mountpoint -q "$WORK/mnt" 2>/dev/null; then umount "$WORK/mnt" || true; fi
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

archive_or_pack
entries=$(gzip -dc "$ARCHIVE" | cpio -it --quiet 2>/dev/null | wc -l)
raw=$(gzip -dc "$ARCHIVE" | wc -c)
echo "archive: $ARCHIVE, $(stat -c %s "$ARCHIVE") bytes gzip, $raw bytes cpio, $entries entries; $FS image of $SIZE" >&2

IMG_O=$WORK/ours.img IMG_A=$WORK/a.img IMG_B=$WORK/b.img
DIR_A=$WORK/a-tree MNT=$WORK/mnt VMC_DIR=$WORK/vmc
mkdir -p "$MNT"
printf '[image %s %s bench fs %s][end]\n[populate image %s /mnt %s][end]\n' \
    "$IMG_O" "$SIZE" "$FS" "$IMG_O" "$ARCHIVE" > "$WORK/ours.vmc"

CMD_O="$BIN -q --container $WORK/ours.vmc --dir $VMC_DIR"
PREP_O="rm -rf $IMG_O $VMC_DIR && sync"
CMD_A="cd $DIR_A && gzip -dc $ARCHIVE | cpio -idm --quiet --no-absolute-filenames && mke2fs -q -t $FS -d $DIR_A $IMG_A $SIZE"
PREP_A="rm -rf $IMG_A $DIR_A && mkdir $DIR_A && sync"
CMD_B="mkfs.$FS -q $IMG_B $SIZE && mount -o loop $IMG_B $MNT && cd $MNT && gzip -dc $ARCHIVE | cpio -idm --quiet --no-absolute-filenames && cd / && umount $MNT"
PREP_B="(! mountpoint -q $MNT || umount $MNT) && rm -f $IMG_B && sync"
CMD_C="gzip -dc $ARCHIVE > /dev/null"
CMD_P="pigz -dc $ARCHIVE > /dev/null"
CMD_L="libdeflate-gunzip -c $ARCHIVE > /dev/null"
PREP_C="sync"

names=(ours a c p l)
[ "$WITH_B" = 1 ] && names=(ours a b c p l)
for n in "${names[@]}"; do
    case $n in
        ours) cmd=$CMD_O prep=$PREP_O ;;
        a) cmd=$CMD_A prep=$PREP_A ;;
        b) cmd=$CMD_B prep=$PREP_B ;;
        c) cmd=$CMD_C prep=$PREP_C ;;
        p) cmd=$CMD_P prep=$PREP_C ;;
        l) cmd=$CMD_L prep=$PREP_C ;;
    esac
    hyperfine --runs "$RUNS" --warmup "$WARMUP" --prepare "$prep" \
        --export-json "$WORK/$n.json" -n "$n" "$cmd" >&2
    # One more run under GNU time for user/sys/wall and peak RSS.
    bash -c "$prep"
    /usr/bin/time -v bash -c "$cmd" 2> "$WORK/$n.time" >/dev/null
done

echo "e2fsck -fn on our image:" >&2
if e2fsck -fn "$IMG_O" > "$WORK/fsck.out" 2>&1; then FSCK=clean; else FSCK="FAILED (exit $?)"; cat "$WORK/fsck.out" >&2; fi
tail -n 1 "$WORK/fsck.out" >&2

python3 - "$WORK" "$FSCK" "${names[@]}" <<'PY'
import json, sys
work, fsck, names = sys.argv[1], sys.argv[2], sys.argv[3:]
med, tv = {}, {}
for n in names:
    med[n] = json.load(open(f"{work}/{n}.json"))["results"][0]["median"]
    t = {}
    for line in open(f"{work}/{n}.time"):
        k, _, v = line.strip().rpartition(": ")
        t[k] = v
    tv[n] = t
def secs(s):
    p = [float(x) for x in s.split(":")]
    return sum(x * 60 ** i for i, x in enumerate(reversed(p)))
print(f"{'':5s} {'median':>9s} {'user':>7s} {'sys':>7s} {'wall':>7s} {'cpu':>5s} {'peak RSS':>11s}")
for n in names:
    t = tv[n]
    print(f"{n:5s} {med[n]:8.3f}s {float(t['User time (seconds)']):6.2f}s {float(t['System time (seconds)']):6.2f}s"
          f" {secs(t['Elapsed (wall clock) time (h:mm:ss or m:ss)']):6.2f}s {t['Percent of CPU this job got']:>5s}"
          f" {int(t['Maximum resident set size (kbytes)']) / 1024:7.1f} MiB")
o = med["ours"]
def goal(ok):
    return "ok" if ok else "MISSED"
print(f"ours/a          {o / med['a']:6.3f}")
if "b" in med:
    print(f"ours/b          {o / med['b']:6.3f}")
    m = min(med["a"], med["b"])
    print(f"ours/min(a,b)   {o / m:6.3f}   goal <= 0.4  {goal(o / m <= 0.4)}")
else:
    print(f"ours/min(a,b)   (b skipped; ours/a only)")
print(f"ours/c (gzip)   {o / med['c']:6.3f}   goal <= 0.5  {goal(o / med['c'] <= 0.5)}")
print(f"ours/p (pigz)   {o / med['p']:6.3f}")
print(f"ours/l (libdeflate) {o / med['l']:6.3f}   goal <= 1.5  {goal(o / med['l'] <= 1.5)}")
rss = int(tv["ours"]["Maximum resident set size (kbytes)"]) / 1024
print(f"ours peak RSS   {rss:6.1f} MiB   goal < 64 MiB  {goal(rss < 64)}")
print(f"e2fsck -fn      {fsck}")
PY
