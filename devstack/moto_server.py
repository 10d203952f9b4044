"""devstack's moto: moto's own AWS emulation behind a keep-alive HTTP server.

``python -m devstack.moto_server --port N`` serves the same WSGI application as moto's
``moto_server`` command, with changes that concern the emulator's cost only, never what an
emulated service answers:

- DynamoDB writes are serialised (``devstack.moto_atomic``), as DynamoDB's are atomic.
- cheroot serves it instead of werkzeug's development server, which closes the connection after
  every response (so each boto3 call opened a TCP connection and moto a thread) and logs every
  request. cheroot keeps connections alive and logs nothing per request; of the keep-alive
  servers tried (waitress, cheroot, granian) it cost moto the least CPU per call.
- The host -> backend lookup is cached: moto matches every request's host against the URL
  patterns of all its services (hundreds of regexes, under a global lock) to find the backend
  that a local endpoint's requests always name the same way.
- Which actions a response class has is worked out once per class, not on every request.
- ReceiveMessage reads a queue's retention period directly: moto computes every attribute of the
  queue for it, once per message received, and three of those walk every message of the queue,
  so a receive's cost grew with the square of the queue's depth and a burst outran the consumer.

``bench/devstack_load.py`` prints moto's CPU per trigger for both servers, side by side.
``--plain`` serves moto's own server instead (werkzeug, with only the serialised writes):
``devstack up --moto-server plain`` uses it to tell a devstack problem from a moto one.
"""

from __future__ import annotations

import argparse
import os
from functools import cache, lru_cache
from typing import Any

import moto.core.responses
from cheroot import wsgi
from moto.core.utils import method_names_from_class, unix_time
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.models import Message, SQSBackend

from devstack.moto_atomic import serialise_dynamodb

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


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's rule (a message lives until sent + MessageRetentionPeriod), reading that one
    attribute instead of computing all of them."""
    retention_s = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    return bool(retention_s + message.sent_timestamp / 1000 > unix_time())  # type: ignore[operator]


def application() -> DomainDispatcherApplication:
    """moto's WSGI application with devstack's changes applied to this process's moto."""
    serialise_dynamodb()
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
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

        serialise_dynamodb()
        moto_main(["-H", args.host, "-p", str(args.port)])
        return
    # moto builds some URLs from it, as its own server sets it.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    server = wsgi.Server(
        (args.host, args.port), application(), numthreads=THREADS, request_queue_size=BACKLOG
    )
    # cheroot closes a connection once 10 others wait idle, and every function worker and poller
    # keeps its own: with the default most calls would open a connection again.
    server.keep_alive_conn_limit = None
    server.start()


if __name__ == "__main__":
    main()
