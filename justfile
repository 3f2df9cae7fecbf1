# Waiter — operator commands. `just` lists them.

set dotenv-load := true
set positional-arguments := true

export DATABASE_URL := env_var_or_default("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/waiter")
export NATS_URL := env_var_or_default("NATS_URL", "nats://127.0.0.1:4222")
export WAITER_NAMESPACE := env_var_or_default("WAITER_NAMESPACE", "waiter")
export WAITER_PARTITIONS := env_var_or_default("WAITER_PARTITIONS", "8")
export JWT_SECRET := env_var_or_default("JWT_SECRET", "dev-only-jwt-secret-change-me")
export INGEST_PORT := env_var_or_default("INGEST_PORT", "8080")
export NOTIFIER_PORT := env_var_or_default("NOTIFIER_PORT", "8090")
export SIM_PORT := env_var_or_default("SIM_PORT", "3999")
export ROUTER_OPS_PORT := env_var_or_default("ROUTER_OPS_PORT", "9101")
export CONVERSATION_OPS_PORT := env_var_or_default("CONVERSATION_OPS_PORT", "9102")
export ORDER_OPS_PORT := env_var_or_default("ORDER_OPS_PORT", "9103")
export OUTBOUND_OPS_PORT := env_var_or_default("OUTBOUND_OPS_PORT", "9104")
export INGEST_OPS_PORT := env_var_or_default("INGEST_OPS_PORT", "9105")
export NOTIFIER_OPS_PORT := env_var_or_default("NOTIFIER_OPS_PORT", "9106")
export DASHBOARD_URL := env_var_or_default("DASHBOARD_URL", "http://127.0.0.1:" + NOTIFIER_PORT)
export PUBLIC_URL := env_var_or_default("PUBLIC_URL", "http://127.0.0.1:" + INGEST_PORT)
export INGEST_ADDR := "0.0.0.0:" + INGEST_PORT
export NOTIFIER_ADDR := "0.0.0.0:" + NOTIFIER_PORT
export ROUTER_OPS_ADDR := "0.0.0.0:" + ROUTER_OPS_PORT
export CONVERSATION_OPS_ADDR := "0.0.0.0:" + CONVERSATION_OPS_PORT
export ORDER_OPS_ADDR := "0.0.0.0:" + ORDER_OPS_PORT
export OUTBOUND_OPS_ADDR := "0.0.0.0:" + OUTBOUND_OPS_PORT
export DEMO_NUMBER := env_var_or_default("DEMO_NUMBER", "whatsapp:+14155238886")
export DEMO_ACCOUNT_SID := env_var_or_default("DEMO_ACCOUNT_SID", "AC00000000000000000000000000000001")
export DEMO_AUTH_TOKEN := env_var_or_default("DEMO_AUTH_TOKEN", "demo-auth-token-change-me")
# Encrypts auth tokens at rest; `just up` makes a development key in .run/secret.key.
export WAITER_SECRET_KEY := env_var_or_default("WAITER_SECRET_KEY", `cat .run/secret.key 2>/dev/null || true`)

default:
    @just --list

# The waiterctl that `just up` runs (release), for ps, scale and down.
ctl := if path_exists(env_var_or_default("WAITER_RUN_DIR", ".run") / "waiterctl") == "true" { env_var_or_default("WAITER_RUN_DIR", ".run") / "waiterctl" } else { "cargo run -q --release -p waiterctl --" }

# Start NATS and PostgreSQL if needed, migrate, seed the demo, run every stage and the Twilio simulator under supervision (release; --debug).
up *args:
    cargo run -q {{ if args =~ "--debug" { "" } else { "--release" } }} -p waiterctl -- up "$@"

# Stop everything `just up` started (from its pid files if it died).
down *args:
    @{{ ctl }} down "$@"

# What runs: one line per process, ready or not, handled, in flight, lag (--watch, --json).
ps *args:
    @{{ ctl }} ps "$@"

# The whole test suite against real NATS and PostgreSQL, the dashboard in headless Chromium, the API under schemathesis.
test:
    tools/ops/ensure-services.sh
    tools/ops/ensure-test-tools.sh
    # The chaos and supervision tests run the stages' binaries: build them fresh.
    cargo build --workspace --bins
    cargo test --workspace --all-targets --no-fail-fast
    just dashboard-check

# schemathesis against a running notifier: generated requests for every operation of /api/openapi.json.
api-fuzz:
    tools/ops/ensure-services.sh
    tools/ops/ensure-test-tools.sh
    cargo test -p waiter-e2e --test api_schema -- --nocapture

# Faults under traffic, every stage its own process, each scenario audited (CHAOS_SECONDS, CHAOS_ONLY; CHAOS_WRITE_REPORT=1 rewrites docs/RELIABILITY.md).
test-chaos:
    tools/ops/ensure-services.sh
    cargo build -q -p ingest -p router -p conversation -p order -p outbound -p notifier --bins
    cargo test -q -p waiter-e2e --test chaos -- --nocapture

# The dashboard in headless Chromium through the whole pipeline (screenshots in target/dashboard-screenshots).
test-dashboard:
    tools/ops/ensure-services.sh
    tools/ops/ensure-test-tools.sh
    cargo test -p waiter-e2e --test dashboard

# The dashboard's built assets (notifier/dashboard/dist, embedded by cargo) match its sources.
dashboard-check:
    cd notifier/dashboard && npm ci --no-audit --no-fund --silent && npm test

