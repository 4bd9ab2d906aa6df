#!/usr/bin/env bash
# `make chaos`: the fault-injection suite (tests/chaos) on a throwaway stack of its own (other
# ports, .local/chaos), since it stops, kills and restarts the broker and the database. Every run
# starts from an empty broker and database; the stack is deleted afterwards (CHAOS_KEEP=1 keeps
# it). Arguments go to `python -m tests.chaos.run` (--short, --faults a,b, --out FILE).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CREDIT_LOCAL_DIR=.local/chaos CREDIT_CREDENTIALS_DIR=.local/chaos/credentials
export CREDIT_KAFKA_PORT=31092 CREDIT_KAFKA_CONTROLLER_PORT=31093 CREDIT_PG_PORT=31432
export CREDIT_PG_DURABLE=1  # PostgreSQL as production runs it: the suite kills it
unset KAFKA_BOOTSTRAP_SERVERS DATABASE_URL CREDIT_INSTANCE CREDIT_NOW
# Toxiproxy (Shopify's TCP proxy for fault injection) for the zombie_relay fault: built once from
# the Go module proxy into .local/toxiproxy (Go from the machine, else Debian's golang-go).
TOXI_DIR="$ROOT/.local/toxiproxy"
export CHAOS_TOXIPROXY="$TOXI_DIR/toxiproxy-server"
if [ ! -x "$CHAOS_TOXIPROXY" ]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$GO" ]; then
    echo "[chaos] installing Go (Debian's golang-go) to build Toxiproxy" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >/dev/null
    GO=$(command -v go)
  fi
  echo "[chaos] building Toxiproxy v2.5.0 from the Go module proxy" >&2
  mkdir -p "$TOXI_DIR"
  GOBIN="$TOXI_DIR/bin" GOPATH="$TOXI_DIR/go" GOCACHE="$TOXI_DIR/cache" GOFLAGS=-modcacherw \
    "$GO" install github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0
  mv "$TOXI_DIR/bin/server" "$CHAOS_TOXIPROXY"
fi
cleanup() { if [ -z "${CHAOS_KEEP:-}" ]; then deploy/stack.sh destroy >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
deploy/stack.sh destroy >/dev/null 2>&1 || true  # what a previous run left (a killed run keeps its stack)
deploy/stack.sh up
eval "$(deploy/stack.sh env admin)"  # the suite is the stack: it acts as its super user
.venv/bin/python -m credit_common.messaging.topics
.venv/bin/credit-keys provision deploy/catalog  # principals, ACLs; the load is signed
.venv/bin/credit-reference publish deploy/catalog
.venv/bin/python -m tests.chaos.run "$@"
