#!/usr/bin/env bash
# A short run of every fuzz target, one after the other.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     # default 60 s each, all targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Runs on the stable
# toolchain without sanitizers (`-s none`); crashes land in
# fuzz/artifacts/TARGET/. Seeds come from fuzz/seed.sh (run when
# fuzz/corpus is missing); the corpus grows in place and is not committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(container xen cpio archive oci_flatten cpio_gz cpio_roundtrip diff sign ext ext_populate ext_safety extract)
[ -d "$here/corpus" ] || bash "$here/seed.sh"
cd "$root"
# Stable works with -s none; should a cargo-fuzz release refuse stable,
# run with RUSTC_BOOTSTRAP=1 in the environment.
cargo fuzz build -s none
status=0
for t in "${targets[@]}"; do
    mkdir -p "$here/corpus/$t" "$here/artifacts/$t"
    case $t in
        ext | ext_populate | ext_safety) extra=(-max_len=262144 -timeout=10 -rss_limit_mb=1024) ;;
        cpio | archive | oci_flatten | cpio_gz | cpio_roundtrip | extract) extra=(-max_len=65536 -timeout=10) ;;
        *) extra=(-max_len=16384 -timeout=10) ;;
    esac
    echo "== $t: $secs s" >&2
    log="$here/artifacts/$t/last-run.log"
    rc=0
    # extract and ext_populate work on temporary files: keep them in memory
    tmp=${TMPDIR:-/tmp}
    [ -w /dev/shm ] && tmp=/dev/shm
    TMPDIR=$tmp cargo fuzz run -s none "$t" "$here/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" \
        -artifact_prefix="$here/artifacts/$t/" >"$log" 2>&1 || rc=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|panicked|ERROR|SUMMARY|Test unit written' "$log" || true
    if [ $rc -ne 0 ]; then
        echo "!! $t: exit $rc, see $log and fuzz/artifacts/$t/"
        status=1
    fi
done
exit $status
