#!/usr/bin/env bash
# Headless Chromium for the browser tests (`make test-browser`), from Debian's packages: Playwright
# drives this binary (never `playwright install`, which downloads browsers of its own).
# Idempotent. Exit 3, saying why, where it cannot be installed (no apt-get, or not root).
set -euo pipefail
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: $CHROMIUM is missing and there is no apt-get here: install Chromium and set CHROMIUM=<path>" >&2
  exit 3
fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium: $CHROMIUM is missing: run 'sudo apt-get install -y chromium' (or set CHROMIUM=<path>)" >&2
  exit 3
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "chromium: installed $("$CHROMIUM" --version)" >&2
