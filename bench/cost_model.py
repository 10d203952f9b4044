"""AWS cost per million triggers (plain, keyed, buffered), per million batch items, per million
stream chunks and per hour of an open SSE connection, from figures measured in this run.

Measured here (this tree): the AWS calls, DynamoDB writes and WCU per run of each path from trigger
to RunQueue, and the dispatcher's CPU per run (``bench.engine_calls``); trigger_intake's CPU per
trigger with AWS stubbed (``bench.handler_cpu``). Modelled: each AWS call's latency (the
``engine_calls`` table), which a function is billed for while it waits; the drainer's and
batch_runs' batches (10 runs, their creates side by side); and a stream chunk as one HTTP append
of one Redis call. Prices are list prices, us-east-1, arm64, on demand, without free tiers,
printed beside the result; change PRICES to price another region. RunQueue's consumers (the
workers) and the Redis node (a fixed hourly cost) are not part of a trigger's price.

    .venv/bin/python -m bench.cost_model
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

from bench import engine_calls, handler_cpu

PRICES = {
    "API Gateway HTTP API, per million requests": 1.00,
    "Lambda, per million requests": 0.20,
    "Lambda arm64, per GB-second": 0.0000133334,
    "DynamoDB on demand, per million write request units": 0.625,
    "DynamoDB on demand, per million read request units": 0.125,
    "SQS standard, per million requests (64 KB chunks)": 0.40,
    "S3 PUT, per million requests": 5.00,
    "X-Ray, per million traces recorded": 5.00,
    "Lambda response streaming, per GB streamed": 0.008,
}
MEMORY_GB = 0.5  # template.yaml's Globals MemorySize: 512
# X-Ray's default sampling: one request a second and 5% of the rest; at scale, 5% of requests.
TRACED = 0.05
DISPATCH_BATCH = engine_calls.DISPATCH_BATCH
SIGNAL_BATCH = 10  # DrainQueue's and BatchItemQueue's BatchSize
BATCH_ITEMS = engine_calls.BATCH_ITEMS
SSE_CHUNK_BYTES = 200  # one streamed chunk as an SSE event, with its id
SSE_CHUNKS_PER_S = 5  # an active reader's rate, for the streaming-bytes line
REDIS_CALL_MS = engine_calls.REDIS_MS
SQS_BATCH = 10  # a SendMessageBatch


def _price(name: str) -> float:
    return PRICES[name] / 1e6 if "per million" in name else PRICES[name]


def lambda_cost(invocations: float, ms: float) -> float:
    """``invocations`` of ``ms`` each (billed by the millisecond)."""
    return invocations * (
        _price("Lambda, per million requests") + ms / 1000 * MEMORY_GB * _price("Lambda arm64, per GB-second")
    )


def aws_cost(calls: dict[str, float], wcu: float) -> dict[str, float]:
    sqs = sum(n for op, n in calls.items() if op in ("SendMessage", "SendMessageBatch"))
    reads = calls.get("GetItem", 0.0)
    return {
        "DynamoDB": wcu * _price("DynamoDB on demand, per million write request units")
        + reads * _price("DynamoDB on demand, per million read request units"),
        "SQS": sqs * _price("SQS standard, per million requests (64 KB chunks)"),
        "S3": calls.get("PutObject", 0.0) * _price("S3 PUT, per million requests"),
    }


def model_ms(calls: dict[str, float]) -> float:
    return sum(engine_calls.COST_MS.get(op, 5.0) * n for op, n in calls.items())


def per_run(
    paths: dict[str, Any], dispatcher_ms: float, trigger_cpu: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Dollars per run of each path, by service. The measured path dispatched its own runs (one
    SendMessageBatch for a path of one run); a deployed dispatcher sends ten to a SendMessageBatch,
    so its share is put in at that rate."""
    sqs_request = _price("SQS standard, per million requests (64 KB chunks)")
    dispatch = {"SendMessageBatch": 1 / SQS_BATCH}
    dispatch_lambda = lambda_cost(1 / DISPATCH_BATCH, DISPATCH_BATCH * (dispatcher_ms + model_ms(dispatch)))
    out: dict[str, dict[str, float]] = {}
    for name, path in paths.items():
        if name.startswith("retry"):
            continue
        calls = dict(path["calls"])
        measured_dispatch = math.ceil(path["runs"] / SQS_BATCH) / path["runs"]
        calls["SendMessageBatch"] = (
            calls.get("SendMessageBatch", 0.0) - measured_dispatch + dispatch["SendMessageBatch"]
        )
        own = {op: n for op, n in calls.items() if op != "SendMessageBatch"}
        costs = aws_cost(calls, path["wcu"])
        requests = 1.0  # API requests per run
        if name.startswith("buffered"):
            # The trigger (accept: ~3 Redis calls, its drain signal), the drainer's share of a
            # batch of 10 (its receive and delete are two more SQS requests a batch).
            lambdas = lambda_cost(1, trigger_cpu["plain"] + model_ms({"SendMessage": 1}) + 3 * REDIS_CALL_MS)
            lambdas += lambda_cost(1 / SIGNAL_BATCH, trigger_cpu["plain"] * SIGNAL_BATCH + model_ms(own))
            costs["SQS"] += (1 + 2 / SIGNAL_BATCH) * sqs_request
            invocations = 1 + 1 / SIGNAL_BATCH
        elif name.startswith("batch item"):
            # A phase-2 request of BATCH_ITEMS items (about half a trigger's CPU an item), and
            # batch_runs' share of a batch of 10 (receive and delete: two SQS requests a batch).
            requests = 1 / BATCH_ITEMS
            lambdas = lambda_cost(1 / BATCH_ITEMS, trigger_cpu["plain"] * BATCH_ITEMS / 2)
            lambdas += lambda_cost(
                1 / SIGNAL_BATCH, (trigger_cpu["plain"] + model_ms({"PutItem": 1})) * SIGNAL_BATCH
            )
            costs["SQS"] += 2 / SIGNAL_BATCH * sqs_request
            invocations = 1 / BATCH_ITEMS + 1 / SIGNAL_BATCH
        else:
            key = "keyed" if "key" in name else "plain"
            lambdas = lambda_cost(1, trigger_cpu[key] + model_ms(own))
            invocations = 1.0
        costs["Lambda"] = lambdas + dispatch_lambda
        costs["API Gateway"] = requests * _price("API Gateway HTTP API, per million requests")
        traces = invocations + 1 / DISPATCH_BATCH
        costs["X-Ray"] = TRACED * traces * _price("X-Ray, per million traces recorded")
        out[name] = costs
    return out


