#!/bin/bash
# TEST-ONLY stand-in (deploy/bases) for the official postgres image's entrypoint, on Debian's postgresql-15: as root it
# takes ownership of PGDATA and re-runs itself as postgres; an empty PGDATA is initialised with POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB (scram-sha-256 over TCP, trust on the socket), with a temporary socket-only
# server creating the database, as the official image does; then `postgres ARGS` runs with -D PGDATA.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
if [[ ${1:-} == postgres && $(id -u) == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ ${1:-} == postgres && ! -s $PGDATA/PG_VERSION ]]; then
    user=${POSTGRES_USER:-postgres}
    [[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "POSTGRES_PASSWORD must be set" >&2; exit 1; }
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
    db=${POSTGRES_DB:-$user}
    if [[ $db != postgres ]]; then
        psql -v ON_ERROR_STOP=1 -h /var/run/postgresql --username "$user" --dbname postgres \
            -c "CREATE DATABASE \"$db\"" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres stand-in: initialised $PGDATA (user $user, database $db)"
fi
if [[ ${1:-} == postgres ]]; then
    shift
    exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql "$@"
fi
exec "$@"
