#!/usr/bin/env bash
# Installs what vm-container needs, builds it, and runs the fido example:
# packs a tree, personalises /etc/HOSTNAME (Figure 1 of the paper), builds a
# sparse ext3 image, populates it, and writes the stripped Xen config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -q
bin=target/release/vm-container
work=${VMC_DEMO_DIR:-/tmp/vm-container-demo}
rm -rf "$work" examples/containers/build
mkdir -p "$work"
set -x
$bin check examples/containers/fido.vmc
$bin --container examples/containers/fido.vmc --stripped "$work/fido.cfg" \
     --log "$work/fido.log" --dir "$work/dir"
cat "$work/fido.cfg"
target/xlcfg-check "$work/fido.cfg" name memory disk
$bin ls examples/containers/build/fido-etc /etc
$bin cat examples/containers/build/fido-etc /etc/HOSTNAME
e2fsck -fn examples/containers/build/fido-etc
du -h --apparent-size examples/containers/build/fido-etc; du -h examples/containers/build/fido-etc
cat examples/containers/build/fido-etc.patch
