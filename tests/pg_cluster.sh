#!/bin/sh
# A throwaway PostgreSQL cluster for tests, on 127.0.0.1 only.
#
#   tests/pg_cluster.sh start DIR [PORT]   initdb + start; prints the DSN
#   tests/pg_cluster.sh stop DIR           stop (fast) and remove DIR
#   tests/pg_cluster.sh pause DIR          stop, keeping the data
#   tests/pg_cluster.sh resume DIR         start it again on the same port
#
# DIR must not exist yet at start. The DSN names the cluster's "postgres"
# database and the superuser "imgsearch" (trust auth: nothing listens
# beyond loopback and the socket lives in DIR). Durability is off (fsync,
# synchronous_commit): a test cluster is thrown away, and this makes it
# fast. Run as root (CI), the server runs as the "postgres" user that
# Debian's postgresql-15 package creates, since PostgreSQL refuses root.
# Binaries: $IMGSEARCH_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|pause|resume DIR [PORT]" >&2; exit 2; }

bindir=${IMGSEARCH_PG_BINDIR:-}
if [ -z "$bindir" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$bindir/initdb" ] || { echo "pg_cluster: no initdb (install postgresql-15)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_server() { # port
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $1 -k $dir -c fsync=off -c synchronous_commit=off \
-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB" start >/dev/null
}

case "$cmd" in
start)
    port=${3:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    mkdir "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -A trust -U imgsearch -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir/port"
    start_server "$port" || { cat "$dir/server.log" >&2; exit 1; }
    echo "host=127.0.0.1 port=$port user=imgsearch dbname=postgres"
    ;;
pause)
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    start_server "$(cat "$dir/port")" || { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    [ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop|pause|resume DIR [PORT]" >&2
    exit 2
    ;;
esac
