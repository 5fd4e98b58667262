#!/usr/bin/env bash
# Building an ext3 image from a tar archive of a system tree (a Debian
# minbase: TREE, default target/boot-minbase/rootfs as bench/boot-minbase.sh
# leaves it), every image the same SIZE (1G):
#   gz    ours: `[image IMG SIZE][end]` + `[populate image IMG /mnt TREE.tar.gz][end]`
#         (its time includes the image's final fsync)
#   zst   ours, the same from TREE.tar.zst
#   a     `tar -xzf TREE.tar.gz` into a directory, then `mke2fs -q -t ext3 -d DIR IMG SIZE`
#   c     `gzip -dc TREE.tar.gz > /dev/null` alone (decompression only)
#   z     `zstd -dc TREE.tar.zst > /dev/null` alone
# The archives are GNU tar's (`tar --format=posix --numeric-owner`, then
# `gzip -6`, `zstd -3`). Prints hyperfine medians and the ratios gz/a
# (goal <= 0.4), gz/c (goal <= 1.0), zst/z (goal <= 2.0), with user/sys/wall
# and peak RSS of each (GNU time).
#
#   bench/tar.sh [TREE [SIZE]]
# Environment: TREE, SIZE (default 1G), RUNS (default 3), WARMUP (default 1),
#   BENCH_WORK (where to make the work directory, default /tmp),
#   BENCH_KEEP=1 (keep it), VMC_BIN (time this binary instead of building
#   target/release/vm-container).
# Every timed run starts from nothing: its --prepare removes the image, the
# extraction directory and our --dir, then runs `sync`.
set -euo pipefail
cd "$(dirname "$0")/.."

TREE=${1:-${TREE:-$PWD/target/boot-minbase/rootfs}}
SIZE=${2:-${SIZE:-1G}}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-1}

missing=()
for tool in hyperfine tar gzip zstd mke2fs e2fsck python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x /usr/bin/time ] || missing+=(/usr/bin/time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y hyperfine tar gzip zstd e2fsprogs time python3 (and a Rust toolchain for cargo)" >&2
    exit 1
fi
[ -d "$TREE" ] || { echo "no such directory: $TREE (make one with bash bench/boot-minbase.sh, or give TREE)" >&2; exit 2; }

if [ -n "${VMC_BIN:-}" ]; then
    BIN=$VMC_BIN
else
    cargo build --release -q >&2
    BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/vm-container
fi

mkdir -p "${BENCH_WORK:-/tmp}"
WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/vmc-tar-bench.XXXXXX")
WORK=$(cd "$WORK" && pwd)
cleanup() { [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

TGZ=$WORK/tree.tar.gz TZST=$WORK/tree.tar.zst
echo "packing $TREE with GNU tar --format=posix | gzip -6, | zstd -3" >&2
tar --format=posix --numeric-owner -C "$TREE" -cf "$WORK/tree.tar" .
gzip -6 -n -c "$WORK/tree.tar" > "$TGZ"
zstd -q -3 -c "$WORK/tree.tar" > "$TZST"
entries=$(tar -tf "$WORK/tree.tar" | wc -l)
echo "archive: $(stat -c %s "$WORK/tree.tar") bytes tar, $(stat -c %s "$TGZ") gzip, $(stat -c %s "$TZST") zstd, $entries entries; ext3 image of $SIZE" >&2
rm "$WORK/tree.tar"

IMG_O=$WORK/ours.img IMG_A=$WORK/a.img DIR_A=$WORK/a-tree VMC_DIR=$WORK/vmc
for n in gz zst; do
    a=$TGZ; [ $n = zst ] && a=$TZST
    printf '[image %s %s bench][end]\n[populate image %s /mnt %s][end]\n' \
        "$IMG_O" "$SIZE" "$IMG_O" "$a" > "$WORK/$n.vmc"
done

PREP_O="rm -rf $IMG_O $VMC_DIR && sync"
CMD_A="tar -xzf $TGZ -C $DIR_A --numeric-owner && mke2fs -q -t ext3 -d $DIR_A $IMG_A $SIZE"
PREP_A="rm -rf $IMG_A $DIR_A && mkdir $DIR_A && sync"
CMD_C="gzip -dc $TGZ > /dev/null"
CMD_Z="zstd -qdc $TZST > /dev/null"

names=(gz zst a c z)
for n in "${names[@]}"; do
    case $n in
        gz | zst) cmd="$BIN -q --container $WORK/$n.vmc --dir $VMC_DIR" prep=$PREP_O ;;
        a) cmd=$CMD_A prep=$PREP_A ;;
        c) cmd=$CMD_C prep=sync ;;
        z) cmd=$CMD_Z prep=sync ;;
    esac
    hyperfine --runs "$RUNS" --warmup "$WARMUP" --prepare "$prep" \
        --export-json "$WORK/$n.json" -n "$n" "$cmd" >&2
    # one more run under GNU time for user/sys/wall and peak RSS
    bash -c "$prep"
    /usr/bin/time -v bash -c "$cmd" 2> "$WORK/$n.time" >/dev/null
    if [ $n = zst ]; then
        e2fsck -fn "$IMG_O" > "$WORK/fsck.out" 2>&1 || { cat "$WORK/fsck.out" >&2; echo "e2fsck: our image is not clean" >&2; exit 1; }
    fi
done

python3 - "$WORK" "${names[@]}" <<'PY'
import json, sys
work, names = sys.argv[1], sys.argv[2:]
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
def line(what, r, g):
    print(f"{what:28s} {r:6.3f}   goal <= {g}  {'ok' if r <= g else 'MISSED'}")
line("tar.gz: ours / (tar -x + mke2fs -d)", med["gz"] / med["a"], 0.4)
line("tar.gz: ours / gzip -dc", med["gz"] / med["c"], 1.0)
line("tar.zst: ours / zstd -dc", med["zst"] / med["z"], 2.0)
print("e2fsck -fn on our image from the tar.zst: clean")
PY
