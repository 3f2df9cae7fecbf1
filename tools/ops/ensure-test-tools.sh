#!/usr/bin/env bash
# Installs what the browser and API tests need, when missing: Debian's
# chromium and chromedriver (with fonts for Arabic and emoji), Node.js for
# the dashboard's build check, and schemathesis in a virtualenv of its own.
# Idempotent. Used by `just test` and `.ci/run`.
set -euo pipefail

say() { printf '  %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=""
apt_install() {
  if ! is_root; then say "missing $*: install as root (apt-get install -y $*)"; return 1; fi
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Chromium and its driver, from Debian.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
dpkg -s fonts-noto-core >/dev/null 2>&1 || missing+=(fonts-noto-core)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
if [ "${#missing[@]}" -gt 0 ]; then say "installing ${missing[*]}"; apt_install "${missing[@]}"; fi
say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"

# promtool (Debian's prometheus package), for `just metrics-check`.
if ! command -v promtool >/dev/null; then say "installing prometheus (promtool)"; apt_install prometheus; fi
say "$(promtool --version 2>&1 | head -1)"

# Node.js, for `npm ci` and the dashboard's freshness test.
if ! command -v npm >/dev/null; then say "installing nodejs and npm"; apt_install nodejs npm; fi
say "node: $(node --version)"

# schemathesis, pinned, in its own virtualenv. Python 3.12 or newer where
# there is one: CPython 3.11.7's ast module fails inside hypothesis
# ("AST constructor recursion depth mismatch") during coverage generation.
SCHEMATHESIS_VERSION=4.32.5
VENV="$HOME/.cache/waiter-schemathesis"
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  python=""
  for candidate in python3.13 python3.12 \
      "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 python3; do
    # pyenv installs shims for versions it does not select: ask each to run.
    if "$candidate" --version >/dev/null 2>&1; then python="$candidate"; break; fi
  done
  [ -n "$python" ] || { say "python3 is required for schemathesis"; exit 1; }
  say "installing schemathesis $SCHEMATHESIS_VERSION with $("$python" --version)"
  rm -rf "$VENV"
  if ! "$python" -m venv "$VENV" 2>/dev/null; then
    apt_install python3-venv
    "$python" -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
say "$("$VENV/bin/schemathesis" --version)"
