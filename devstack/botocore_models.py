"""botocore's parsed models, shared by every session of a process and handed to forked workers.

botocore reads and parses its JSON (a service's API, its endpoint rules, the partitions) for each
Session: ~40 ms of CPU for the first DynamoDB, SQS or S3 client of a session. Every devstack
function worker is a cold start that makes its clients, a test run starts ~100 of them, and the
test process makes new sessions whenever a test changes a client's settings. The files never
change while a process runs: with one loader per process each is parsed once, and a forkserver
that parsed them before it forks hands them to every worker (three clients: 128 -> 25 ms of
CPU, ``bench/aws_clients.py``).
"""

from __future__ import annotations

import functools

import boto3
import botocore.loaders
import botocore.session

# The services the functions make clients for (sluice.aws, Powertools' parameters).
SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")


def share_loader() -> None:
    """Every botocore session of this process uses one loader: botocore has no option for it, and
    its sessions build theirs with this module-level function."""
    create = botocore.loaders.create_loader
    botocore.session.create_loader = functools.cache(create)  # type: ignore[attr-defined]


def preload() -> None:
    """Share the loader and parse every model a function's clients need into it. The clients made
    for it are thrown away: explicit credentials and region, so that nothing of this process's
    environment is resolved and kept for a worker that has its own."""
    share_loader()
    session = boto3.session.Session()
    for service in SERVICES:
        session.client(  # type: ignore[call-overload]
            service,
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="preload",
            aws_secret_access_key="preload",
        )
