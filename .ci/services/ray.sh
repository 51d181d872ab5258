#!/usr/bin/env bash
# A one-node Ray cluster on 127.0.0.1 for the tests (`ray start --head --block`), in its own
# session so that stopping it stops every process it started.
#   .ci/services/ray.sh start DIR   start it; prints RAY_ADDRESS=127.0.0.1:PORT (the GCS, for
#                                   ray.init) and RAY_DASHBOARD=http://127.0.0.1:PORT (Ray Jobs)
#   .ci/services/ray.sh stop DIR    stop it by the process group recorded by `start`
# RAGTUNE_PYTHON names the Python whose `ray` package to use (default: python3). Exit code 3
# when Ray is not installed there.
set -euo pipefail

action=${1:?usage: ray.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: ray.sh start|stop DIR}")
python=${RAGTUNE_PYTHON:-python3}
READY_TIMEOUT_S=180

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
  local file="$dir/ray.pid" pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true  # `ray start --block` shuts down what it started
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  # Anything left in the session `start` created (its id is the recorded pid).
  kill -TERM -- "-$pid" 2>/dev/null || true
  sleep 1
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$file"
}

start() {
  if ! "$python" -c 'import ray' 2>/dev/null; then
    echo "Ray is not installed for $python (pip install 'ray[default]')" >&2
    exit 3
  fi
  stop
  mkdir -p "$dir/tmp"
  local gcs_port dashboard_port
  gcs_port=$(free_port)
  dashboard_port=$(free_port)
  # A small object store: the jobs pass only their configs and return one number each.
  setsid "$python" -m ray.scripts.scripts start --head --block \
    --node-ip-address 127.0.0.1 --port "$gcs_port" \
    --dashboard-host 127.0.0.1 --dashboard-port "$dashboard_port" --include-dashboard true \
    --num-cpus 2 --num-gpus 0 --object-store-memory 200000000 \
    --temp-dir "$dir/tmp" --disable-usage-stats >"$dir/ray.log" 2>&1 &
  echo $! > "$dir/ray.pid"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until "$python" - "$dashboard_port" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/version", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
  do
    if ! kill -0 "$(cat "$dir/ray.pid")" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "Ray did not start within ${READY_TIMEOUT_S} s; log: $dir/ray.log" >&2
      tail -n 30 "$dir/ray.log" >&2 || true
      stop
      exit 1
    fi
    sleep 1
  done
  echo "RAY_ADDRESS=127.0.0.1:$gcs_port"
  echo "RAY_DASHBOARD=http://127.0.0.1:$dashboard_port"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: ray.sh start|stop DIR" >&2; exit 2 ;;
esac
