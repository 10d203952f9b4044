"""A throwaway three-node Redis Cluster from redis-server binaries, as ElastiCache cluster mode runs.

Three primaries, no replicas, on free loopback ports; ``redis-cli --cluster create`` assigns the
16384 slots. Used by the cluster-marked tests and available to devstack.
"""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
from dataclasses import dataclass, field

import redis
import redis.cluster

from devstack.services import Service, start_redis, wait_until

NODES = 3
# A node also listens on its port + 10000 for the cluster bus, so its port must leave room for it.
MAX_CLUSTER_PORT = 55535


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port > MAX_CLUSTER_PORT:
            port = 20000 + port % (MAX_CLUSTER_PORT - 20000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@dataclass
class RedisCluster:
    nodes: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node's URL: a cluster client discovers the others from it."""
        return self.nodes[0].url

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster.from_url(self.url, decode_responses=True)

    def flushall(self) -> None:
        for node in self.nodes:
            client = redis.Redis.from_url(node.url)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_ok(url: str) -> bool:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        info: dict[str, str] = client.cluster("INFO")  # redis-py parses CLUSTER INFO's lines
        return info.get("cluster_state") == "ok"
    finally:
        client.close()


def start_cluster() -> RedisCluster:
    """Start the nodes, join them into one cluster, and wait until every slot is served."""
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise RuntimeError(
            "redis-cli was not found on PATH; it ships with redis-server (apt-get install redis-server)"
        )
    cluster = RedisCluster()
    try:
        for _ in range(NODES):
            port = _cluster_port()
            cluster.nodes.append(
                start_redis(
                    port,
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            )
        addresses = [node.url.removeprefix("redis://").removesuffix("/0") for node in cluster.nodes]
        subprocess.run(
            [redis_cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in cluster.nodes:
            wait_until(functools.partial(_cluster_ok, node.url), 30, f"cluster node {node.url}")
    except BaseException:
        cluster.stop()
        raise
    return cluster
