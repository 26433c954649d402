#!/usr/bin/env bash
# A throwaway PostgreSQL server for the distributed-search test (tests/test_distributed.py):
# installs PostgreSQL from the system package manager if it is missing (Debian/Ubuntu apt, as
# root), creates a cluster in a temporary directory, starts it on 127.0.0.1 (and a socket in that
# directory) with trust authentication for local connections only, and creates a database.
#
#   eval "$(scripts/postgres_local.sh start)"   # prints: export AUTOTUNE_TEST_POSTGRES=... and
#                                               #         export AUTOTUNE_PG_DIR=...
#   scripts/postgres_local.sh stop              # stops it and removes $AUTOTUNE_PG_DIR
#
# Everything it says goes to stderr; stdout carries only the export lines. It exits non-zero
# (printing nothing on stdout) when PostgreSQL cannot be installed or started.
set -euo pipefail

say() { echo "postgres_local: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

# run a PostgreSQL program as the unprivileged owner of the cluster (the server refuses root)
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local bindir
    if ! bindir=$(find_bindir); then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing PostgreSQL with apt-get"
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        fi
        bindir=$(find_bindir) || { say "PostgreSQL is not installed and cannot be installed here"; exit 1; }
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home postgres
    fi
    local dir port
    dir=$(mktemp -d /tmp/autotune-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    # a free port: let the kernel pick one
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres autotune_test
    say "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
    echo "export AUTOTUNE_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$port/autotune_test"
    echo "export AUTOTUNE_PG_DIR=$dir"
}

stop() {
    local dir=${AUTOTUNE_PG_DIR:-}
    [ -n "$dir" ] && [ -d "$dir/data" ] || return 0
    local bindir
    bindir=$(find_bindir)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
