#!/usr/bin/env bash
# ext4, new images and existing volumes, in three measures:
#
# 1. A new ext4 image of SIZE (2G) from the cpio.gz archive of a real
#    distribution tree (the Debian minbase bench/boot-minbase.sh caches in
#    target/boot-minbase/minbase.cpio.gz when it is there, else a copy of
#    TREE, /usr/share, packed with GNU cpio | gzip -6):
#      ours  `[image IMG SIZE fs ext4][end]` + `[populate image IMG /mnt ARCHIVE][end]`
#      (a)   `gzip -dc ARCHIVE | cpio -idm` into a directory, then `mkfs.ext4 -q -d DIR IMG SIZE`
#      (c)   `gzip -dc ARCHIVE > /dev/null` alone
#    hyperfine medians and the ratios ours/a (goal <= 0.4) and ours/c
#    (goal <= 1.0); e2fsck -fn on our image.
# 2. Our peak RSS (/usr/bin/time -v) writing a new ext4 image from an
#    archive of ENTRIES (50,000) entries (goal < 64 MiB).
# 3. Populating SMALL_MB (10) MB into a 4G ext4 volume from
#    `mke2fs -t ext4` that already holds BIG_MB (1024) MB, against
#    populating those BIG_MB MB into the empty volume (goal <= 5 %).
#
#   bench/ext4.sh
# Environment: ARCHIVE (a cpio.gz to use for 1), TREE (/usr/share), SIZE (2G),
#   ENTRIES (50000), BIG_MB (1024), FILE_MB (4), SMALL_MB (10), RUNS (3),
#   WARMUP (1), ONLY (a list of 1 2 3 to run), BENCH_WORK (where to make the
#   work directory, default target/), BENCH_KEEP=1 (keep it).
# Every timed run starts from nothing (or from a fresh copy of its starting
# volume, made with `cp --sparse=always`): hyperfine's --prepare removes
# what the previous run made and runs `sync`. No command syncs at its end;
# ours fsyncs the image it writes.
set -euo pipefail
cd "$(dirname "$0")/.."

TREE=${TREE:-/usr/share}
SIZE=${SIZE:-2G}
ENTRIES=${ENTRIES:-50000}
BIG_MB=${BIG_MB:-1024}
FILE_MB=${FILE_MB:-4}
SMALL_MB=${SMALL_MB:-10}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}
ONLY=${ONLY:-1 2 3}

