#!/usr/bin/env bash
# `make stack`: the production stack on loopback, every part started by this script and nothing else.
#
#   PostgreSQL 15 (Debian's; a cluster of its own in deploy/.stack/pg), Redis (Celery's broker), moto's S3 server
#   (the bucket), dagster-daemon (run queue, sensors, run monitoring and retries), two Celery workers (the steps)
#   and the webserver, all on 127.0.0.1. Debian's postgresql-15 and redis-server are installed with apt-get when
#   missing.
#
# Idempotent: a service whose pid file names a live process is left alone. Returns once every service answers,
# after writing deploy/.stack/env (`export NAME=value` lines: source it to drive the stack with `adchain` and to
# read the bucket). The caller's ADCHAIN_* and GEMINI_* variables reach the daemon and the workers (and win over
# the stack's defaults). `scripts/stack/up.sh --restart-compute` restarts only the daemon, the workers and the
# webserver (a new configuration, as a deploy would), keeping the databases.
#
# Ports (override with the variables): STACK_PG_PORT 55432, STACK_REDIS_PORT 56379, STACK_S3_PORT 55000,
# STACK_WEB_PORT 53000.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STACK=$ROOT/deploy/.stack
BIN=$ROOT/.venv/bin
PG_PORT=${STACK_PG_PORT:-55432}
REDIS_PORT=${STACK_REDIS_PORT:-56379}
S3_PORT=${STACK_S3_PORT:-55000}
WEB_PORT=${STACK_WEB_PORT:-53000}
WORKERS=${STACK_WORKERS:-2}
WORKER_CONCURRENCY=${STACK_WORKER_CONCURRENCY:-2}
BUCKET=${STACK_BUCKET:-adchain-stack}
PG_BIN=/usr/lib/postgresql/15/bin
RESTART_COMPUTE=0
[[ "${1:-}" == "--restart-compute" ]] && RESTART_COMPUTE=1

mkdir -p "$STACK"/{pids,logs,data/briefs,dagster_home}

log() { echo "stack: $*" >&2; }

alive() { # alive NAME: the pid file names a live process
  local pid
  [[ -s "$STACK/pids/$1.pid" ]] || return 1
  pid=$(cat "$STACK/pids/$1.pid")
  kill -0 "$pid" 2>/dev/null
}

start() { # start NAME CMD...: in a session of its own (so stop.sh can end its whole process group), logged
  local name=$1; shift
  if alive "$name"; then log "$name already running (pid $(cat "$STACK/pids/$name.pid"))"; return; fi
  setsid "$@" >>"$STACK/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$STACK/pids/$name.pid"
}

