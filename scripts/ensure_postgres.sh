#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is reachable (`make test` runs this first).
#
# The tests connect to $HOOKSHELF_TEST_POSTGRES_DSN (default
# postgresql://postgres@127.0.0.1:5432/test). When that is a local address and nothing
# answers, start the local cluster with pg_ctlcluster; when PostgreSQL is not installed at
# all, install Debian's package first; when no cluster listens on the DSN's port, create
# one. A cluster made here lets user postgres in over loopback without a password (a
# throwaway test cluster). Then create the database if it is missing. A remote DSN is only
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

fresh=0 # 1 when this run installed PostgreSQL or created the cluster
if ! command -v pg_ctlcluster >/dev/null 2>&1 \
    || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
    fresh=1
fi

# The cluster that listens on the DSN's port; when none does, make one for the tests.
read -r version cluster status < <(pg_lsclusters -h 2>/dev/null \
    | awk -v p="$PG_PORT" '$3 == p { print $1, $2, $4; exit }') || true
if [ -z "${version:-}" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    cluster=main
    [ -d "/etc/postgresql/$version/main" ] && cluster=hookshelf-test
    say "postgres: creating cluster $version/$cluster on port $PG_PORT"
    pg_createcluster --port "$PG_PORT" "$version" "$cluster" >/dev/null
    status=down
    fresh=1
fi

if [ "$fresh" -eq 1 ]; then
    # A cluster made just for the tests: user postgres may connect over loopback
    # without a password, as on the project's machines.
    hba="/etc/postgresql/$version/$cluster/pg_hba.conf"
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

if [ "$status" != online ]; then
    say "postgres: starting cluster $version/$cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start
elif [ "$fresh" -eq 1 ]; then
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
fi

for _ in $(seq 1 60); do
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break
    sleep 0.5
done
pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL did not come up on $PG_HOST:$PG_PORT"

if ! reachable; then
    # Up but the database may be missing: create it through the local socket.
    if ! runuser -u postgres -- psql -p "$PG_PORT" -XAtqc \
        "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
        say "postgres: creating database $PG_DB"
        runuser -u postgres -- createdb -p "$PG_PORT" -O "$PG_USER" "$PG_DB"
    fi
fi

reachable || die "PostgreSQL is up but $DSN does not accept connections (check pg_hba.conf)"
say "postgres: reachable at $PG_HOST:$PG_PORT/$PG_DB"
