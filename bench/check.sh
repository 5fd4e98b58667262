#!/usr/bin/env bash
# Times `vm-container check` on a generated 10,000-line container file
# (Xen statements, lists over several lines, and every expression kind).
#   bench/check.sh [LINES]
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-10000}
cargo build --release -q
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$lines" > "$dir/big.vmc" <<'PY'
import sys
n = int(sys.argv[1])
out = ['name = "big"', 'memory = 512']
i = 0
while len(out) + 10 <= n:
    i += 1
    out.append(f'# domain part {i}')
    out.append(f'extra{i} = "console=hvc0 root=/dev/xvda{i} ro"')
    out.append(f'disk{i} = [ \'file:/var/images/${{name}}-{i},xvda{i},w\',')
    out.append(f'          \'phy:vg/root{i},xvdb{i},r\', ]')
    out.append(f'[image /var/images/${{name}}-{i} 64MB lbl{i % 1000}] [end]')
    out.append(f'[replace /etc/motd{i} archive http://images.example/etc.cpio.gz')
    out.append('')
    out.append(f'Welcome to ${{name}}, part {i}.')
    out.append('] [end]')
    out.append(f'[patch http://images.example/etc.cpio.gz http://images.example/p{i}.diff][end]')
out += ["# padding"] * (n - len(out))
print("\n".join(out))
PY
echo "$(wc -l < "$dir/big.vmc") lines, $(wc -c < "$dir/big.vmc") bytes"
if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 3 "target/release/vm-container check $dir/big.vmc"
else
  /usr/bin/time -v target/release/vm-container check "$dir/big.vmc" 2>&1 | grep -E 'Elapsed|Maximum resident'
fi