def stream_costs(trigger_cpu: float) -> tuple[dict[str, float], dict[str, float]]:
    """A chunk appended over the HTTP API (one Redis call), and an hour of a streamed SSE read
    (the Function URL's Lambda runs while the connection is open: 15-minute connections)."""
    chunk = {
        "API Gateway": _price("API Gateway HTTP API, per million requests"),
        "Lambda": lambda_cost(1, trigger_cpu + REDIS_CALL_MS),
        "X-Ray": TRACED * _price("X-Ray, per million traces recorded"),
    }
    streamed_gb = SSE_CHUNK_BYTES * SSE_CHUNKS_PER_S * 3600 / 1e9
    hour = {
        "Lambda": lambda_cost(4, 3600_000 / 4),
        "Streaming": streamed_gb * _price("Lambda response streaming, per GB streamed"),
    }
    return chunk, hour


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        calls = engine_calls.child()
        cpu = handler_cpu.child()
    trigger_cpu = {k: v["total_ms"] for k, v in cpu.items()}
    runs = per_run(calls["paths"], calls["dispatcher_cpu_ms"], trigger_cpu)
    chunk, hour = stream_costs(trigger_cpu["plain"])
    services = ["API Gateway", "Lambda", "DynamoDB", "SQS", "S3", "X-Ray", "Streaming"]
    print("Price table (us-east-1, arm64, on demand, no free tier):")
    for name, price in PRICES.items():
        print(f"  {name:<58} ${price:g}")
    print(
        f"\nMeasured: trigger_intake CPU {trigger_cpu['plain']:.2f} ms (keyed {trigger_cpu['keyed']:.2f}), "
        f"dispatcher CPU {calls['dispatcher_cpu_ms']:.3f} ms per run; Lambda at {MEMORY_GB * 1024:.0f} MB"
    )
    print(f"\n{'USD':<44}" + "".join(f"{s:>12}" for s in services) + f"{'total':>10}")
    rows = [(f"per million: {name}", {k: v * 1e6 for k, v in c.items()}) for name, c in runs.items()]
    rows += [("per million stream chunks", {k: v * 1e6 for k, v in chunk.items()})]
    rows += [("per hour of an open SSE read", hour)]
    for label, costs in rows:
        cells = "".join(f"{costs.get(s, 0.0):>12.4f}" for s in services)
        print(f"{label:<44}{cells}{sum(costs.values()):>10.3f}")


if __name__ == "__main__":
    main()
