#!/usr/bin/env bash
# check-format.sh - the C sources follow .clang-format (issue #17 item 5).
#   tests/check-format.sh [ROOT]   every tracked .c and .h file
# Prints clang-format's complaints (file:line) and exits non-zero when a file
# would change. Needs clang-format 14 (clang-format-14, or clang-format of
# that major version: another version formats a few constructs differently).
set -uo pipefail
if [ "${1:-}" = "--all" ]; then
    shift   # accepted for old callers: every file is checked anyway
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 1
cf=""
for c in clang-format-14 clang-format; do
    if command -v "$c" >/dev/null && "$c" --version | grep -q 'version 14\.'; then
        cf=$c
        break
    fi
done
if [ -z "$cf" ]; then
    echo "check-format: clang-format 14 not found (apt-get install clang-format-14)"
    exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
if ! "$cf" --dry-run --Werror "${files[@]}"; then
    echo "check-format: the files above differ from .clang-format; run: $cf -i FILE"
    exit 1
fi
echo "check-format: ok (${#files[@]} files)"
