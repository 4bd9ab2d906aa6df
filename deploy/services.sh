#!/usr/bin/env bash
# The platform's services as background processes (pid and log in .local/run and .local/logs).
#
#   deploy/services.sh up [NAME...]     start what is not running, wait until each is ready
#   deploy/services.sh down [NAME...]   stop (SIGTERM: each finishes its batch and drains its outbox)
#   deploy/services.sh status
#
# Each service's port is the contract's default (designation 8101, ...). Readiness waits are
# bounded; a failure names the service and shows the tail of its log.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN="$ROOT/.local/run"
LOGS="$ROOT/.local/logs"
ALL=(designation sharing warning objection cases)
declare -A PORT=([designation]=8101 [sharing]=8102 [warning]=8103 [objection]=8104 [cases]=8105)

log() { printf '\033[1m[services]\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31m[services] FAILED:\033[0m %s\n' "$1" >&2
  [ -n "${2:-}" ] && [ -f "$2" ] && { printf -- '--- last lines of %s ---\n' "$2" >&2; tail -n 30 "$2" >&2; }
  exit 1
}
pid_of() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

up_one() {
  local name=$1 port=${PORT[$1]}
  mkdir -p "$RUN" "$LOGS"
  if [ -n "$(pid_of "$name" || true)" ]; then log "$name already running (pid $(pid_of "$name"))"; return; fi
  log "starting $name on :$port (log: .local/logs/$name.log)"
  CREDIT_HTTP_PORT=$port nohup "$ROOT/.venv/bin/python" -m "services.$name" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

wait_one() {
  local name=$1 port=${PORT[$1]} deadline=$((SECONDS + ${CREDIT_SERVICE_WAIT:-90}))
  while ((SECONDS < deadline)); do
    [ -n "$(pid_of "$name" || true)" ] || die "$name exited while starting" "$LOGS/$name.log"
    if "$ROOT/.venv/bin/python" -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$port/health/ready', timeout=2).status_code != 200)" 2>/dev/null; then
      log "$name ready: http://127.0.0.1:$port/  (docs: /docs, /docs/asyncapi)"
      return
    fi
    sleep 0.5
  done
  die "$name not ready within ${CREDIT_SERVICE_WAIT:-90}s" "$LOGS/$name.log"
}

down_one() {
  local name=$1 pid
  pid=$(pid_of "$name" || true)
  [ -n "$pid" ] || { rm -f "$RUN/$name.pid"; return; }
  log "stopping $name (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { log "$name did not stop in 30s: killing"; kill -9 "$pid"; }
  rm -f "$RUN/$name.pid"
}

cmd=${1:-}; shift || true
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
case "$cmd" in
  up) for n in "${names[@]}"; do up_one "$n"; done; for n in "${names[@]}"; do wait_one "$n"; done ;;
  down) for n in "${names[@]}"; do down_one "$n"; done ;;
  status)
    for n in "${names[@]}"; do
      if [ -n "$(pid_of "$n" || true)" ]; then echo "$n: running (pid $(pid_of "$n")) at http://127.0.0.1:${PORT[$n]}/"
      else echo "$n: stopped"; fi
    done ;;
  *) echo "usage: $0 up|down|status [NAME...]" >&2; exit 2 ;;
esac
