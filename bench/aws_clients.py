"""What a cold start pays for its AWS clients: CPU to make DynamoDB, SQS and S3 clients, each in
a boto3 Session of its own (sluice.aws before), from one session (sluice.aws now), and after
botocore's models were parsed as devstack's forkserver parses them before it forks a worker.
Each figure in a fresh interpreter, so that nothing is parsed already. Prints figures and ratios;
never passes or fails on speed.

    .venv/bin/python -m bench.aws_clients
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

SERVICES = ("dynamodb", "sqs", "s3")
ROUNDS = 5
OPTIONS = {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:9"}


def own_sessions() -> float:
    import boto3

    start = time.process_time()
    for service in SERVICES:
        boto3.session.Session().client(service, **OPTIONS)  # type: ignore[call-overload]
    return time.process_time() - start


def one_session() -> float:
    import boto3

    start = time.process_time()
    session = boto3.session.Session()
    for service in SERVICES:
        session.client(service, **OPTIONS)  # type: ignore[call-overload]
    return time.process_time() - start


def _in_fresh_process(measure: str, preload: bool, results: multiprocessing.Queue[float]) -> None:
    if preload:
        from devstack.botocore_models import preload as parse_models

        parse_models()
    results.put(globals()[measure]())


def cpu_ms(measure: str, preload: bool = False) -> float:
    """The median of ``ROUNDS`` fresh interpreters."""
    context = multiprocessing.get_context("spawn")
    samples = []
    for _ in range(ROUNDS):
        results: multiprocessing.Queue[float] = context.Queue()
        process = context.Process(target=_in_fresh_process, args=(measure, preload, results))
        process.start()
        samples.append(results.get(timeout=120) * 1000)
        process.join()
    return statistics.median(samples)


def main() -> None:
    rows = [
        ("a session per client (before)", cpu_ms("own_sessions")),
        ("one session (sluice.aws)", cpu_ms("one_session")),
        ("one session, models preloaded (devstack worker)", cpu_ms("one_session", preload=True)),
    ]
    base = rows[0][1]
    print(f"CPU to make {', '.join(SERVICES)} clients in a new process (median of {ROUNDS})")
    print(f"{'how':<50} {'CPU ms':>8} {'vs before':>10}")
    for name, ms in rows:
        print(f"{name:<50} {ms:>8.0f} {ms / base:>9.2f}x")


if __name__ == "__main__":
    main()
