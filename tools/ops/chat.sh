#!/usr/bin/env bash
# `just chat "text"`: one customer message to the demo restaurant through the
# Twilio simulator (signed exactly as Twilio signs), then the bot's replies.
set -euo pipefail
message="$1"; customer="$2"
sim="http://127.0.0.1:$SIM_PORT"
before="$(curl -fsS -G --data-urlencode "to=$customer" "$sim/sim/messages" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
python3 - "$message" "$customer" <<'PY' | curl -fsS -H 'content-type: application/json' -d @- "$sim/sim/inbound" >/dev/null
import json, os, sys
print(json.dumps({"account_sid": os.environ["DEMO_ACCOUNT_SID"], "from": sys.argv[2],
                  "to": os.environ["DEMO_NUMBER"], "body": sys.argv[1], "profile_name": "Demo customer"}))
PY
echo "you: $message"
for _ in $(seq 1 100); do
  sleep 0.2
  out="$(curl -fsS -G --data-urlencode "to=$customer" "$sim/sim/messages")"
  n="$(printf '%s' "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
  if [ "$n" -gt "$before" ]; then sleep 0.5; out="$(curl -fsS -G --data-urlencode "to=$customer" "$sim/sim/messages")"; break; fi
done
printf '%s' "$out" | python3 -c '
import json, sys
msgs = json.load(sys.stdin)[int(sys.argv[1]):]
for m in msgs:
    print("bot:", m.get("body") or ("[template %s %s]" % (m.get("content_sid"), m.get("content_variables"))))
if not msgs:
    print("(no reply yet — see .run/logs)")
' "$before"