stop_one() { # stop_one NAME: TERM its process group, then KILL what is left after 20 s
  local pid
  alive "$1" || { rm -f "$STACK/pids/$1.pid"; return 0; }
  pid=$(cat "$STACK/pids/$1.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$STACK/pids/$1.pid"
}

wait_for() { # wait_for WHAT SECONDS CMD...: until CMD succeeds, or fail naming WHAT and its log
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      log "$what did not answer within ${seconds}s; its log: $STACK/logs/$what.log"
      tail -n 30 "$STACK/logs/$what.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
}

# --- packages: Debian's PostgreSQL 15 and Redis; the Python side from pyproject.toml's stack extra ---------
missing=()
[[ -x $PG_BIN/initdb ]] || missing+=(postgresql-15)
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # the packages start their own default servers; this stack runs its own, on its own ports
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi
[[ -x $BIN/moto_server && -x $BIN/celery && -x $BIN/dagster-daemon ]] || make -s .venv/.installed-dev

# --- the environment every Dagster process of the stack shares ----------------------------------------------
export DAGSTER_HOME=$STACK/dagster_home
cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=$PG_PORT DAGSTER_PG_USER=dagster DAGSTER_PG_PASSWORD=dagster DAGSTER_PG_DB=dagster
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT FSSPEC_S3_ENDPOINT_URL=http://127.0.0.1:$S3_PORT
export AWS_ACCESS_KEY_ID=stack AWS_SECRET_ACCESS_KEY=stack AWS_DEFAULT_REGION=us-east-1
export ADCHAIN_LOG_BUCKET=$BUCKET STACK_WEBSERVER_URL=http://127.0.0.1:$WEB_PORT STACK_WORKERS=$WORKERS
export ADCHAIN_DATA_DIR=${ADCHAIN_DATA_DIR:-$STACK/data}
export ADCHAIN_STORAGE_URL=${ADCHAIN_STORAGE_URL:-s3://$BUCKET/adchain}
export ADCHAIN_EXECUTOR=${ADCHAIN_EXECUTOR:-celery}
export ADCHAIN_CELERY_BROKER=${ADCHAIN_CELERY_BROKER:-redis://127.0.0.1:$REDIS_PORT/0}
export ADCHAIN_CELERY_BACKEND=${ADCHAIN_CELERY_BACKEND:-redis://127.0.0.1:$REDIS_PORT/1}
mkdir -p "$ADCHAIN_DATA_DIR/briefs"
# The Celery workers read their settings from deploy/celery/dagster_celery_config.py (on their PYTHONPATH).
{
  echo "# written by scripts/stack/up.sh: source it to drive the stack (adchain, dagster, s3fs)"
  for name in DAGSTER_HOME DAGSTER_PG_HOST DAGSTER_PG_PORT DAGSTER_PG_USER DAGSTER_PG_PASSWORD DAGSTER_PG_DB \
      AWS_ENDPOINT_URL FSSPEC_S3_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION \
      ADCHAIN_LOG_BUCKET ADCHAIN_DATA_DIR ADCHAIN_STORAGE_URL ADCHAIN_EXECUTOR ADCHAIN_CELERY_BROKER ADCHAIN_CELERY_BACKEND; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
  printf 'export %s=%q\n' ADCHAIN_WEBSERVER_URL "$STACK_WEBSERVER_URL"
  printf 'export %s=%q\n' STACK_BUCKET "$BUCKET" STACK_WEBSERVER_URL "$STACK_WEBSERVER_URL" STACK_WORKERS "$WORKERS" \
    STACK_PG_PORT "$PG_PORT" STACK_REDIS_PORT "$REDIS_PORT" STACK_S3_PORT "$S3_PORT" STACK_DIR "$STACK"
  # the caller's settings that reached the stack (secrets are not written: GEMINI_API_KEY stays in the caller)
  while IFS='=' read -r name _; do
    case $name in
      ADCHAIN_DATA_DIR|ADCHAIN_STORAGE_URL|ADCHAIN_EXECUTOR|ADCHAIN_WEBSERVER_URL|ADCHAIN_CELERY_*|ADCHAIN_LOG_BUCKET|GEMINI_API_KEY) ;;
      ADCHAIN_*|GEMINI_*) printf 'export %s=%q\n' "$name" "${!name}" ;;
    esac
  done < <(env)
} >"$STACK/env.tmp"
mv "$STACK/env.tmp" "$STACK/env"

# --- PostgreSQL: a cluster of its own, run as the postgres user when we are root (postgres refuses root) ----
AS_PG=()
if [[ $(id -u) == 0 ]]; then AS_PG=(runuser -u postgres --); fi
PGDATA=$STACK/pg
if [[ $(id -u) == 0 && ! -e $PGDATA ]] && ! runuser -u postgres -- test -x "$STACK"; then
  # the postgres user cannot reach this checkout (a private home folder): the cluster lives in a folder of its
  # own under /var/tmp, named after this checkout, and deploy/.stack/pg points to it
  real=/var/tmp/adchain-stack-$(echo -n "$STACK" | sha256sum | cut -c1-12)/pg
  mkdir -p "$real"
  chown postgres: "$(dirname "$real")"
  ln -sfn "$real" "$PGDATA"
fi
# its socket in the cluster's folder unless that path is too long for a Unix socket (then /tmp; the name has
# the port in it); clients here use TCP on 127.0.0.1
SOCKDIR=$PGDATA; ((${#SOCKDIR} < 80)) || SOCKDIR=/tmp
export STACK_PG_OPTIONS="-p $PG_PORT -c listen_addresses=127.0.0.1 -k $SOCKDIR -c max_connections=200"
echo "export STACK_PG_OPTIONS=$(printf %q "$STACK_PG_OPTIONS")" >>"$STACK/env"
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  mkdir -p "$PGDATA"
  [[ $(id -u) == 0 ]] && chown postgres: "$PGDATA/"
  chmod 700 "$PGDATA"
  "${AS_PG[@]}" "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >"$STACK/logs/initdb.log"
fi
if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
  "${AS_PG[@]}" "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 -o "$STACK_PG_OPTIONS" start >/dev/null
fi
head -n 1 "$PGDATA/postmaster.pid" >"$STACK/pids/postgres.pid"
wait_for postgres 60 "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
psql_() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
[[ $(psql_ -c "select 1 from pg_roles where rolname='dagster'") == 1 ]] ||
  psql_ -c "create role dagster login password 'dagster'"
[[ $(psql_ -c "select 1 from pg_database where datname='dagster'") == 1 ]] ||
  psql_ -c "create database dagster owner dagster"

# --- Redis and the S3 server ---------------------------------------------------------------------------
mkdir -p "$STACK/redis"
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STACK/redis" --save "" --appendonly no
wait_for redis 30 "$BIN/python" -c "import redis; redis.Redis(port=$REDIS_PORT).ping()"
start moto "$BIN/moto_server" -H 127.0.0.1 -p "$S3_PORT"
wait_for moto 60 "$BIN/python" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=2)"
"$BIN/python" - <<EOF
import boto3
s3 = boto3.client("s3")
if "$BUCKET" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket="$BUCKET")
EOF

# --- Dagster: the instance's schema, the pools' limits, then the daemon, the workers and the webserver ------
"$BIN/dagster" instance migrate >"$STACK/logs/migrate.log" 2>&1
"$BIN/dagster" instance concurrency set image_model "${ADCHAIN_IMAGE_POOL_LIMIT:-2}" >/dev/null
"$BIN/dagster" instance concurrency set video_model "${ADCHAIN_VIDEO_POOL_LIMIT:-1}" >/dev/null

if ((RESTART_COMPUTE)); then
  stop_one webserver
  for i in $(seq 1 "$WORKERS"); do stop_one "worker-$i"; done
  stop_one daemon
fi
start daemon "$BIN/dagster-daemon" run -w deploy/workspace.yaml
for i in $(seq 1 "$WORKERS"); do
  PYTHONPATH=$ROOT/deploy/celery start "worker-$i" "$BIN/celery" -A dagster_celery.app worker -n "adchain-worker-$i@%h" \
    -Q dagster --concurrency "$WORKER_CONCURRENCY" --prefetch-multiplier 1 --loglevel INFO
done
start webserver "$BIN/dagster-webserver" -h 127.0.0.1 -p "$WEB_PORT" -w deploy/workspace.yaml

"$BIN/python" - <<'EOF' || exit 1
"""Every daemon heartbeats, both workers answer a ping, the webserver serves its API."""
import os, socket, sys, time, urllib.request
import dagster as dg
from celery import Celery

deadline = time.monotonic() + 240
workers = {f"adchain-worker-{i}@{socket.gethostname()}" for i in range(1, int(os.environ.get("STACK_WORKERS", "2")) + 1)}
app = Celery(broker=os.environ["ADCHAIN_CELERY_BROKER"], backend=os.environ["ADCHAIN_CELERY_BACKEND"])
waiting = {}
with dg.DagsterInstance.get() as instance:
    while time.monotonic() < deadline:
        statuses = instance.get_daemon_statuses()
        waiting = {"daemon": [t for t, s in statuses.items() if not s.healthy]}
        answered = set().union(*(r.keys() for r in app.control.ping(timeout=1.0) or [{}]))
        waiting["workers"] = sorted(workers - answered)
        try:
            urllib.request.urlopen(os.environ["STACK_WEBSERVER_URL"] + "/server_info", timeout=2)
            waiting["webserver"] = []
        except OSError:
            waiting["webserver"] = ["not answering"]
        if not any(waiting.values()):
            sys.exit(0)
        time.sleep(1)
print(f"stack: still waiting after 240s: {waiting}; logs in deploy/.stack/logs/", file=sys.stderr)
sys.exit(1)
EOF

cat <<EOF
stack up (pids in deploy/.stack/pids, logs in deploy/.stack/logs):
  postgres   postgresql://dagster@127.0.0.1:$PG_PORT/dagster
  redis      redis://127.0.0.1:$REDIS_PORT  (Celery broker db 0, results db 1)
  s3 (moto)  $AWS_ENDPOINT_URL  bucket $BUCKET  outputs $ADCHAIN_STORAGE_URL
  daemon     dagster-daemon, DAGSTER_HOME=$DAGSTER_HOME
  workers    $WORKERS Celery workers x $WORKER_CONCURRENCY processes, queue "dagster"
  webserver  http://127.0.0.1:$WEB_PORT
  briefs     drop them into $ADCHAIN_DATA_DIR/briefs
  env        source deploy/.stack/env
EOF
