#!/usr/bin/env bash
# check-docs.sh [ROOT] - keeps the documents true to the repository (issue #17).
#
# Fails, printing one line per problem, when:
#   1. a clause (S4.7 ...) cited in any tracked file is not a heading of PROTOCOL.md;
#   2. a tracked file points to documents outside the repository (the old
#      shared spec, style guide or layout sketch, by file name or path);
#   3. a .c or .h file does not open with the SPDX line followed by a comment
#      saying what the file is;
#   4. a `path/file.c:function` named in ARCHITECTURE.md or PROTOCOL.md names a
#      file or a function definition that no longer exists.
# ROOT defaults to the repository holding this script; it must be a git
# checkout (tracked files are what is checked).
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "check-docs: $root is not a git checkout" >&2
    exit 2
fi

problems=0
fail() { echo "check-docs: $*"; problems=$((problems + 1)); }

mapfile -d '' files < <(git ls-files -z)

# 1. Every cited clause is defined in PROTOCOL.md (as a heading "### S4.7 ...").
if [ ! -f PROTOCOL.md ]; then
    fail "PROTOCOL.md is missing: the clauses the code cites are defined nowhere"
    defined=""
else
    defined=$(grep -oE '^#{2,4} S[0-9]+\.[0-9]+' PROTOCOL.md | awk '{print $2}' | sort -u)
fi
cited=$(printf '%s\0' "${files[@]}" | xargs -0 grep -IohE '\bS[0-9]+\.[0-9]+\b' 2>/dev/null | sort -u)
for c in $cited; do
    if ! grep -qxF "$c" <<<"$defined"; then
        where=$(printf '%s\0' "${files[@]}" | xargs -0 grep -InwF "$c" 2>/dev/null | head -1 | cut -c1-120)
        fail "clause $c is cited but not defined in PROTOCOL.md (first: $where)"
    fi
done

# 2. Nothing points outside the repository. (The patterns are spelled so
# that this file does not match itself.)
outside='\.\./shared|/work/shared|SPEC[.]md|STYLE[.]md|LAYOUT[.]md'
while IFS= read -r hit; do
    [ -n "$hit" ] && fail "points outside the repository (use PROTOCOL.md): ${hit:0:140}"
done < <(git grep -nIE "$outside" -- . ':!tests/check-docs.sh' 2>/dev/null)

# 3. SPDX line, then a comment saying what the file is.
for f in "${files[@]}"; do
    case $f in *.c|*.h) ;; *) continue ;; esac
    [ -f "$f" ] || continue
    l1=$(sed -n 1p "$f")
    l2=$(sed -n 2p "$f")
    if [[ $l1 != "/* SPDX-License-Identifier: "* ]]; then
        fail "$f:1: no SPDX line (first line must be /* SPDX-License-Identifier: MIT */)"
    elif [[ $l2 != "/*"* ]]; then
        fail "$f:2: no top comment saying what the file is (a /* ... */ after the SPDX line)"
    fi
done

# 4. file:function references in the two documents still resolve.
for doc in ARCHITECTURE.md PROTOCOL.md; do
    [ -f "$doc" ] || { [ "$doc" = ARCHITECTURE.md ] && fail "ARCHITECTURE.md is missing"; continue; }
    while IFS=: read -r lineno ref; do
        path=${ref%%:*}
        fn=${ref##*:}
        if [ ! -f "$path" ]; then
            fail "$doc:$lineno: $path (in $path:$fn) does not exist"
            continue
        fi
        # A definition starts at column 0 and does not end in ';' (a prototype).
        if ! grep -E "^[A-Za-z_].*[^A-Za-z0-9_]$fn\(|^$fn\(" "$path" | grep -qvE ';[[:space:]]*$'; then
            fail "$doc:$lineno: no function $fn defined in $path"
        fi
    done < <(grep -noE '`[a-z][A-Za-z0-9_/.-]*\.[ch]:[A-Za-z_][A-Za-z0-9_]*`' "$doc" | tr -d '`')
done

if [ "$problems" -gt 0 ]; then
    echo "check-docs: $problems problem(s)"
    exit 1
fi
echo "check-docs: ok ($(wc -w <<<"$cited") clauses cited, all defined; references, SPDX lines and function names checked)"
