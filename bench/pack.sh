#!/usr/bin/env bash
# Packing and expanding a real tree (a copy of /usr/share, or DIR given as
# $1, e.g. the Debian minbase tree bench/boot-minbase.sh leaves in
# target/boot-minbase/rootfs), in one run:
#   pack    `vm-container pack` on all cores and on one (taskset -c 0)
#           against `find | cpio -o -H newc | gzip -6` and
#           `... | pigz -6 -p N` (N: the cores we may use), with output
#           sizes; the one-core and all-core archives must be identical
#   fork    a container that replaces one file of our archive and
#           publishes the result (`[replace /etc/hostname archive A
#           fork F ...]`): one pass that reads and rewrites the archive
#   unpack  `[populate dir ...]` against `gzip -dc | cpio -idm`
# Prints hyperfine medians, ratios (goal: ours <= 0.8 x pigz at equal or
# smaller size), output sizes, and peak RSS (GNU time).
#
#   bench/pack.sh [DIR]
# Environment: RUNS (default 5), BENCH_WORK (work directory), BENCH_KEEP=1,
#   BIN (a built vm-container; default: a release build).
# Needs: hyperfine, GNU time (/usr/bin/time), cpio, gzip, pigz, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC_TREE=${1:-/usr/share}
WORK=${BENCH_WORK:-$(mktemp -d /tmp/cpio-bench.XXXXXX)}
mkdir -p "$WORK"
RUNS=${RUNS:-5}
for tool in hyperfine cpio gzip pigz taskset python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (bash scripts/setup.sh)" >&2; exit 1; }
done
if [ -z "${BIN:-}" ]; then
    cargo build --release -q >&2
    BIN=$PWD/target/release/vm-container
fi
CORES=$(nproc)
printf '[populate dir %s /mnt %s][end]\n' "$WORK/x" "$WORK/gnu.cpio.gz" > "$WORK/unpack.vmc"
printf '[replace /etc/hostname\narchive %s\nfork %s\n\nFCDOBBS\n\n][end]\n' \
    "$WORK/ours.cpio.gz" "$WORK/fork.cpio.gz" > "$WORK/fork.vmc"

echo "copying $SRC_TREE to $WORK/tree" >&2
rm -rf "$WORK/tree" && cp -a "$SRC_TREE" "$WORK/tree"
echo "tree: $(du -sh "$WORK/tree" | cut -f1), $(find "$WORK/tree" | wc -l) entries, $CORES cores" >&2

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/pack.json" \
    -n ours "$BIN pack $WORK/tree $WORK/ours.cpio.gz" \
    -n ours-1core "taskset -c 0 $BIN pack $WORK/tree $WORK/ours1.cpio.gz" \
    -n gzip "cd $WORK/tree && find . | cpio -o -H newc --quiet | gzip -6 > $WORK/gnu.cpio.gz" \
    -n pigz "cd $WORK/tree && find . | cpio -o -H newc --quiet | pigz -6 -p $CORES > $WORK/pigz.cpio.gz"

if cmp -s "$WORK/ours.cpio.gz" "$WORK/ours1.cpio.gz"; then SAME=identical; else SAME="DIFFERENT"; fi
gzip -t "$WORK/ours.cpio.gz"

hyperfine --runs "$RUNS" --warmup 1 --export-json "$WORK/fork.json" \
    --prepare "rm -rf $WORK/vmc-fork $WORK/fork.cpio.gz" \
    -n fork "$BIN -q --container $WORK/fork.vmc --dir $WORK/vmc-fork"
gzip -t "$WORK/fork.cpio.gz"

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

python3 - "$WORK" "$RSS_PACK" "$RSS_UNPACK" "$SAME" <<'PY'
import json, sys, os
work, rss_pack, rss_unpack, same = sys.argv[1:5]
def ok(c):
    return "ok" if c else "MISSED"
packs = json.load(open(f"{work}/pack.json"))["results"]
r = {x["command"]: x["median"] for x in packs}
# mean CPU time (user + system): the fairer figure on a shared machine
cpu = {x["command"]: x["user"] + x["system"] for x in packs}
size = {n: os.path.getsize(f"{work}/{f}.cpio.gz") for n, f in
        (("ours", "ours"), ("ours-1core", "ours1"), ("gzip", "gnu"), ("pigz", "pigz"),
         ("fork", "fork"))}
for n in ("ours", "ours-1core", "gzip", "pigz"):
    print(f"pack {n:11s} {r[n]:7.3f} s (median)  {cpu[n]:7.3f} s CPU  {size[n]:>11d} B")
o, p = r["ours"], r["pigz"]
print(f"pack ours/pigz          {o / p:5.2f}   goal <= 0.8  {ok(o / p <= 0.8)}"
      f"   CPU {cpu['ours'] / cpu['pigz']:5.2f}"
      f"   size ours/pigz {size['ours'] / size['pigz']:6.4f} {ok(size['ours'] <= size['pigz'])}")
print(f"pack ours/gzip          {o / r['gzip']:5.2f}   size ours/gzip {size['ours'] / size['gzip']:6.4f}")
print(f"pack ours-1core/gzip    {r['ours-1core'] / r['gzip']:5.2f}")
print(f"pack 1-core vs all-core output: {same}")
f = json.load(open(f"{work}/fork.json"))["results"][0]["median"]
print(f"fork (read + rewrite)   {f:7.3f} s (median)  {size['fork']:>11d} B  fork/pack {f / o:5.2f}")
u = {x["command"]: x["median"] for x in json.load(open(f"{work}/unpack.json"))["results"]}
print(f"unpack ours {u['ours']:7.3f} s  gzip -dc | cpio -idm {u['gnu']:7.3f} s  ratio {u['ours'] / u['gnu']:5.2f}")
print(f"peak RSS ours: pack {rss_pack} KiB, unpack {rss_unpack} KiB")
PY
[ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"
