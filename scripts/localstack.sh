#!/usr/bin/env bash
# LocalStack for SQS and S3, without Docker: localstack-core in a virtualenv of its own, run on
# the host. DynamoDB stays on moto (LocalStack's downloads DynamoDB Local on first use).
#
#   scripts/localstack.sh install   find a Python >= 3.12, install the pinned localstack-core
#   scripts/localstack.sh start     install if needed, start in the background, wait until ready
#   scripts/localstack.sh stop      stop the one started here
#
# Exit status 3 means no suitable Python could be found or installed (CI skips on it).
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.localstack
VENV=$DIR/venv
PORT=${LOCALSTACK_PORT:-4566}
URL=http://localhost:$PORT
# localstack-core declares what it needs loosely; these are the versions it starts with.
# cbor2 6, pyOpenSSL 25 and cryptography 45 each break its startup; service-identity is
# imported by its TLS setup but not declared.
PINS=(
  "localstack-core[runtime]==2026.3.0"
  "cbor2<6"
  "pyopenssl<25"
  "cryptography<45"
  "service-identity"
)

say() { echo "localstack: $*" >&2; }

find_python() {
  # As a user's machine has one: an explicit choice, the newest python3.x on PATH, then the
  # versions pyenv has installed but not selected (its shims answer only for the selected one).
  # localstack-core declares >= 3.10 but its code uses 3.12 syntax (PEP 695 generics).
  local candidates=("${LOCALSTACK_PYTHON:-}" python3.13 python3.12 python3)
  if command -v pyenv >/dev/null 2>&1; then
    local root
    root=$(pyenv root)
    candidates+=($(ls -d "$root"/versions/3.1[0-9]*/bin/python3 2>/dev/null | sort -V -r))
  fi
  for py in "${candidates[@]}"; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

install() {
  local stamp=$VENV/.installed-$(printf '%s ' "${PINS[@]}" | md5sum | cut -c1-12)
  [ -f "$stamp" ] && return 0
  local py
  if ! py=$(find_python); then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      say "no Python >= 3.12 with venv: trying the distribution's python3"
      apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null || true
    fi
    py=$(find_python) || {
      say "no Python >= 3.12 with the venv module found (set LOCALSTACK_PYTHON to one)"
      exit 3
    }
  fi
  say "installing ${PINS[0]} with $py into $VENV"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
  touch "$stamp"
}

ready() {
  "$VENV/bin/python" - "$URL" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=2) as res:
        services = json.load(res).get("services", {})
except Exception:
    sys.exit(1)
sys.exit(0 if all(services.get(s) in ("available", "running") for s in ("sqs", "s3")) else 1)
PY
}

start() {
  install
  if ready; then
    say "already serving on $URL"
    return 0
  fi
  mkdir -p "$DIR/state"
  say "starting on $URL (log $DIR/localstack.log)"
  # On the host (localstack-core has no CLI; its runtime runs directly), no DNS server (it wants port 53), no certificate download, nothing kept.
  SERVICES=sqs,s3 GATEWAY_LISTEN=127.0.0.1:$PORT DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 PERSISTENCE=0 LOCALSTACK_VOLUME_DIR="$PWD/$DIR/state" \
    nohup "$VENV/bin/python" -m localstack.runtime.main >"$DIR/localstack.log" 2>&1 &
  echo $! >"$DIR/localstack.pid"
  for _ in $(seq 1 240); do
    if ready; then
      say "ready on $URL"
      return 0
    fi
    if ! kill -0 "$(cat "$DIR/localstack.pid")" 2>/dev/null; then
      tail -40 "$DIR/localstack.log" >&2
      say "exited while starting"
      exit 1
    fi
    sleep 0.5
  done
  tail -40 "$DIR/localstack.log" >&2
  say "not ready after 120 s"
  exit 1
}

stop() {
  [ -f "$DIR/localstack.pid" ] || { say "not started here"; return 0; }
  local pid
  pid=$(cat "$DIR/localstack.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DIR/localstack.pid"
  say "stopped"
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
