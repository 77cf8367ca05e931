#!/usr/bin/env bash
# Start a Docker engine if none answers, for machines that ship only the docker
# client (install the engine first: `apt-get install -y docker.io`).
#
# Usage: scripts/start_dockerd.sh [DATA_ROOT]
#   DATA_ROOT  dockerd --data-root (default: a fresh temp dir; env DOCKERD_DATA_ROOT)
# Env:
#   DOCKERD_WAIT_SECONDS  how long to wait for the engine (default 60)
#
# Prints the pid and how to stop the engine. Does nothing if `docker info` works.
set -euo pipefail

if docker info >/dev/null 2>&1; then
  echo "docker engine already running; nothing to do"
  exit 0
fi

command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install -y docker.io" >&2; exit 1; }

data_root="${1:-${DOCKERD_DATA_ROOT:-$(mktemp -d /tmp/dockerd-data.XXXXXX)}}"
mkdir -p "$data_root"
log="$data_root/dockerd.log"
wait_seconds="${DOCKERD_WAIT_SECONDS:-60}"

# setsid: the engine must outlive this script and the shell that ran it.
setsid dockerd --data-root "$data_root" >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$data_root/dockerd.pid"

for _ in $(seq "$wait_seconds"); do
  if docker info >/dev/null 2>&1; then
    echo "dockerd ready (pid $pid, data root $data_root, log $log)"
    echo "stop it with: kill $pid    # pid also in $data_root/dockerd.pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "dockerd exited early; last log lines:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  sleep 1
done

echo "dockerd not ready after ${wait_seconds}s; last log lines:" >&2
tail -n 20 "$log" >&2
kill "$pid" 2>/dev/null || true
exit 1