# Rebuild the dashboard's assets after changing notifier/dashboard/src (then commit dist/).
dashboard-build:
    cd notifier/dashboard && npm ci --no-audit --no-fund --silent && npm run build

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Send a WhatsApp message to the demo restaurant as a customer (through the simulator), then show the replies.
chat message customer="whatsapp:+966500000123":
    tools/ops/chat.sh "$1" "$2"

# Run N replicas of a stage under `just up`, up or down (ingest, router, conversation, order, outbound, notifier).
scale stage n:
    @{{ ctl }} scale "$1" "$2"

# A subject's or stream's messages as JSON lines: just replay events [--since 10m | --seq N] [--until …] [--tenant slug] [--limit N] [--republish]
replay subject *args:
    @{{ ctl }} replay "$@"

# Dead letters as a table: stage, restaurant, recipient, reason, attempts, age (--stage S, --json).
dlq *args:
    @{{ ctl }} dlq "$@"

# Send dead letters again, keeping their trace ids: just dlq-retry --seq N | --all
dlq-retry *args:
    @{{ ctl }} dlq-retry "$@"

# One customer message's journey through every stage, with per-hop latency: just trace SM…
trace message_sid *args:
    @{{ ctl }} trace "$@"

# The Prometheus alert rules and scrape config (promtool), and the Grafana dashboard's JSON, in deploy/.
metrics-check:
    promtool check rules deploy/prometheus/alerts.yml
    promtool check config deploy/prometheus/prometheus.yml
    python3 -c 'import json, sys; d = json.load(open("deploy/grafana/waiter.json")); sys.exit(0 if d["panels"] else "no panels")'

# Add or replace a restaurant: just tenant --slug x --number whatsapp:+1... --account-sid AC... --time-zone Asia/Riyadh (token from TENANT_AUTH_TOKEN).
tenant *args:
    @{{ ctl }} tenant upsert "$@"

# List restaurants.
tenants:
    @{{ ctl }} restaurant list

# Restaurants: just restaurant create|update|show|list|disable|enable ... (see --help).
restaurant *args:
    @{{ ctl }} restaurant "$@"

# Branches and opening hours: just branch add|update|list|remove|hours|close|reopen ...
branch *args:
    @{{ ctl }} branch "$@"

# Import a menu file (CSV or JSON, docs/menu-format.md): just menu-import bait-grill menu.csv
menu-import restaurant file:
    @{{ ctl }} menu import --restaurant "$1" "$2"

# Export a menu in the import format: just menu-export bait-grill [csv|json]
menu-export restaurant format="csv":
    @{{ ctl }} menu export --restaurant "$1" --format "$2"

# Order webhook endpoints: just webhooks add|list|test|remove --restaurant SLUG [--url URL] (add prints the secret once).
webhooks *args:
    @{{ ctl }} webhooks "$@"

# A customer's data: just customer export|forget --restaurant SLUG --customer whatsapp:+...
customer *args:
    @{{ ctl }} customer "$@"

# Which messages fall back to numbered text or cannot go outside the 24-hour window.
templates-check *args:
    @{{ ctl }} templates check "$@"

# Seal every auth token under the first key of WAITER_SECRET_KEY.
secrets-rotate:
    @{{ ctl }} secrets rotate

# A dashboard login link, the token in its #fragment (the bare JWT: waiterctl jwt without --link): just jwt <restaurant id or slug> [staff|admin]
jwt restaurant role="staff":
    @{{ ctl }} jwt --restaurant "$1" --role "$2" --link

# Apply database migrations.
migrate:
    @{{ ctl }} migrate

# The load benchmark: whole pipeline, raw JetStream baseline, latency percentiles, loss/duplicate audit.
bench *args:
    tools/ops/ensure-services.sh
    cargo run -q --release -p waiter-e2e --bin bench -- "$@"

# Check the shipped nats-server configurations (nats/server/, and each node of deploy/'s cluster) with `nats-server -t`.
nats-config-check:
    NATS_INGEST_PASSWORD=x NATS_ROUTER_PASSWORD=x NATS_CONVERSATION_PASSWORD=x NATS_ORDER_PASSWORD=x NATS_OUTBOUND_PASSWORD=x NATS_NOTIFIER_PASSWORD=x NATS_WAITERCTL_PASSWORD=x nats-server -t -c nats/server/waiter.conf
    for node in nats-1 nats-2 nats-3; do NODE_NAME=$node NATS_ROUTE_PASSWORD=x NATS_INGEST_PASSWORD=x NATS_ROUTER_PASSWORD=x NATS_CONVERSATION_PASSWORD=x NATS_ORDER_PASSWORD=x NATS_OUTBOUND_PASSWORD=x NATS_NOTIFIER_PASSWORD=x NATS_WAITERCTL_PASSWORD=x nats-server -t -c deploy/nats/node.conf || exit 1; done

# Fuzz each target for SECONDS (default 30) on the stable toolchain; installs cargo-fuzz when missing.
fuzz seconds="30":
    tools/ops/fuzz.sh "$1"
# The notifier's live feed at scale (release): --sockets 10000 --restaurants 1000 --rate 500; latency and memory per socket.
bench-feed *args:
    tools/ops/ensure-services.sh
    cargo build -q --release -p notifier --bin notifier -p waiter-e2e --bin feed_bench
    "${CARGO_TARGET_DIR:-target}/release/feed_bench" "$@"
