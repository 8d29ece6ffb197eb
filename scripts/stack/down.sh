#!/usr/bin/env bash
# `make stack-down`: stop exactly what scripts/stack/up.sh started, by the pids it wrote (each service's whole
# process group: the daemon's code servers and run workers, the workers' pool processes). Data stays in
# deploy/.stack (the PostgreSQL cluster, the env file); `rm -rf deploy/.stack` after this forgets everything.
set -uo pipefail
cd "$(dirname "$0")/../.."
STACK=$PWD/deploy/.stack
[[ -d $STACK/pids ]] || { echo "stack: nothing to stop (no deploy/.stack/pids)"; exit 0; }

stop_one() {
  local name=$1 pid
  [[ -s $STACK/pids/$name.pid ]] || return 0
  pid=$(cat "$STACK/pids/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stack: $name (pid $pid) did not stop in 20s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    fi
    echo "stack: stopped $name (pid $pid)"
  fi
  rm -f "$STACK/pids/$name.pid"
}

stop_one webserver
for f in "$STACK"/pids/worker-*.pid; do [[ -e $f ]] && stop_one "$(basename "$f" .pid)"; done
stop_one daemon
stop_one moto
stop_one redis
if [[ -s $STACK/pg/postmaster.pid ]]; then
  AS_PG=(); [[ $(id -u) == 0 ]] && AS_PG=(runuser -u postgres --)
  "${AS_PG[@]}" /usr/lib/postgresql/15/bin/pg_ctl -D "$STACK/pg" -m fast -w stop >/dev/null && echo "stack: stopped postgres"
fi
rm -f "$STACK/pids/postgres.pid"
