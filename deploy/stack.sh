#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft, single node, jars from Maven Central) and PostgreSQL
# (Debian's server) in the git-ignored project folder .local/.
#
#   deploy/stack.sh up      install what is missing, start what is not running, wait until ready
#   deploy/stack.sh down    stop both
#   deploy/stack.sh destroy stop both and delete their data
#   deploy/stack.sh status  say what runs
#   deploy/stack.sh env [PRINCIPAL]  print a shell's settings as PRINCIPAL (default operator:local):
#                           eval "$(deploy/stack.sh env unit:110108-SAT)"
#   deploy/stack.sh browser install Chromium (Debian package) for the browser tests, print its path
#   deploy/stack.sh stop-kafka|start-kafka|stop-postgres|start-postgres|kill-postgres
#                           one server stopped, started or killed (the fault-injection suite's faults)
#
# Where KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL are set, that server is used instead of a local
# one (it is only waited for). Every wait is bounded; a failure names what failed and shows the
# tail of its log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL="${CREDIT_LOCAL_DIR:-$ROOT/.local}"  # a throwaway stack (benchmarks) lives elsewhere
case "$LOCAL" in /*) ;; *) LOCAL="$ROOT/$LOCAL" ;; esac
KAFKA_PORT=${CREDIT_KAFKA_PORT:-19092}
CONTROLLER_PORT=${CREDIT_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${CREDIT_PG_PORT:-15432}
KAFKA_HEAP=${CREDIT_KAFKA_HEAP:--Xms256m -Xmx768m}
KAFKA_DIR="$LOCAL/kafka"
KAFKA_LIBS="$ROOT/.local/kafka-libs"  # shared by every local stack of this checkout (bench too)
PG_DIR="$LOCAL/pg"
PG_USER=credit
PG_PASSWORD=credit
PG_DB=credit

log() { printf '\033[1m[stack]\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31m[stack] FAILED:\033[0m %s\n' "$1" >&2
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    printf -- '--- last lines of %s ---\n' "$2" >&2
    tail -n 40 "$2" >&2
  fi
  exit 1
}

# A port this stack needs, held by another process (another checkout's stack, most often: a
# fresh clone's `make test` leaves its stack up): say who holds it, and where it runs from.
port_free() {
  local port=$1 what=$2 setting=$3 pid holder
  pid=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2 || true)
  if [ -z "$(ss -ltnH "sport = :$port" 2>/dev/null)" ]; then return 0; fi
  holder="pid ${pid:-unknown}"
  if [ -n "$pid" ]; then
    holder="$holder ($(tr '\0\n' '  ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80)...) running in $(readlink "/proc/$pid/cwd" 2>/dev/null || echo '?')"
  fi
  die "port $port, which $what needs, is held by $holder: stop that stack there (deploy/stack.sh down) or set $setting"
}

apt_install() {
  if [ -z "${_APT_UPDATED:-}" ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update"
    _APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $*"
}

# ---------------------------------------------------------------- Kafka

credentials_dir() {
  local d="${CREDIT_CREDENTIALS_DIR:-$ROOT/.local/credentials}"
  case "$d" in /*) echo "$d" ;; *) echo "$ROOT/$d" ;; esac
}
kafka_admin_password() {
  CREDIT_CREDENTIALS_DIR=$(credentials_dir) "$ROOT/.venv/bin/python" -m credit_common.security.kafka_acl admin-password
}
# A command run as the stack's admin principal (its credentials file), whatever the shell holds.
as_admin() {
  env -u KAFKA_SASL_USERNAME -u KAFKA_SASL_PASSWORD -u KAFKA_SECURITY_PROTOCOL \
    CREDIT_PRINCIPAL=admin CREDIT_CREDENTIALS_DIR="$(credentials_dir)" "$@"
}

kafka_local() { [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; }
kafka_bootstrap() { echo "${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"; }

kafka_pid() {
  local f="$KAFKA_DIR/broker.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

kafka_install() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  local libs="$KAFKA_LIBS" stamp
  stamp=$(sha256sum "$ROOT/deploy/kafka/pom.xml" | cut -c1-16)
  if [ -f "$libs/.stamp" ] && [ "$(cat "$libs/.stamp")" = "$stamp" ]; then return; fi
  log "resolving the Kafka broker jars from Maven Central (deploy/kafka/pom.xml)"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -B -q -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >"$KAFKA_DIR/maven.log" 2>&1 \
    || die "Maven could not resolve org.apache.kafka:kafka_2.13" "$KAFKA_DIR/maven.log"
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar after resolution" "$KAFKA_DIR/maven.log"
  echo "$stamp" >"$libs/.stamp"
}

kafka_start() {
  mkdir -p "$KAFKA_DIR"
  if [ -n "$(kafka_pid || true)" ]; then log "Kafka already running (pid $(kafka_pid))"; return; fi
  port_free "$KAFKA_PORT" Kafka CREDIT_KAFKA_PORT
  port_free "$CONTROLLER_PORT" "Kafka's controller" CREDIT_KAFKA_CONTROLLER_PORT
  kafka_install
  local props="$KAFKA_DIR/server.properties" data="$KAFKA_DIR/data" admin_pw
  # The stack's super user: its password is made once, kept in the credentials directory (0600).
  admin_pw=$(kafka_admin_password) || die "making the Kafka admin credentials"
  if [ -f "$data/meta.properties" ] && [ ! -f "$KAFKA_DIR/scram.stamp" ]; then
    log "the Kafka storage in $data predates SCRAM (or lost its admin password): formatting it anew"
    rm -rf "$data"
  fi
  (umask 077; sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
      -e "s#@DATA_DIR@#$data#g" -e "s#@ADMIN_PASSWORD@#$admin_pw#g" \
      "$ROOT/deploy/kafka/server.properties.in" >"$props")
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$data/meta.properties" ]; then
    log "formatting Kafka storage in $data"
    mkdir -p "$data"
    local id
    id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    java -cp "$cp" -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
      -Dkafka.logfile="$KAFKA_DIR/format.log" \
      kafka.tools.StorageTool format -t "$id" -c "$props" \
      --add-scram "SCRAM-SHA-512=[name=admin,password=$admin_pw]" >"$KAFKA_DIR/format.out" 2>&1 \
      || die "formatting Kafka storage" "$KAFKA_DIR/format.out"
    sha256sum <<<"$admin_pw" | cut -c1-16 >"$KAFKA_DIR/scram.stamp"
  elif [ "$(sha256sum <<<"$admin_pw" | cut -c1-16)" != "$(cat "$KAFKA_DIR/scram.stamp")" ]; then
    die "the Kafka storage was formatted with another admin password than $(credentials_dir)/admin.json holds: deploy/stack.sh destroy"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT (log: ${KAFKA_DIR#"$ROOT"/}/broker.log)"
  # shellcheck disable=SC2086
  nohup java $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/kafka/log4j2.properties" \
    -Dkafka.logfile="$KAFKA_DIR/broker.log" \
    -cp "$cp" kafka.Kafka "$props" >"$KAFKA_DIR/broker.out" 2>&1 &
  echo $! >"$KAFKA_DIR/broker.pid"
}

kafka_wait() {
  local deadline=$((SECONDS + ${CREDIT_KAFKA_WAIT:-90}))
  local log_file="$KAFKA_DIR/broker.log"
  while ((SECONDS < deadline)); do
    if kafka_local && [ -z "$(kafka_pid || true)" ]; then
      [ -s "$KAFKA_DIR/broker.out" ] && cat "$KAFKA_DIR/broker.out" >>"$log_file"
      die "the Kafka broker exited while starting" "$log_file"
    fi
    if as_admin "$ROOT/.venv/bin/python" -m credit_common.messaging.ready "$(kafka_bootstrap)" 2>/dev/null; then
      log "Kafka ready at $(kafka_bootstrap)"
      return
    fi
    sleep 1
  done
  die "Kafka at $(kafka_bootstrap) not ready within ${CREDIT_KAFKA_WAIT:-90}s" "$log_file"
}

kafka_stop() {
  local pid
  pid=$(kafka_pid || true)
  [ -n "$pid" ] || { rm -f "$KAFKA_DIR/broker.pid"; return; }
  log "stopping Kafka (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { log "Kafka did not stop in 30s: killing"; kill -9 "$pid"; }
  rm -f "$KAFKA_DIR/broker.pid"
}

# ---------------------------------------------------------------- PostgreSQL

pg_local() { [ -z "${DATABASE_URL:-}" ]; }
pg_url() { echo "${DATABASE_URL:-postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB}"; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [ -z "$d" ]; then
    apt_install postgresql
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$d" ] || die "PostgreSQL server binaries not found after install"
  fi
  echo "$d"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

# PostgreSQL refuses to run as root; the postgres user must reach the project folder. A fresh
# clone under mktemp -d is mode 700: give others traverse-only (x) access on the way down.
pg_make_reachable() {
  [ "$(id -u)" = 0 ] || return 0
  id postgres >/dev/null 2>&1 || die "no postgres user (is the postgresql package installed?)"
  local d="$PG_DIR"
  while [ "$d" != "/" ]; do
    if [ -d "$d" ] && ! su postgres -s /bin/sh -c "test -x '$d'"; then
      log "granting traverse (o+x) on $d so the postgres user reaches .local/pg"
      chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
}

pg_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_postgres "'$(pg_bin)/pg_ctl' -D '$PG_DIR/data' status" >/dev/null 2>&1; }

pg_start() {
  local bin
  bin=$(pg_bin)
  mkdir -p "$PG_DIR"
  pg_make_reachable
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$PG_DIR"; fi
  if pg_running; then log "PostgreSQL already running"; return; fi
  port_free "$PG_PORT" PostgreSQL CREDIT_PG_PORT
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initdb into ${PG_DIR#"$ROOT"/}/data"
    echo "$PG_PASSWORD" >"$PG_DIR/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/pwfile"
    as_postgres "'$bin/initdb' -D '$PG_DIR/data' -U $PG_USER --pwfile='$PG_DIR/pwfile' \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8" >"$PG_DIR/initdb.log" 2>&1 \
      || die "initdb" "$PG_DIR/initdb.log"
    rm -f "$PG_DIR/pwfile"
    cat >>"$PG_DIR/data/postgresql.conf" <<EOF
# credit platform, local development: a throwaway cluster tuned for speed, not durability.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 300
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 15min
EOF
    if [ -n "${CREDIT_PG_DURABLE:-}" ]; then
      # As production runs it (the fault-injection suite kills the server): a commit the client
      # was told of survives a crash. With synchronous_commit off, a kill -9 lost the last
      # commits after their events were published, and a list-change seq was used twice.
      cat >>"$PG_DIR/data/postgresql.conf" <<EOF
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
    fi
  fi
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: ${PG_DIR#"$ROOT"/}/postgres.log)"
  as_postgres "'$bin/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/postgres.log' -w -t 60 start" >/dev/null 2>&1 \
    || die "PostgreSQL did not start" "$PG_DIR/postgres.log"
  as_postgres "'$bin/psql' -h '$PG_DIR' -p $PG_PORT -U $PG_USER -d postgres -tAc \
    \"SELECT 1 FROM pg_database WHERE datname='$PG_DB'\" | grep -q 1 || \
    '$bin/createdb' -h '$PG_DIR' -p $PG_PORT -U $PG_USER $PG_DB" \
    || die "creating database $PG_DB" "$PG_DIR/postgres.log"
}

pg_wait() {
  local deadline=$((SECONDS + ${CREDIT_PG_WAIT:-60}))
  while ((SECONDS < deadline)); do
    if "$ROOT/.venv/bin/python" -m credit_common.db.ready "$(pg_url)" 2>/dev/null; then
      log "PostgreSQL ready"
      return
    fi
    sleep 1
  done
  die "PostgreSQL at $(pg_url | sed 's#//[^@]*@#//***@#') not ready within ${CREDIT_PG_WAIT:-60}s" "$PG_DIR/postgres.log"
}

pg_stop() {
  [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
  log "stopping PostgreSQL"
  as_postgres "'$(pg_bin)/pg_ctl' -D '$PG_DIR/data' -m fast -w -t 60 stop" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- commands

case "${1:-}" in
  up)
    [ -x "$ROOT/.venv/bin/python" ] || die "no .venv: run 'make deps' (uv sync) first"
    if kafka_local; then kafka_start; fi
    if pg_local; then pg_start; fi
    kafka_wait
    pg_wait
    ;;
  down)
    kafka_stop
    pg_stop
    ;;
  status)
    if kafka_local; then
      if [ -n "$(kafka_pid || true)" ]; then echo "kafka: running (pid $(kafka_pid)) at $(kafka_bootstrap)"; else echo "kafka: stopped"; fi
    else echo "kafka: external at $(kafka_bootstrap)"; fi
    if pg_local; then
      if pg_running; then echo "postgres: running at 127.0.0.1:$PG_PORT"; else echo "postgres: stopped"; fi
    else echo "postgres: external"; fi
    ;;
  destroy)
    kafka_stop
    pg_stop
    log "deleting $LOCAL"
    rm -rf "$LOCAL"
    ;;
  # One server at a time, for the fault-injection suite (tests/chaos) and an operator's drills:
  # the servers' own stop and start, or a kill -9 of PostgreSQL's postmaster.
  stop-kafka) kafka_stop ;;
  start-kafka) kafka_start; kafka_wait ;;
  stop-postgres) pg_stop ;;
  start-postgres) pg_start; pg_wait ;;
  kill-postgres)
    [ -f "$PG_DIR/data/postmaster.pid" ] || die "PostgreSQL is not running"
    pid=$(head -n1 "$PG_DIR/data/postmaster.pid")
    kids=$(pgrep -P "$pid" || true)
    log "kill -9 of the PostgreSQL postmaster (pid $pid)"
    kill -9 "$pid"
    # Its backends notice the postmaster's death and exit (the next start refuses to run beside
    # them); that start replays the WAL.
    for _ in $(seq 1 100); do
      alive=0
      for k in $kids; do kill -0 "$k" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.2
    done
    ;;
  browser)  # Chromium from Debian's packages, for the browser tests (Playwright drives it)
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    command -v chromium
    ;;
  env)  # env [PRINCIPAL]: the settings of a shell acting as PRINCIPAL (default operator:local)
    CREDIT_CREDENTIALS_DIR=$(credentials_dir) KAFKA_BOOTSTRAP_SERVERS=$(kafka_bootstrap) DATABASE_URL=$(pg_url) \
      "$ROOT/.venv/bin/python" -m credit_common.security.credentials env "${2:-operator:local}" \
      || die "no credentials for ${2:-operator:local} in $(credentials_dir): run 'make up' (or 'make catalog')"
    ;;
  *)
    echo "usage: $0 up|down|destroy|status|env|browser|stop-kafka|start-kafka|stop-postgres|start-postgres|kill-postgres" >&2
    exit 2
    ;;
esac
