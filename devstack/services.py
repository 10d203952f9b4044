"""Local services that devstack and the tests start: redis-server and moto's HTTP server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis

REDIS_MISSING = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`, "
    "macOS: `brew install redis`), or point REDIS_URL at a running Redis."
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float, what: str) -> None:
    """Until ``url`` answers without a 5xx, through one client: a client for each try loaded the
    CA bundle each time (~34 ms of CPU, ~0.6 s of a stack's start)."""
    with httpx.Client(timeout=1, verify=False) as http:
        wait_until(lambda: http.get(url).status_code < 500, timeout, what)


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # any failure means "not up yet"
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s: {last}")


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes] | None
    workdir: Path | None = None

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(REDIS_MISSING)
    return binary


def start_redis(port: int | None = None, extra_args: list[str] | None = None) -> Service:
    """A throwaway redis-server on a free loopback port that keeps nothing on disk."""
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sluice-redis-"))
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        *(extra_args or []),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=0.5)
    try:
        wait_until(client.ping, 10, f"redis-server on port {port}")
    except RuntimeError:
        Service(url, process, workdir).stop()
        raise
    finally:
        client.close()
    return Service(url, process, workdir)


def start_moto(port: int | None = None, *, plain: bool = False) -> Service:
    """moto's HTTP server (devstack.moto_server; ``plain``: moto's own) in a child process: boto3
    talks HTTP to it as it would to AWS."""
    port = port or free_port()
    command = [sys.executable, "-m", "devstack.moto_server", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--plain"] if plain else command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/", 30, "moto server")
    except RuntimeError:
        Service(url, process).stop()
        raise
    return Service(url, process)
