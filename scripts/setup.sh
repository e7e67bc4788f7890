#!/usr/bin/env bash
# `make setup`: everything the project needs to build, lint, test and run, installed
# into the repository (.venv, node_modules). Idempotent: each part is skipped while the
# files it was installed from (pyproject.toml; package.json and package-lock.json) and the
# checkout's path are unchanged, recorded in a stamp file next to what it installed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PYTHON=${PYTHON:-python3}

# --- Python ----------------------------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_install python3 python3-venv
fi
"$PYTHON" - <<'EOF' || die "Python 3.11 or newer is needed ($PYTHON is older)"
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
EOF

PY_STAMP=.venv/.hookshelf-setup
py_print=$(fingerprint "$ROOT" pyproject.toml)
if [ -x .venv/bin/python ] && [ "$(cat "$PY_STAMP" 2>/dev/null)" = "$py_print" ] \
    && .venv/bin/python -c 'import shared, library_service, grpc_tools' 2>/dev/null; then
    say "python: .venv is up to date"
else
    if [ ! -x .venv/bin/python ]; then
        # Debian ships venv's ensurepip separately (python3-venv).
        if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3-venv
        fi
        say "python: creating .venv"
        "$PYTHON" -m venv .venv
    fi
    say "python: pip install -e '.[dev]'"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
    printf '%s\n' "$py_print" >"$PY_STAMP"
fi

# --- buf (from npm) ----------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
fi
NPM_STAMP=node_modules/.hookshelf-setup
npm_files=(package.json)
[ -f package-lock.json ] && npm_files+=(package-lock.json)
npm_print=$(fingerprint "$ROOT" "${npm_files[@]}")
if [ -x node_modules/.bin/buf ] && [ "$(cat "$NPM_STAMP" 2>/dev/null)" = "$npm_print" ]; then
    say "npm: node_modules is up to date"
else
    # Not `npm ci`: it insists on lock entries for every platform's optional buf binary,
    # and the registry reachable here serves the Linux ones only. `npm install --no-save`
    # still installs the versions and integrity hashes pinned in package-lock.json.
    say "npm: npm install (buf)"
    npm install --no-save --no-audit --no-fund --loglevel=error
    [ -x node_modules/.bin/buf ] || die "npm did not install buf (node_modules/.bin/buf)"
    # npm ci recreates node_modules: compute the print from the files again afterwards.
    fingerprint "$ROOT" "${npm_files[@]}" >"$NPM_STAMP"
fi

say "setup done: $(.venv/bin/python --version), buf $(node_modules/.bin/buf --version)"
