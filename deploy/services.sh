#!/usr/bin/env bash
# The platform's services in the background, under deploy/supervise.py (which keeps each
# service's log in .local/logs/<name>.log, restarts what dies and stops them cleanly).
#
#   deploy/services.sh up [NAME...]     start the supervisor (all five, or those named), wait until ready
#   deploy/services.sh down             stop the supervisor and every service (SIGTERM: each finishes
#                                       its batch and drains its outbox)
#   deploy/services.sh status
#
# `make up` runs the same supervisor in the foreground instead (Ctrl-C stops everything).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${CREDIT_LOCAL_DIR:-.local}; [[ $LOCAL = /* ]] || LOCAL="$ROOT/$LOCAL"
RUN="$LOCAL/run"
ALL=(designation sharing warning objection cases)
declare -A PORT=([designation]=8101 [sharing]=8102 [warning]=8103 [objection]=8104 [cases]=8105)

log() { printf '\033[1m[services]\033[0m %s\n' "$*" >&2; }
pid_of() { local f="$RUN/$1.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

stop_pid() {  # stop_pid NAME PID: SIGTERM, then SIGKILL after 60 s
  local name=$1 pid=$2
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  log "$name did not stop in 60s: killing it"; kill -9 "$pid" 2>/dev/null || true
}

cmd=${1:-}; shift || true
case "$cmd" in
  up)
    only=(); [ $# -gt 0 ] && only=(--only "$@")
    exec "$ROOT/.venv/bin/python" "$ROOT/deploy/supervise.py" --detach "${only[@]}" ;;
  down)
    pid=$(pid_of supervisor || true)
    [ -n "$pid" ] && stop_pid supervisor "$pid"
    rm -f "$RUN/supervisor.pid" "$RUN/supervisor.ready"
    for n in "${ALL[@]}"; do  # a service left behind by a supervisor that was killed
      pid=$(pid_of "$n" || true); [ -n "$pid" ] && stop_pid "$n" "$pid"
      rm -f "$RUN/$n.pid"
    done ;;
  status)
    if pid=$(pid_of supervisor); then echo "supervisor: running (pid $pid)"; else echo "supervisor: stopped"; fi
    for n in "${ALL[@]}"; do
      if [ -n "$(pid_of "$n" || true)" ]; then echo "$n: running (pid $(pid_of "$n")) at http://127.0.0.1:${PORT[$n]}/"
      else echo "$n: stopped"; fi
    done ;;
  *) echo "usage: $0 up [NAME...]|down|status" >&2; exit 2 ;;
esac