missing=()
for tool in hyperfine cpio gzip mke2fs mkfs.ext4 e2fsck python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(/usr/bin/time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y hyperfine cpio gzip e2fsprogs time python3 (and a Rust toolchain for cargo)" >&2
    exit 1
fi
GZ=gzip
command -v pigz >/dev/null && GZ=pigz # only to make archives faster

cargo build --release -q >&2
BIN=$PWD/target/release/vm-container
MINBASE=$PWD/target/boot-minbase/minbase.cpio.gz

mkdir -p "${BENCH_WORK:-target}"
WORK=$(mktemp -d "${BENCH_WORK:-target}/vmc-ext4-bench.XXXXXX")
WORK=$(cd "$WORK" && pwd)
cleanup() { [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

pack() { # DIR OUT: GNU cpio newc, gzip -6
    (cd "$1" && find . | cpio -o -H newc --quiet | "$GZ" -6 > "$2")
}

# hyperfine NAME PREPARE COMMAND, then one more run under GNU time
measure() {
    hyperfine --runs "$RUNS" --warmup "$WARMUP" --prepare "$2" \
        --export-json "$WORK/$1.json" -n "$1" "$3" >&2
    bash -c "$2"
    /usr/bin/time -v bash -c "$3" 2> "$WORK/$1.time" >/dev/null
}

# NAME...: one line each with the median, user, sys and peak RSS
report() {
    python3 - "$WORK" "$@" <<'PY'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
for n in names:
    med = json.load(open(f"{work}/{n}.json"))["results"][0]["median"]
    t = {}
    for line in open(f"{work}/{n}.time"):
        k, _, v = line.strip().rpartition(": ")
        t[k] = v
    print(f"{n:12s} median {med:8.3f}s  user {float(t['User time (seconds)']):6.2f}s"
          f"  sys {float(t['System time (seconds)']):6.2f}s"
          f"  peak RSS {int(t['Maximum resident set size (kbytes)']) / 1024:7.1f} MiB")
PY
}

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$WORK/$1.json"; }
ratio() { # A B GOAL: prints A/B and whether it meets the goal
    python3 -c 'import sys; r = float(sys.argv[1]) / float(sys.argv[2]); g = float(sys.argv[3]); print(f"{r:7.3f}   goal <= {g}  " + ("ok" if r <= g else "MISSED"))' "$1" "$2" "$3"
}

fsck() { # IMG: clean, or what e2fsck said
    if e2fsck -fn "$1" > "$WORK/fsck.out" 2>&1; then echo clean; else echo "FAILED (exit $?)"; cat "$WORK/fsck.out" >&2; fi
}

results=()

if [[ " $ONLY " == *" 1 "* ]]; then
    if [ -n "${ARCHIVE:-}" ]; then
        ARCHIVE=$(cd "$(dirname "$ARCHIVE")" && pwd)/$(basename "$ARCHIVE")
    elif [ -f "$MINBASE" ]; then
        ARCHIVE=$MINBASE
    else
        [ -d "$TREE" ] || { echo "no such directory: $TREE" >&2; exit 2; }
        ARCHIVE=$WORK/tree.cpio.gz
        echo "packing $TREE with GNU cpio -H newc | gzip -6" >&2
        pack "$TREE" "$ARCHIVE"
    fi
    entries=$(gzip -dc "$ARCHIVE" | cpio -it --quiet 2>/dev/null | wc -l)
    echo "archive: $ARCHIVE, $(stat -c %s "$ARCHIVE") bytes gzip, $entries entries; ext4 image of $SIZE" >&2
    IMG_O=$WORK/ours.img IMG_A=$WORK/a.img DIR_A=$WORK/a-tree VMC_DIR=$WORK/vmc
    printf '[image %s %s bench fs ext4][end]\n[populate image %s /mnt %s][end]\n' \
        "$IMG_O" "$SIZE" "$IMG_O" "$ARCHIVE" > "$WORK/ours.vmc"
    measure ours "rm -rf $IMG_O $VMC_DIR && sync" "$BIN -q --container $WORK/ours.vmc --dir $VMC_DIR"
    measure a "rm -rf $IMG_A $DIR_A && mkdir $DIR_A && sync" \
        "cd $DIR_A && gzip -dc $ARCHIVE | cpio -idm --quiet --no-absolute-filenames && mkfs.ext4 -q -d $DIR_A $IMG_A $SIZE"
    measure c "sync" "gzip -dc $ARCHIVE > /dev/null"
    report ours a c
    o=$(median ours)
    results+=("new image: ours/a (cpio -idm + mkfs.ext4 -d)  $(ratio "$o" "$(median a)" 0.4)")
    results+=("new image: ours/c (gzip -dc)                  $(ratio "$o" "$(median c)" 1.0)")
    results+=("new image: e2fsck -fn on ours: $(fsck "$IMG_O")")
    rm -rf "$IMG_O" "$IMG_A" "$DIR_A" "$VMC_DIR"
fi

if [[ " $ONLY " == *" 2 "* ]]; then
    # ENTRIES entries: directories of 100 small files each
    T=$WORK/many
    echo "making a tree of $ENTRIES entries" >&2
    python3 - "$T" "$ENTRIES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
made, d = 0, 0
while made < n:
    top = os.path.join(root, f"t{d // 100:03d}")
    if d % 100 == 0:
        os.makedirs(top)
        made += 1
    p = os.path.join(top, f"d{d:05d}")
    os.mkdir(p)
    made += 1
    for i in range(max(0, min(99, n - made))):
        with open(os.path.join(p, f"f{i:02d}"), "w") as f:
            f.write(f"{d} {i}\n" * (1 + i % 7))
        made += 1
    d += 1
PY
    pack "$T" "$WORK/many.cpio.gz"
    rm -rf "$T"
    n=$(gzip -dc "$WORK/many.cpio.gz" | cpio -it --quiet 2>/dev/null | wc -l)
    IMG=$WORK/many.img
    printf '[image %s 1G many fs ext4][end]\n[populate image %s /mnt %s][end]\n' \
        "$IMG" "$IMG" "$WORK/many.cpio.gz" > "$WORK/many.vmc"
    /usr/bin/time -v "$BIN" -q --container "$WORK/many.vmc" --dir "$WORK/vmc-many" 2> "$WORK/many.time"
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/many.time")
    results+=("$(python3 -c 'import sys; r = int(sys.argv[1]) / 1024; print(f"peak RSS for {sys.argv[2]} entries: {r:.1f} MiB   goal < 64 MiB  " + ("ok" if r < 64 else "MISSED"))' "$rss" "$n")")
    results+=("$n entries: e2fsck -fn: $(fsck "$IMG")")
    rm -rf "$IMG" "$WORK/vmc-many"
fi

if [[ " $ONLY " == *" 3 "* ]]; then
    BIG=$WORK/big SMALL=$WORK/small
    echo "generating $BIG_MB MB of random files ($FILE_MB MB each) and $SMALL_MB MB more" >&2
    nbig=$(( BIG_MB / FILE_MB ))
    for ((i = 0; i < nbig; i++)); do
        d=$BIG/d$(printf %02d $(( i % 16 )))
        mkdir -p "$d"
        head -c $(( FILE_MB << 20 )) /dev/urandom > "$d/f$(printf %04d "$i")"
    done
    # half in a new directory, half added to the big tree's directories
    for ((i = 0; i < 80; i++)); do
        if (( i % 2 )); then d=$SMALL/d0$(( i % 8 )); else d=$SMALL/new; fi
        mkdir -p "$d"
        head -c $(( SMALL_MB * 1048576 / 80 )) /dev/urandom > "$d/added-$(printf %03d "$i")"
    done
    pack "$BIG" "$WORK/big.cpio.gz"
    pack "$SMALL" "$WORK/small.cpio.gz"
    rm -rf "$BIG" "$SMALL"
    EMPTY=$WORK/empty.img FULL=$WORK/full.img IMG=$WORK/vol.img VMC_DIR=$WORK/vmc
    mke2fs -q -t ext4 -L bench "$EMPTY" 4G
    printf '[populate image %s /mnt %s][end]\n' "$IMG" "$WORK/big.cpio.gz" > "$WORK/big.vmc"
    printf '[populate image %s /mnt %s][end]\n' "$IMG" "$WORK/small.cpio.gz" > "$WORK/small.vmc"
    echo "populating the big archive once to make the starting volume" >&2
    cp --sparse=always "$EMPTY" "$IMG"
    rm -rf "$VMC_DIR"
    "$BIN" -q --container "$WORK/big.vmc" --dir "$VMC_DIR"
    mv "$IMG" "$FULL"
    results+=("volume holding $BIG_MB MB: e2fsck -fn: $(fsck "$FULL")")
    measure small "rm -rf $IMG $VMC_DIR && cp --sparse=always $FULL $IMG && sync" \
        "$BIN -q --container $WORK/small.vmc --dir $VMC_DIR"
    results+=("after adding $SMALL_MB MB: e2fsck -fn: $(fsck "$IMG")")
    measure big "rm -rf $IMG $VMC_DIR && cp --sparse=always $EMPTY $IMG && sync" \
        "$BIN -q --container $WORK/big.vmc --dir $VMC_DIR"
    report small big
    results+=("in place: $SMALL_MB MB into the full volume / $BIG_MB MB into the empty one $(ratio "$(median small)" "$(median big)" 0.05)")
fi

printf '%s\n' "${results[@]}"
