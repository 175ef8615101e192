#!/usr/bin/env bash
# A throwaway PostgreSQL server for the test suite's PostgreSQL leg (issue 17).
#
#   source .ci/postgres.sh && pg_throwaway_start DIR [PORT]   # exports COSNET_TEST_POSTGRES_URL
#   pg_throwaway_stop DIR
#
# Needs root (it runs the server as the unprivileged user `postgres`); installs Debian's
# `postgresql` package only when no server binaries are found. The server listens on 127.0.0.1
# only, trusts local connections, and keeps everything (data, socket, log) under DIR.

pg_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

pg_throwaway_start() {
    local dir=$1 port=${2:-55432} bin
    if ! bin=$(pg_bindir); then
        if [ "$(id -u)" -ne 0 ]; then
            echo "PostgreSQL is not installed and this is not root: skipping the PostgreSQL leg" >&2
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null || return 1
        bin=$(pg_bindir) || return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "the PostgreSQL leg needs root (to run the server as user postgres): skipped" >&2
        return 1
    fi
    rm -rf "$dir" && mkdir -p "$dir" && chown postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --no-locale >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
    runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres cosnet_test \
        || return 1
    export COSNET_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/cosnet_test"
    echo "PostgreSQL test server on 127.0.0.1:$port ($COSNET_TEST_POSTGRES_URL)"
}

pg_throwaway_stop() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 0
    if [ -f "$dir/data/postmaster.pid" ]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}
