#!/usr/bin/env bash
# What editing an archive costs on the way into an image: a container
#   [image IMG SIZE bench fs ext3][end]
#   [populate image IMG /mnt ARCHIVE][end]
# alone, and with 1 and with 4 `[replace PATH archive ARCHIVE ...]` before the
# populate (/etc/hostname, /etc/hosts, /etc/motd, /etc/issue). The archive is
# a real tree packed the way bench/image.sh packs it (GNU cpio -H newc |
# gzip -6); a debootstrap minbase chroot is the intended one.
# With BEFORE=BINARY (a vm-container built from another commit) every case is
# timed with both, their images are compared byte for byte (SOURCE_DATE_EPOCH
# fixed), and the ratios after/before are printed.
# Prints hyperfine medians, each case's ratio to the populate alone (what the
# edits add) and, with BEFORE, after/before per case.
#
#   bench/edits.sh [TREE]
# Environment: TREE (a directory to pack, default /usr/share), ARCHIVE (use
#   this cpio.gz instead), SIZE (1G), RUNS (5), WARMUP (1), BEFORE (a binary),
#   BENCH_WORK (where to make the work directory, default /tmp),
#   BENCH_KEEP=1 (keep it).
# Every timed run starts from nothing: its --prepare removes the image and
# the --dir, then runs `sync`.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh

TREE=${1:-${TREE:-/usr/share}}
SIZE=${SIZE:-1G}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
BEFORE=${BEFORE:-}

missing=()
for tool in hyperfine cpio gzip cmp python3 cargo; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}" >&2
    echo "install with: apt-get install -y hyperfine cpio gzip diffutils python3 (and a Rust toolchain for cargo)" >&2
    exit 1
fi
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || { echo "BEFORE=$BEFORE is not an executable" >&2; exit 2; }

cargo build --release -q >&2
AFTER=$PWD/target/release/vm-container

mkdir -p "${BENCH_WORK:-/tmp}"
WORK=$(mktemp -d "${BENCH_WORK:-/tmp}/vmc-edits-bench.XXXXXX")
WORK=$(cd "$WORK" && pwd)
cleanup() { [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

archive_or_pack
echo "archive: $ARCHIVE, $(stat -c %s "$ARCHIVE") bytes gzip; ext3 image of $SIZE" >&2

IMG=$WORK/img VMC_DIR=$WORK/vmc
paths=(/etc/hostname /etc/hosts /etc/motd /etc/issue)
container() { # N: the container with N replaces
    printf '[image %s %s bench fs ext3][end]\n' "$IMG" "$SIZE"
    local i
    for ((i = 0; i < $1; i++)); do
        printf '[replace %s archive %s\n\nedited %d\n][end]\n' "${paths[$i]}" "$ARCHIVE" "$i"
    done
    printf '[populate image %s /mnt %s][end]\n' "$IMG" "$ARCHIVE"
}
cases=(0 1 4)
for n in "${cases[@]}"; do container "$n" > "$WORK/e$n.vmc"; done

bins=(after)
[ -n "$BEFORE" ] && bins=(before after)
export SOURCE_DATE_EPOCH=1700000000
PREP="rm -rf $IMG $VMC_DIR && sync"
for b in "${bins[@]}"; do
    bin=$AFTER
    [ "$b" = before ] && bin=$BEFORE
    for n in "${cases[@]}"; do
        hyperfine --runs "$RUNS" --warmup "$WARMUP" --prepare "$PREP" \
            --export-json "$WORK/$b-$n.json" -n "$b, $n replaces" \
            "$bin -q --container $WORK/e$n.vmc --dir $VMC_DIR" >&2
        # the image the last timed run left, for the comparison
        cp --sparse=always "$IMG" "$WORK/$b-$n.img"
    done
done

same=()
if [ -n "$BEFORE" ]; then
    for n in "${cases[@]}"; do
        if cmp -s "$WORK/before-$n.img" "$WORK/after-$n.img"; then
            same+=("$n:same")
        else
            same+=("$n:DIFFERENT")
        fi
    done
fi
rm -f "$WORK"/*.img

python3 - "$WORK" "${#bins[@]}" "${same[@]}" <<'PY'
import json, sys
work, nbins, same = sys.argv[1], int(sys.argv[2]), dict(s.split(":") for s in sys.argv[3:])
bins = ["before", "after"] if nbins == 2 else ["after"]
cases = ["0", "1", "4"]
res = {(b, n): json.load(open(f"{work}/{b}-{n}.json"))["results"][0]
       for b in bins for n in cases}
med = {k: r["median"] for k, r in res.items()}
# user CPU time (mean): what a loaded machine stretches least
usr = {k: r["user"] for k, r in res.items()}
print(f"{'':8s} {'replaces':>8s} {'median':>9s} {'/ alone':>8s} {'user':>8s} {'/ alone':>8s}")
for b in bins:
    for n in cases:
        k = (b, n)
        print(f"{b:8s} {n:>8s} {med[k]:8.3f}s {med[k] / med[(b, '0')]:8.3f}"
              f" {usr[k]:7.3f}s {usr[k] / usr[(b, '0')]:8.3f}")
if nbins == 2:
    for n in cases:
        a, b = ("after", n), ("before", n)
        print(f"after/before, {n} replaces: median {med[a] / med[b]:6.3f}, user {usr[a] / usr[b]:6.3f}"
              f"   images byte for byte: {same.get(n, '?')}")
PY
