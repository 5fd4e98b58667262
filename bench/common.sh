# Shell functions the benchmarks source (not a benchmark itself).

# Sets ARCHIVE to an absolute path: the cpio.gz ARCHIVE already names, else
# the directory TREE packed into WORK/tree.cpio.gz the way image maintainers
# pack one (GNU cpio -H newc | gzip -6).
archive_or_pack() {
    if [ -n "${ARCHIVE:-}" ]; then
        ARCHIVE=$(cd "$(dirname "$ARCHIVE")" && pwd)/$(basename "$ARCHIVE")
    else
        [ -d "$TREE" ] || { echo "no such directory: $TREE" >&2; exit 2; }
        ARCHIVE=$WORK/tree.cpio.gz
        echo "packing $TREE with GNU cpio -H newc | gzip -6" >&2
        (cd "$TREE" && find . | cpio -o -H newc --quiet | gzip -6 > "$ARCHIVE")
    fi
}
