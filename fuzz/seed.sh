#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/TARGET from the examples and
# from the real tools (GNU cpio, diff, mke2fs, signify, minisign), so no
# binary corpus needs to be kept in the repository.
#
#   bash fuzz/seed.sh            # uses target/{release,debug}/vm-container, or builds it
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
corpus="$here/corpus"
vmc=""
for b in "$root/target/release/vm-container" "$root/target/debug/vm-container"; do
    if [ -x "$b" ]; then vmc=$b; break; fi
done
if [ -z "$vmc" ]; then
    (cd "$root" && cargo build --quiet)
    vmc="$root/target/debug/vm-container"
fi
have() { command -v "$1" >/dev/null 2>&1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
for t in container xen cpio archive oci_flatten cpio_gz cpio_roundtrip diff sign ext ext_populate ext_safety extract; do mkdir -p "$corpus/$t"; done

# --- a small tree with every entry type a cpio archive or image carries
tree="$work/tree"
cp -a "$root/examples/trees/base" "$tree"
mkdir -p "$tree/var/empty" "$tree/usr/share/doc/a/b/c"
printf 'hello\n' >"$tree/usr/share/doc/a/b/c/README"
ln -s ../etc/hosts "$tree/var/hosts.link"
ln "$tree/etc/passwd" "$tree/etc/passwd.hard"
mkfifo "$tree/var/fifo" 2>/dev/null || true
head -c 5000 /dev/zero >"$tree/var/zeros"
chmod 4755 "$tree/usr/share/doc/a/b/c/README"

# --- container and xen
cp "$root"/examples/containers/*.vmc "$corpus/container/"
cp "$root"/examples/containers/*.cfg "$corpus/xen/"
cp "$root"/examples/containers/*.vmc "$corpus/xen/"
# the fenced examples of the grammar, one file each
awk -v dir="$corpus/container" '
    /^```/ { if (inb) { close(f); inb = 0 } else { n++; f = sprintf("%s/grammar-%03d", dir, n); inb = 1 } next }
    inb { print > f }' "$root/grammar/GRAMMAR.md"
for f in /etc/xen/*.cfg /etc/xen/xl.conf /usr/share/doc/xen*/examples/*; do
    [ -f "$f" ] && cp "$f" "$corpus/xen/" || true
done
printf 'name = "a"\nmemory = 128\nvif = [ "mac=00:16:3e:00:00:01,bridge=xenbr0" ]\ndisk = [ "file:/x,xvda1,w", ]\nextra = "a" "b"\nx += [ 1, 2 ]\n' >"$corpus/xen/lists.cfg"

# --- cpio: ours, pigz multi-member, GNU cpio newc and crc
"$vmc" pack "$tree" "file://$work/ours.cpio.gz" >/dev/null
cp "$work/ours.cpio.gz" "$corpus/cpio/ours.cpio.gz"
gzip -dc "$work/ours.cpio.gz" >"$corpus/cpio/ours.cpio"
(cd "$tree" && find . | sort | cpio --quiet -o -H newc) >"$corpus/cpio/gnu-newc.cpio"
(cd "$tree" && find . | sort | cpio --quiet -o -H crc) >"$corpus/cpio/gnu-crc.cpio"
(cd "$tree" && find . -depth | cpio --quiet -o -H newc --reproducible 2>/dev/null || find . -depth | cpio --quiet -o -H newc) >"$corpus/cpio/gnu-depth.cpio"
if have pigz; then pigz -c -b 32 "$corpus/cpio/gnu-newc.cpio" >"$corpus/cpio/pigz.cpio.gz"; fi
cat "$work/ours.cpio.gz" "$work/ours.cpio.gz" >"$corpus/cpio/two-members.cpio.gz"
(cd "$tree/etc" && printf 'passwd\ngroup\n' | cpio --quiet -o -H newc) >"$corpus/cpio/small.cpio"
for f in "$corpus"/cpio/*.cpio; do cp "$f" "$corpus/cpio_gz/"; done
# archive: the cpio seeds, and the tree as GNU tar writes it in its GNU
# and POSIX formats (a sparse file among them), raw and compressed
cp "$corpus"/cpio/* "$corpus/archive/"
truncate -s 1M "$tree/var/sparse" && printf 'x' >>"$tree/var/sparse"
for f in gnu posix; do
    tar --format=$f --sparse -C "$tree" -cf "$corpus/archive/$f.tar" .
done
gzip -nc "$corpus/archive/gnu.tar" >"$corpus/archive/gnu.tar.gz"
if have xz; then xz -c "$corpus/archive/posix.tar" >"$corpus/archive/posix.tar.xz"; fi
if have zstd; then zstd -qc "$corpus/archive/gnu.tar" >"$corpus/archive/gnu.tar.zst"; fi
if have bzip2; then bzip2 -c "$corpus/archive/posix.tar" >"$corpus/archive/posix.tar.bz2"; fi
rm "$tree/var/sparse"

# oci_flatten: a count byte, the first layer's length, then the layers:
# a base, and one that deletes with a whiteout and hides a directory with
# an opaque marker
mkdir -p "$work/l2/etc" "$work/l2/var"
: >"$work/l2/etc/.wh.hosts"
: >"$work/l2/var/.wh..wh..opq"
printf 'new\n' >"$work/l2/var/new"
tar --format=gnu -C "$work/l2" -cf "$work/l2.tar" .
for f in gnu posix; do
    n=$(stat -c %s "$corpus/archive/$f.tar")
    len=$(printf '\\%03o\\%03o\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)))
    { printf '\001'; printf "$len"; cat "$corpus/archive/$f.tar" "$work/l2.tar"; } >"$corpus/oci_flatten/$f-two-layers"
done

# extract: the same archives, and names that aim at the target's
# `escape -> ../outside` symlink, a parent and a hard link out
cp "$corpus"/cpio/* "$corpus/extract/"
cp "$corpus"/cpio/* "$corpus/cpio_roundtrip/"
escape="$work/escape"
mkdir -p "$escape/escape" "$escape/d"
printf 'x\n' >"$escape/escape/x"
printf 'y\n' >"$escape/d/y"
ln "$escape/d/y" "$escape/escape/y"
(cd "$escape" && find . | cpio --quiet -o -H newc) >"$corpus/extract/escape.cpio"

# --- diff: the example patch, ours, GNU diff -ruN, git
cp "$root"/examples/patches/*.patch "$corpus/diff/"
new="$work/new"
cp -a "$tree" "$new"
printf 'fuzz\n' >"$new/etc/HOSTNAME"
printf 'root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/bin/false\nfuzz:x:1000:1000::/home/fuzz:/bin/sh\n' >"$new/etc/passwd"
printf 'one\n2\nthree\nfour\nfive\nsix\nseven' >"$new/etc/motd"
mkdir -p "$tree/etc" && printf 'one\ntwo\nthree\nfour\nfive\nsix\nseven\n' >"$tree/etc/motd"
rm -f "$new/etc/fstab"
printf 'new file\n' >"$new/etc/created"
"$vmc" diff "$tree" "$new" -o "$corpus/diff/ours.patch" >/dev/null 2>&1 || true
(cd "$work" && diff -ruN tree new >"$corpus/diff/gnu-ruN.patch" 2>/dev/null) || true
(cd "$work" && diff -ru tree new >"$corpus/diff/gnu-ru.patch" 2>/dev/null) || true
(cd "$work" && git diff --no-index --no-color tree new >"$corpus/diff/git.patch" 2>/dev/null) || true
printf -- '--- a/etc/HOSTNAME\n+++ b/etc/HOSTNAME\n@@ -1 +1 @@\n-base\n+fuzz\n\\ No newline at end of file\n' >"$corpus/diff/nonl.patch"

# --- sign: keys and signatures by us, signify and minisign
cp "$here/keys/fuzz.pub" "$corpus/sign/fuzz.pub"
cp "$here/keys/fuzz.sec" "$corpus/sign/fuzz.sec"
printf 'fixed message\n' >"$work/msg"
"$vmc" sign -s "$here/keys/fuzz.sec" "$work/msg" >/dev/null
cp "$work/msg.sig" "$corpus/sign/ours-fixed.sig"
# a signature followed by NUL and the data it signs
{ cat "$work/msg.sig"; printf '\0'; cat "$work/msg"; } >"$corpus/sign/sig-nul-data"
if have signify-openbsd; then
    signify-openbsd -G -n -p "$work/s.pub" -s "$work/s.sec" -c "signify key" >/dev/null
    signify-openbsd -S -s "$work/s.sec" -m "$work/msg" -x "$work/s.sig"
    cp "$work/s.pub" "$work/s.sec" "$work/s.sig" "$corpus/sign/"
fi
if have minisign; then
    printf '\n\n' | minisign -G -W -p "$work/m.pub" -s "$work/m.key" >/dev/null 2>&1 ||
        minisign -G -W -p "$work/m.pub" -s "$work/m.key" >/dev/null 2>&1 </dev/null || true
    if [ -f "$work/m.key" ]; then
        minisign -S -s "$work/m.key" -m "$work/msg" -x "$work/m-hashed.sig" >/dev/null 2>&1 </dev/null || true
        minisign -S -l -s "$work/m.key" -m "$work/msg" -x "$work/m-legacy.sig" >/dev/null 2>&1 </dev/null || true
        for f in m.pub m.key m-hashed.sig m-legacy.sig; do [ -f "$work/$f" ] && cp "$work/$f" "$corpus/sign/"; done
    fi
fi

# --- ext: small images by mke2fs -d and by vm-container, ext2/ext3/ext4
if have mke2fs; then
    small="$work/small"
    mkdir -p "$small/d/e"
    cp "$tree/etc/passwd" "$tree/etc/hosts" "$small/"
    ln -s passwd "$small/link"
    ln -s "$(printf 'x%.0s' $(seq 80))" "$small/slowlink"
    ln "$small/passwd" "$small/d/hard"
    printf 'deep\n' >"$small/d/e/f"
    mk() { # name, size, mke2fs options...
        local n=$1 s=$2; shift 2
        rm -f "$work/$n"
        mke2fs -q -F -b 1024 -N 32 -E root_owner=0:0 -d "$small" "$@" "$work/$n" "$s" >/dev/null 2>&1 &&
            cp "$work/$n" "$corpus/ext/$n"
    }
    mk ext2.img 64K -t ext2 -O ^resize_inode,^dir_index
    mk ext4.img 128K -t ext4 -O ^has_journal,^resize_inode,^metadata_csum
    mk ext4-csum.img 128K -t ext4 -O ^has_journal,^resize_inode
    mk ext4-inline.img 128K -t ext4 -O ^has_journal,^resize_inode,inline_data -I 256
fi
# ours: ext2 at the 256 KiB minimum (ext3 needs 2 MiB: too big to mutate)
cat >"$work/img.vmc" <<VMC
[image $work/ours-ext2.img 256K fs ext2 blocksize 1024][end]
[populate image $work/ours-ext2.img / file://$work/ours.cpio.gz][end]
VMC
if "$vmc" --container "$work/img.vmc" --dir "$work/state" --offline >/dev/null 2>&1; then
    cp "$work/ours-ext2.img" "$corpus/ext/"
else
    echo "seed.sh: vm-container image seed skipped" >&2
fi

# ext_populate writes into ext2/ext3 images: the ext2 ones seed it
cp "$corpus"/ext/ext2.img "$corpus"/ext/ours-ext2.img "$corpus/ext_populate/" 2>/dev/null || true
# ext_safety patches volumes it builds itself: one seed per base, no patch
printf '\0' >"$corpus/ext_safety/ext2"
printf '\1' >"$corpus/ext_safety/ext3"

for t in container xen cpio cpio_gz cpio_roundtrip diff sign ext ext_populate ext_safety extract; do
    printf '%-15s %3d seeds\n' "$t" "$(find "$corpus/$t" -type f | wc -l)"
done
