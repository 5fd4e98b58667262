#!/bin/sh
# Compares packing and expanding a real tree (a copy of /usr/share, or DIR
# given as $1): `vm-container pack` against `find | cpio -o -H newc | gzip -6`,
# and `[populate dir ...]` against `gzip -dc | cpio -idm`.
# Needs: hyperfine, GNU time (/usr/bin/time), cpio, gzip.
set -eu
cd "$(dirname "$0")/.."
SRC_TREE=${1:-/usr/share}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/cpio-bench.XXXXXX)}
mkdir -p "$WORK"
RUNS=${RUNS:-5}
for tool in hyperfine cpio gzip /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y hyperfine cpio gzip time)" >&2; exit 1; }
done
cargo build --release -q >&2
BIN=$PWD/target/release/vm-container
printf '[populate dir %s /mnt %s][end]\n' "$WORK/x" "$WORK/gnu.cpio.gz" > "$WORK/unpack.vmc"

echo "copying $SRC_TREE to $WORK/tree" >&2
rm -rf "$WORK/tree" && cp -a "$SRC_TREE" "$WORK/tree"
echo "tree: $(du -sh "$WORK/tree" | cut -f1), $(find "$WORK/tree" | wc -l) entries" >&2

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/pack.json" \
    -n ours "$BIN pack $WORK/tree $WORK/ours.cpio.gz" \
    -n gnu "cd $WORK/tree && find . | cpio -o -H newc --quiet | gzip -6 > $WORK/gnu.cpio.gz"

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/unpack.json" \
    --prepare "rm -rf $WORK/x && mkdir $WORK/x" \
    -n ours "$BIN -q --container $WORK/unpack.vmc --dir $WORK/vmc" \
    -n gnu "cd $WORK/x && gzip -dc $WORK/gnu.cpio.gz | cpio -idm --quiet --no-absolute-filenames"

peak() { # peak RSS in KiB of a shell command
    /usr/bin/time -v sh -c "$1" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'
}
rm -rf "$WORK/x" && mkdir "$WORK/x"
RSS_PACK=$(peak "$BIN pack $WORK/tree $WORK/ours.cpio.gz")
RSS_UNPACK=$(peak "$BIN -q --container $WORK/unpack.vmc --dir $WORK/vmc")

python3 - "$WORK" "$RSS_PACK" "$RSS_UNPACK" <<'PY'
import json, sys, os
work, rss_pack, rss_unpack = sys.argv[1:4]
for what in ("pack", "unpack"):
    r = {x["command"]: x for x in json.load(open(f"{work}/{what}.json"))["results"]}
    o, g = r["ours"]["median"], r["gnu"]["median"]
    print(f"{what:7s} median ours {o:7.3f} s   gnu {g:7.3f} s   ours/gnu {o/g:5.2f}")
print(f"size    ours {os.path.getsize(work + '/ours.cpio.gz')} B   gnu {os.path.getsize(work + '/gnu.cpio.gz')} B")
print(f"peak RSS ours: pack {rss_pack} KiB, unpack {rss_unpack} KiB")
PY
[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
