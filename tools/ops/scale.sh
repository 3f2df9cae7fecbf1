#!/usr/bin/env bash
# `just scale STAGE N`: start N more replicas of a pulling stage beside a
# running `just up`. The replicas share the stage's partitions by lease
# (each partition one owner; they move as replicas come and go), so nothing
# is lost and per-conversation order holds; Ctrl-C stops them, and their
# partitions are handed back before they exit.
set -euo pipefail
stage="$1"; n="$2"
case "$stage" in
  router|conversation|order|outbound) ;;
  ingest|notifier) echo "$stage serves HTTP: run replicas behind a load balancer on their own ports (INGEST_ADDR / NOTIFIER_ADDR)" >&2; exit 2 ;;
  *) echo "unknown stage $stage (router, conversation, order, outbound)" >&2; exit 2 ;;
esac
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number" >&2; exit 2; }
cargo build -q --bin "$stage"
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/$stage"
LOGS="${WAITER_RUN_DIR:-$PWD/.run}/logs"; mkdir -p "$LOGS"
export TWILIO_API_BASE="${TWILIO_API_BASE:-http://127.0.0.1:$SIM_PORT}"
var="$(echo "$stage" | tr a-z A-Z)_OPS_ADDR"
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in $(seq 1 "$n"); do
  env "$var=127.0.0.1:0" "$BIN" >"$LOGS/$stage-replica-$i.log" 2>&1 &
  pids+=("$!")
  echo "started $stage replica $i (pid $!, log $LOGS/$stage-replica-$i.log)"
done
echo "Ctrl-C stops these $n replica(s)."
wait
