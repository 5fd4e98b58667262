#!/usr/bin/env bash
# Incremental cost of populating an existing ext3 image in place: a SIZE
# (4G) image made by mke2fs that already holds ~BIG_MB (1024) MB of files,
# populated with a ~SMALL_MB (10) MB archive by a container
#   [populate image IMG /mnt SMALL.cpio.gz][end]
# against the time of populating the big archive itself into the empty
# mke2fs image (same code path: an existing image, updated in place).
# As root it also times the paper's way for the small archive (mount -o loop,
# gzip -dc | cpio -idm, umount) for reference.
# Every timed run works on a fresh copy of its starting image, made with
# `cp --sparse=always` and flushed with `sync` in hyperfine's --prepare, so
# copying is not timed and runs are independent.
#
#   bench/populate.sh [BIG_TREE]
# BIG_TREE: a directory to pack as the big archive (default: BIG_MB MB of
# random files, FILE_MB MB each, generated from /dev/urandom). The small
# archive is SMALL_MB MB of random files, half in a new directory and half
# added to directories the big tree already has (when it has any).
# Environment: BIG_TREE, BIG_MB (1024), FILE_MB (4), SMALL_MB (10), SIZE (4G),
#   RUNS (3), BENCH_WORK (where to make the work directory, default /tmp),
#   BENCH_KEEP=1 (keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

BIG_TREE=${1:-${BIG_TREE:-}}
BIG_MB=${BIG_MB:-1024}
FILE_MB=${FILE_MB:-4}
SMALL_MB=${SMALL_MB:-10}
SIZE=${SIZE:-4G}
RUNS=${RUNS:-3}

