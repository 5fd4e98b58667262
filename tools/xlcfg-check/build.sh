#!/usr/bin/env bash
# Builds xlcfg-check (Xen's own config parser, libxlutil, behind a small
# command line; see README.md beside this file).
#   build.sh [OUTPUT]     default: ./xlcfg-check beside this script
# Needs a C compiler and Debian's libxen-dev (scripts/setup.sh installs both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/xlcfg-check}
if [ ! -f /usr/include/libxlutil.h ]; then
  echo "build.sh: /usr/include/libxlutil.h is missing: install libxen-dev" >&2
  exit 1
fi
mkdir -p "$(dirname "$out")"
# build beside the output and rename, so a concurrent reader never runs a
# half-written binary
cc -O2 -Wall -Wextra -Werror -o "$out.tmp.$$" "$here/xlcfg-check.c" -lxlutil -lxenlight
mv -f "$out.tmp.$$" "$out"
