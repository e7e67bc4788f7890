#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is reachable (`make test` runs this first).
#
# The tests connect to $HOOKSHELF_TEST_POSTGRES_DSN (default
# postgresql://postgres@127.0.0.1:5432/test). When that is a local address and nothing
# answers, start the local cluster with pg_ctlcluster; when PostgreSQL is not installed at
# all, install Debian's package first and let user postgres in over loopback without a
# password (a throwaway test cluster), then create the database. A remote DSN is only
# checked. Exits non-zero with a clear message when it cannot be had: the tests that need
# PostgreSQL fail rather than skip, so this is the place to say why.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DSN=${HOOKSHELF_TEST_POSTGRES_DSN:-postgresql://postgres@127.0.0.1:5432/test}

read -r PG_HOST PG_PORT PG_DB PG_USER < <(python3 - "$DSN" <<'EOF'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or 5432, (u.path or "/").lstrip("/") or "postgres",
      u.username or "postgres")
EOF
)

reachable() {
    command -v psql >/dev/null 2>&1 \
        && PGCONNECT_TIMEOUT=5 psql "$DSN" -XAtqc 'select 1' >/dev/null 2>&1
}

if reachable; then
    say "postgres: reachable at $PG_HOST:$PG_PORT/$PG_DB"
    exit 0
fi

case "$PG_HOST" in
    127.0.0.1 | localhost | ::1) ;;
    *) die "PostgreSQL at $PG_HOST:$PG_PORT (HOOKSHELF_TEST_POSTGRES_DSN) is not reachable" ;;
esac
[ "$(id -u)" -eq 0 ] || die "PostgreSQL at $PG_HOST:$PG_PORT is down; starting it needs root:
  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start"

installed_now=0
if ! command -v pg_ctlcluster >/dev/null 2>&1 \
    || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
    installed_now=1
fi

version=$(ls /etc/postgresql | sort -V | tail -n1)
if [ ! -d "/etc/postgresql/$version/main" ]; then
    say "postgres: creating cluster $version/main"
    pg_createcluster --port "$PG_PORT" "$version" main >/dev/null
fi

if [ "$installed_now" -eq 1 ]; then
    # A cluster installed just for the tests: user postgres may connect over loopback
    # without a password, as on the project's machines.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^# hookshelf-test-trust' "$hba"; then
        say "postgres: trusting loopback connections as user postgres ($hba)"
        {
            echo '# hookshelf-test-trust: added by scripts/ensure_postgres.sh'
            echo 'host all postgres 127.0.0.1/32 trust'
            echo 'host all postgres ::1/128 trust'
            cat "$hba"
        } >"$hba.new"
        chown --reference="$hba" "$hba.new"
        chmod --reference="$hba" "$hba.new"
        mv "$hba.new" "$hba"
    fi
fi

if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q online; then
    say "postgres: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
elif [ "$installed_now" -eq 1 ]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi

for _ in $(seq 1 60); do
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
    sleep 0.5
done
pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"

if ! reachable; then
    # Up but the database may be missing: create it through the local socket.
    if ! runuser -u postgres -- psql -XAtqc \
        "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
        say "postgres: creating database $PG_DB"
        runuser -u postgres -- createdb -O "$PG_USER" "$PG_DB"
    fi
fi

reachable || die "PostgreSQL is up but $DSN does not accept connections (check pg_hba.conf)"
say "postgres: reachable at $PG_HOST:$PG_PORT/$PG_DB"
