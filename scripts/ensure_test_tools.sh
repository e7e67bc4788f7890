#!/usr/bin/env bash
# Make sure the real programs the tests drive are here and running (`make test` runs this):
# borg (the backup wrapper tests), the database clients and servers the templates dump
# from (pg_dump, MariaDB), sqlite3, curl and shellcheck (template checks).
#
# Installs Debian's packages only when a command is missing; starts MariaDB when it does not
# answer, and lets root in over 127.0.0.1 without a password, as the template tests expect
# (override with HOOKSHELF_TEST_MYSQL_HOST/PORT/USER/PASSWORD for another server).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need borg borgbackup
need pg_dump postgresql-client
need mariadb-dump mariadb-client
need mariadbd mariadb-server
need sqlite3 sqlite3
need curl curl
need shellcheck shellcheck
need setsid util-linux
if [ ${#packages[@]} -gt 0 ]; then
    apt_install "${packages[@]}"
fi

MYSQL_HOST=${HOOKSHELF_TEST_MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${HOOKSHELF_TEST_MYSQL_PORT:-3306}
MYSQL_USER=${HOOKSHELF_TEST_MYSQL_USER:-root}
mysql_reachable() {
    MYSQL_PWD=${HOOKSHELF_TEST_MYSQL_PASSWORD:-} mariadb --connect-timeout=5 \
        -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" -e 'select 1' >/dev/null 2>&1
}

if mysql_reachable; then
    say "mariadb: reachable at $MYSQL_HOST:$MYSQL_PORT"
    exit 0
fi
case "$MYSQL_HOST" in
    127.0.0.1 | localhost) ;;
    *) die "MariaDB at $MYSQL_HOST:$MYSQL_PORT (HOOKSHELF_TEST_MYSQL_HOST) is not reachable" ;;
esac

if ! mariadb --connect-timeout=3 -e 'select 1' >/dev/null 2>&1; then
    say "mariadb: starting the server"
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
        mariadb --connect-timeout=2 -e 'select 1' >/dev/null 2>&1 && break
        sleep 1
    done
fi
# Debian's root logs in through the unix socket only; the tests come over TCP.
mariadb -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
            GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
            CREATE DATABASE IF NOT EXISTS test;
            FLUSH PRIVILEGES;" \
    || die "MariaDB is installed but could not be started or configured"
mysql_reachable || die "MariaDB does not accept $MYSQL_USER over TCP at $MYSQL_HOST:$MYSQL_PORT"
say "mariadb: reachable at $MYSQL_HOST:$MYSQL_PORT"
