#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and by devstack.
# The layer's packages live in /opt/python on Lambda; devstack puts them on PYTHONPATH itself,
# and serves the app behind its Function URL's CORS (DEVSTACK_ASGI_APP), as Lambda does.
PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}/opt/python:${LAMBDA_RUNTIME_DIR:-}" \
  exec "${SLUICE_PYTHON:-python3}" -m uvicorn --host "${AWS_LWA_HOST:-127.0.0.1}" \
  --port "${AWS_LWA_PORT:-8000}" --no-access-log "${DEVSTACK_ASGI_APP:-app:app}"
