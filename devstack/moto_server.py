"""devstack's moto: moto's own AWS emulation behind a keep-alive HTTP server.

``python -m devstack.moto_server --port N`` serves the same WSGI application as moto's
``moto_server`` command, with changes that concern the emulator's cost only, never what an
emulated service answers:

- ``devstack.moto_atomic``: DynamoDB writes serialised (DynamoDB's are atomic), a light
  transaction rollback state, and ReceiveMessage reading a queue's retention period directly
  (moto computes every attribute of the queue for it, once per message received, walking every
  message, so a receive's cost grew with the square of the queue's depth).
- cheroot serves it instead of werkzeug's development server, which closes the connection after
  every response (so each boto3 call opened a TCP connection and moto a thread) and logs every
  request. cheroot keeps connections alive and logs nothing per request; of the keep-alive
  servers tried (waitress, cheroot, granian) it cost moto the least CPU per call.
- The host -> backend lookup is cached: moto matches every request's host against the URL
  patterns of all its services (hundreds of regexes, under a global lock) to find the backend
  that a local endpoint's requests always name the same way.
- Which actions a response class has is worked out once per class, not on every request.

``bench/devstack_load.py`` prints moto's CPU per trigger for both servers, side by side.
``--plain`` serves moto's own server instead (werkzeug, with only ``moto_atomic``'s changes):
``devstack up --moto-server plain`` uses it to tell a devstack problem from a moto one.
"""

from __future__ import annotations

import argparse
import os
from functools import cache, lru_cache
from typing import Any

import moto.core.responses
from cheroot import wsgi
from moto.core.utils import method_names_from_class
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from devstack.moto_atomic import patch_moto

# Each SQS long poll holds a thread for its WaitTimeSeconds (devstack's pollers wait 1 s, tests
# up to 20 s); idle keep-alive connections hold none.
THREADS = 48
# Bursts open many connections at once; the default listen backlog of 5 refuses them.
BACKLOG = 1024


class _CachedHosts(DomainDispatcherApplication):
    """moto's dispatcher with its host lookup memoised (one dispatcher per process)."""

    @lru_cache(maxsize=256)  # noqa: B019 -- lives as long as the process
    def get_backend_for_host(self, host: str | None) -> Any:
        return super().get_backend_for_host(host)


def application() -> DomainDispatcherApplication:
    """moto's WSGI application with devstack's changes applied to this process's moto."""
    patch_moto()
    moto.core.responses.method_names_from_class = cache(method_names_from_class)  # type: ignore[attr-defined]
    return _CachedHosts(create_backend_app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plain", action="store_true", help="moto's own server (werkzeug)")
    args = parser.parse_args(argv)
    if args.plain:
        from moto.server import main as moto_main

        patch_moto()
        moto_main(["-H", args.host, "-p", str(args.port)])
        return
    # moto builds some URLs from it, as its own server sets it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    server = wsgi.Server(
        (args.host, args.port), application(), numthreads=THREADS, request_queue_size=BACKLOG
    )
    # cheroot closes a connection once 10 others wait idle, and every function worker and poller
    # keeps its own: with the default most calls would open a connection again.
    # cheroot's stub types it int; its code reads None as "no limit".
    server.keep_alive_conn_limit = None  # type: ignore[assignment]
    server.start()


if __name__ == "__main__":
    main()
