#!/usr/bin/env bash
# `sam build` for ARCH (the template's Architecture, arm64 unless given: what samconfig.toml deploys),
# or exactly what is missing for it. sam installs the layer's dependencies as wheels for ARCH, so a
# build for the other architecture needs no emulation.
# sam builds the layer with the template's Runtime (python3.12): on PATH, from pyenv when it has
# that version but another is selected, or in Docker (--use-container).
set -euo pipefail
cd "$(dirname "$0")/.."
SAM=${SAM:-.venv/bin/sam}
arch=${ARCH:-arm64}
case "$arch" in arm64|x86_64) ;; *) echo "sam-build: ARCH must be arm64 or x86_64, not $arch" >&2; exit 2 ;; esac
runtime=$(sed -n 's/^ *Runtime: *\(python[0-9.]*\).*/\1/p' template.yaml | head -1)
version=${runtime#python}
if ! "$runtime" -c "import sys" >/dev/null 2>&1 && command -v pyenv >/dev/null 2>&1; then
  found=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}(\.[0-9]+)?$" | tail -1 || true)
  if [ -n "$found" ]; then
    echo "sam-build: using pyenv's $found for $runtime" >&2
    export PYENV_VERSION=$found
  fi
fi
if "$runtime" -c "import sys" >/dev/null 2>&1; then
  exec "$SAM" build --parameter-overrides "Architecture=$arch" "$@"
fi
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  exec "$SAM" build --use-container --parameter-overrides "Architecture=$arch" "$@"
fi
cat >&2 <<MSG
make build: sam build needs $runtime (the template's Runtime) on PATH or in pyenv, or a running
Docker for sam build --use-container; this machine has none of them. Install $runtime (pyenv
install $version, uv python install $version, or your distribution's package) or start Docker,
then run make build again.
MSG
exit 1
