#!/usr/bin/env bash
# `just up`: from a fresh checkout to the whole system running with a demo
# restaurant and the Twilio simulator. Ctrl-C stops everything it started.
set -euo pipefail

RUN_DIR="${WAITER_RUN_DIR:-$PWD/.run}"
LOGS="$RUN_DIR/logs"
mkdir -p "$LOGS"
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug"

echo "==> services"
tools/ops/ensure-services.sh

echo "==> building (first time: a few minutes)"
cargo build --bins

echo "==> secret key"
# Auth tokens are stored encrypted with WAITER_SECRET_KEY. For development a
# key is made once and kept in .run/secret.key (git-ignored, mode 600);
# production sets WAITER_SECRET_KEY itself (see docs/ARCHITECTURE.md).
if [ -z "${WAITER_SECRET_KEY:-}" ]; then
  KEY_FILE="$RUN_DIR/secret.key"
  if [ ! -s "$KEY_FILE" ]; then
    (umask 077; "$BIN/waiterctl" secrets generate-key --id dev >"$KEY_FILE")
    echo "    made a development key in $KEY_FILE"
  fi
  WAITER_SECRET_KEY="$(cat "$KEY_FILE")"
  export WAITER_SECRET_KEY
fi

echo "==> database"
"$BIN/waiterctl" migrate
RESTAURANT_ID="$("$BIN/waiterctl" seed-demo)"

pids=()
stopping=""
stop() {
  [ -n "$stopping" ] && return
  stopping=1
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "    stopped"
}
trap stop INT TERM EXIT

start() { # name command...
  local name="$1"; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=("$!")
}

wait_health() { # name url
  for _ in $(seq 1 150); do
    if curl -fsS "$2" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null && [ "$1" = last ]; then break; fi
    sleep 0.2
  done
  echo "    $1 did not become healthy; see $LOGS/$1.log" >&2
  tail -n 20 "$LOGS/$1.log" >&2 || true
  return 1
}

echo "==> starting the Twilio simulator and the six stages (logs in $LOGS)"
SIM_ADDR="127.0.0.1:$SIM_PORT" SIM_WEBHOOK_URL="$PUBLIC_URL/whatsapp/webhook" \
  SIM_ACCOUNTS="$DEMO_ACCOUNT_SID:$DEMO_AUTH_TOKEN" start twilio-sim "$BIN/twilio-sim"
export TWILIO_API_BASE="http://127.0.0.1:$SIM_PORT"
start ingest "$BIN/ingest"
start router "$BIN/router"
start conversation "$BIN/conversation"
start order "$BIN/order"
start outbound "$BIN/outbound"
start notifier "$BIN/notifier"

wait_health twilio-sim "http://127.0.0.1:$SIM_PORT/health"
wait_health ingest "http://127.0.0.1:$INGEST_PORT/health"
wait_health router "http://127.0.0.1:$ROUTER_OPS_PORT/health"
wait_health conversation "http://127.0.0.1:$CONVERSATION_OPS_PORT/health"
wait_health order "http://127.0.0.1:$ORDER_OPS_PORT/health"
wait_health outbound "http://127.0.0.1:$OUTBOUND_OPS_PORT/health"
wait_health notifier "http://127.0.0.1:$NOTIFIER_PORT/health"

JWT="$("$BIN/waiterctl" jwt --restaurant "$RESTAURANT_ID" --hours 24)"
LOGIN_LINK="$("$BIN/waiterctl" jwt --restaurant "$RESTAURANT_ID" --hours 24 --link --dashboard-url "http://127.0.0.1:$NOTIFIER_PORT")"

cat <<BANNER

  Waiter is up.

  Webhooks (ingest)     $PUBLIC_URL/whatsapp/webhook   (status: /whatsapp/status)
  Dashboard (notifier)  http://127.0.0.1:$NOTIFIER_PORT/   (staff sign in: the link below)
                        REST http://127.0.0.1:$NOTIFIER_PORT/api/restaurants/$RESTAURANT_ID/…
                        OpenAPI http://127.0.0.1:$NOTIFIER_PORT/api/openapi.json, WebSocket ws://127.0.0.1:$NOTIFIER_PORT/ws
  Twilio simulator      http://127.0.0.1:$SIM_PORT   (sent messages: /sim/messages)
  Metrics               http://127.0.0.1:$INGEST_PORT/metrics, ops ports $ROUTER_OPS_PORT-$OUTBOUND_OPS_PORT

  Demo restaurant       Bait Grill / مشويات البيت   id $RESTAURANT_ID
    WhatsApp number     $DEMO_NUMBER
    Twilio account SID  $DEMO_ACCOUNT_SID   (simulator)
    Twilio auth token   (the simulator's; stored encrypted, never printed)

  Dashboard login link (24 h, staff; the token is in the #fragment, never sent to a server):
    $LOGIN_LINK
  The same JWT, for curl:
    $JWT

  Chat as a customer:   just chat "مرحبا"        (or: just chat hello)
  Follow the logs:      tail -f $LOGS/*.log
  Ctrl-C stops everything started here.

BANNER

# Exit (and stop the rest) if any stage dies.
wait -n "${pids[@]}" || true
if [ -z "$stopping" ]; then
  echo "a process exited; see $LOGS — stopping the rest" >&2
  stop
  exit 1
fi