missing=()
for tool in hyperfine cpio gzip mke2fs e2fsck python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(/usr/bin/time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y hyperfine cpio gzip e2fsprogs time python3 (and a Rust toolchain for cargo)" >&2
    exit 1
fi
WITH_MOUNT=1
if [ "$(id -u)" -ne 0 ] || ! command -v mount >/dev/null || ! command -v losetup >/dev/null; then
    echo "note: the mount reference needs root, mount and loop devices (apt-get install -y mount); skipping it" >&2
    WITH_MOUNT=0
fi
GZ=gzip
command -v pigz >/dev/null && GZ=pigz   # only to build the archives faster

cargo build --release -q >&2
BIN=$PWD/target/release/vm-container

mkdir -p "${BENCH_WORK:-/tmp}"
WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/vmc-populate-bench.XXXXXX")
WORK=$(cd "$WORK" && pwd)
MNT=$WORK/mnt
cleanup() {
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || true; fi
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$MNT"

pack() { # DIR OUT: GNU cpio newc, gzip -6
    (cd "$1" && find . | cpio -o -H newc --quiet | "$GZ" -6 > "$2")
}

# The big archive.
if [ -n "$BIG_TREE" ]; then
    [ -d "$BIG_TREE" ] || { echo "no such directory: $BIG_TREE" >&2; exit 2; }
    BIG_SRC=$BIG_TREE
else
    BIG_SRC=$WORK/big
    echo "generating $BIG_MB MB of random files ($FILE_MB MB each)" >&2
    n=$(( BIG_MB / FILE_MB ))
    for ((i = 0; i < n; i++)); do
        d=$BIG_SRC/d$(printf %02d $(( i % 16 )))
        mkdir -p "$d"
        head -c $(( FILE_MB * 1024 * 1024 )) /dev/urandom > "$d/f$(printf %04d "$i")"
    done
fi
echo "packing the big archive" >&2
pack "$BIG_SRC" "$WORK/big.cpio.gz"
[ -n "$BIG_TREE" ] || rm -rf "$BIG_SRC"

# The small archive: new files in a new directory and in existing ones.
SMALL_SRC=$WORK/small
mkdir -p "$SMALL_SRC/new"
existing=()
if [ -n "$BIG_TREE" ]; then
    while IFS= read -r d; do existing+=("${d#./}"); done < <(cd "$BIG_TREE" && find . -mindepth 1 -maxdepth 1 -type d | sort | head -n 8)
else
    existing=(d00 d01 d02 d03 d04 d05 d06 d07)
fi
nsmall=80
per=$(( SMALL_MB * 1024 * 1024 / nsmall ))
for ((i = 0; i < nsmall; i++)); do
    if (( i % 2 == 1 && ${#existing[@]} > 0 )); then
        d=$SMALL_SRC/${existing[$(( i / 2 % ${#existing[@]} ))]}
    else
        d=$SMALL_SRC/new
    fi
    mkdir -p "$d"
    head -c "$per" /dev/urandom > "$d/added-$(printf %03d "$i")"
done
pack "$SMALL_SRC" "$WORK/small.cpio.gz"
rm -rf "$SMALL_SRC"
echo "big archive $(stat -c %s "$WORK/big.cpio.gz") bytes, small archive $(stat -c %s "$WORK/small.cpio.gz") bytes" >&2

# The starting images: an empty SIZE ext3 image from mke2fs, and the same
# image after one populate of the big archive.
EMPTY=$WORK/empty.img FULL=$WORK/full.img IMG=$WORK/img VMC_DIR=$WORK/vmc
mke2fs -q -t ext3 -L bench "$EMPTY" "$SIZE" >&2
printf '[populate image %s /mnt %s][end]\n' "$IMG" "$WORK/big.cpio.gz" > "$WORK/big.vmc"
printf '[populate image %s /mnt %s][end]\n' "$IMG" "$WORK/small.cpio.gz" > "$WORK/small.vmc"
echo "populating the big archive once to make the starting image" >&2
cp --sparse=always "$EMPTY" "$IMG"
rm -rf "$VMC_DIR"
"$BIN" -q --container "$WORK/big.vmc" --dir "$VMC_DIR"
mv "$IMG" "$FULL"
if e2fsck -fn "$FULL" > "$WORK/fsck-full.out" 2>&1; then FSCK_FULL=clean; else FSCK_FULL="FAILED (exit $?)"; cat "$WORK/fsck-full.out" >&2; fi
used=$(du -k "$FULL" | cut -f1)
echo "starting image: $SIZE, $(( used / 1024 )) MiB allocated; e2fsck -fn: $FSCK_FULL" >&2

CMD_BIG="$BIN -q --container $WORK/big.vmc --dir $VMC_DIR"
PREP_BIG="rm -rf $IMG $VMC_DIR && cp --sparse=always $EMPTY $IMG && sync"
CMD_SMALL="$BIN -q --container $WORK/small.vmc --dir $VMC_DIR"
PREP_SMALL="rm -rf $IMG $VMC_DIR && cp --sparse=always $FULL $IMG && sync"
CMD_MOUNT="mount -o loop $IMG $MNT && cd $MNT && gzip -dc $WORK/small.cpio.gz | cpio -idmu --quiet --no-absolute-filenames && cd / && umount $MNT"
PREP_MOUNT="(! mountpoint -q $MNT || umount $MNT) && rm -f $IMG && cp --sparse=always $FULL $IMG && sync"

names=(small big)
[ "$WITH_MOUNT" = 1 ] && names+=(mount)
for n in "${names[@]}"; do
    case $n in
        small) cmd=$CMD_SMALL prep=$PREP_SMALL ;;
        big) cmd=$CMD_BIG prep=$PREP_BIG ;;
        mount) cmd=$CMD_MOUNT prep=$PREP_MOUNT ;;
    esac
    hyperfine --runs "$RUNS" --prepare "$prep" --export-json "$WORK/$n.json" -n "$n" "$cmd" >&2
    bash -c "$prep"
    /usr/bin/time -v bash -c "$cmd" 2> "$WORK/$n.time" >/dev/null
    if [ "$n" = small ]; then
        if e2fsck -fn "$IMG" > "$WORK/fsck-small.out" 2>&1; then FSCK_SMALL=clean; else FSCK_SMALL="FAILED (exit $?)"; cat "$WORK/fsck-small.out" >&2; fi
    fi
done

python3 - "$WORK" "$FSCK_FULL" "$FSCK_SMALL" "${names[@]}" <<'PY'
import json, sys
work, fsck_full, fsck_small, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
label = {"small": "ours, small archive into the full image",
         "big": "ours, big archive into the empty image",
         "mount": "mount -o loop + cpio -idmu + umount, small archive"}
med, tv = {}, {}
for n in names:
    med[n] = json.load(open(f"{work}/{n}.json"))["results"][0]["median"]
    t = {}
    for line in open(f"{work}/{n}.time"):
        k, _, v = line.strip().rpartition(": ")
        t[k] = v
    tv[n] = t
for n in names:
    t = tv[n]
    print(f"{label[n]:52s} median {med[n]:8.3f}s  user {float(t['User time (seconds)']):6.2f}s"
          f"  sys {float(t['System time (seconds)']):6.2f}s  peak RSS {int(t['Maximum resident set size (kbytes)']) / 1024:6.1f} MiB")
print(f"small/big (ours)   {med['small'] / med['big']:7.4f}")
if "mount" in med:
    print(f"ours/mount (small) {med['small'] / med['mount']:7.3f}")
print(f"e2fsck -fn: after the big populate {fsck_full}, after the small populate {fsck_small}")
PY
