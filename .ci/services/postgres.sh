#!/usr/bin/env bash
# A throw-away PostgreSQL server on 127.0.0.1 for the tests, its data folder under DIR.
#   .ci/services/postgres.sh start DIR   initdb (once), start; prints POSTGRES_URI=postgresql://...
#   .ci/services/postgres.sh stop DIR    stop the server started by `start`, by its recorded pid
# The server runs as the unprivileged user `postgres` when started as root (PostgreSQL refuses
# root), listens on 127.0.0.1 only, on a free port, and trusts local connections (test data
# only). Exit code 3 when PostgreSQL is not installed.
set -euo pipefail

action=${1:?usage: postgres.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: postgres.sh start|stop DIR}")

pg_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ] && command -v pg_ctl >/dev/null; then found=$(dirname "$(command -v pg_ctl)"); fi
  echo "$found"
}

as_owner() {  # run a command as the data folder's owner (postgres when we are root)
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  local file="$dir/postmaster.pid.recorded" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true  # "fast" shutdown: roll back clients, exit cleanly
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

start() {
  local bin port
  bin=$(pg_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then
    echo "PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 3
  fi
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "PostgreSQL needs an unprivileged user 'postgres' to run as (apt-get install postgresql)" >&2
    exit 3
  fi
  stop
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
      --no-instructions >"$dir/initdb.log" 2>&1
  fi
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # max_connections: 8 parallel jobs plus the tracking server's pool with room to spare.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null
  head -n 1 "$dir/data/postmaster.pid" > "$dir/postmaster.pid.recorded"
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres mlflow
  echo "$port" > "$dir/port"
  echo "POSTGRES_URI=postgresql://postgres@127.0.0.1:$port/mlflow"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac
