#!/usr/bin/env bash
# `make check-generated`: regenerate the stubs into a temporary copy and compare it with
# the committed shared/stubs. Fails (listing the drift) when someone changed a .proto
# without `make generate`, or edited generated code by hand. Never touches the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shared/stubs/__init__.py is hand-written (short import names), not generated.
cp shared/stubs/__init__.py "$tmp/__init__.py"
.venv/bin/python scripts/generate_stubs.py --out "$tmp" 2>"$tmp.log" \
    || { cat "$tmp.log" >&2; rm -f "$tmp.log"; die "stub generation failed"; }
rm -f "$tmp.log"
if ! diff -ru -x __pycache__ -x '*.pyc' shared/stubs "$tmp"; then
    die "shared/stubs differs from what protos/ generate: run 'make generate' and commit"
fi
say "generated code is up to date"
