#!/usr/bin/env bash
# The security suite (issue #12): runs every tests/security/test_*.py against
# the coapgw binary in COAPGW_BIN (default: build/coapgw); exits non-zero
# when any of them fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export COAPGW_BIN=${COAPGW_BIN:-$root/build/coapgw}
export PYTHONDONTWRITEBYTECODE=1
failed=0
n=0
for t in "$here"/test_*.py; do
    [ -e "$t" ] || continue
    n=$((n + 1))
    echo "--- $(basename "$t")"
    python3 "$t" || failed=$((failed + 1))
done
echo "security suite: $n files, $failed failed"
[ "$failed" -eq 0 ] && [ "$n" -gt 0 ]
