#!/usr/bin/env bash
# `make bench`: the benchmarks on a throwaway stack of their own (other ports, .local/bench), so a
# million benchmark requests never land in the development stack's topics and tables, and every
# run starts from an empty broker and database. The stack is deleted afterwards (BENCH_KEEP=1
# keeps it for profiling).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CREDIT_LOCAL_DIR=.local/bench CREDIT_CREDENTIALS_DIR=.local/bench/credentials CREDIT_KAFKA_PORT=29092 CREDIT_KAFKA_CONTROLLER_PORT=29093 CREDIT_PG_PORT=25432
unset KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
deploy/stack.sh up
eval "$(deploy/stack.sh env admin)"  # the harness is the stack: it acts as its super user
cleanup() { if [ -z "${BENCH_KEEP:-}" ]; then deploy/stack.sh destroy; fi; }
trap cleanup EXIT
.venv/bin/python -m credit_common.messaging.topics
.venv/bin/credit-keys provision deploy/catalog  # principals, ACLs; the requests the benchmarks send are signed
.venv/bin/credit-reference publish deploy/catalog
.venv/bin/python -m tests.perf.run "$@"
