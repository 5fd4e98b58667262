#!/usr/bin/env bash
# The README's first command. On Debian, as root, from a checkout with
# nothing beside it: installs what the demo needs (scripts/setup.sh --demo),
# builds vm-container, and runs examples/containers/fido.vmc: packs a tree,
# personalises /etc/HOSTNAME (Figure 1 of the paper), builds a sparse ext3
# image, populates it, and writes the stripped Xen config.
#
# Everything the demo writes goes to VMC_DEMO_DIR (default: a new directory
# under /tmp); in the checkout only target/ (the build) changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
cargo build -q
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/vm-container
checker=$PWD/target/xlcfg-check

if [ -n "${VMC_DEMO_DIR:-}" ]; then
  mkdir -p "$VMC_DEMO_DIR"
  work=$(cd "$VMC_DEMO_DIR" && pwd)
else
  work=$(mktemp -d /tmp/vm-container-demo.XXXXXX)
fi
# the container's outputs, by absolute path (its `dir` variable), so the
# stripped config works wherever `xl create` runs
images=$work/images
mkdir -p "$images"
img=$images/fido-etc

set -x
"$bin" check examples/containers/fido.vmc --set dir="$images"
"$bin" --container examples/containers/fido.vmc --set dir="$images" \
       --stripped "$work/fido.cfg" --log "$work/fido.log" --dir "$work/state"
cat "$work/fido.cfg"
"$checker" "$work/fido.cfg" name memory disk
"$bin" ls "$img" /etc
"$bin" cat "$img" /etc/HOSTNAME
e2fsck -fn "$img"
du -h --apparent-size "$img"; du -h "$img"
cat "$images/fido-etc.patch"
{ set +x; } 2>/dev/null

cat <<END

Built:    $bin
Outputs:  $work
  fido.cfg                 the stripped Xen config (xl create $work/fido.cfg)
  fido.log                 what the run fetched, built and committed
  images/etc.cpio.gz       examples/trees/base, packed
  images/fido-etc          the domain's sparse 64 MiB ext3 image, populated
  images/fido-etc.cpio.gz  the fork: the tree with fido's /etc/HOSTNAME
  images/fido-etc.patch    the difference, as a patch
  state/                   the download cache and the run records
Run it again: nothing changed, nothing is rebuilt (VMC_DEMO_DIR=$work bash scripts/demo.sh).
END
