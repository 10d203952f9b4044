"""CPU per TransactWriteItems on moto in-process as the table's stream grows, with moto as it is
and with devstack.moto_atomic's light rollback state, side by side in one run.

moto never trims a stream, and its transaction deep-copied the table with every record the table
had ever streamed: devstack's moto server and the tests' session-long moto world pay that on
every trigger.

    .venv/bin/python -m bench.moto_transactions
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from devstack.moto_atomic import patch_moto

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

STREAM_RECORDS = (0, 1000, 3000)
TRANSACTIONS = 20


def _table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _put(key: str) -> TransactWriteItemTypeDef:
    return {"Put": {"TableName": "runs", "Item": {"pk": {"S": key}}}}


def cpu_ms_per_transaction() -> dict[int, float]:
    """ms of CPU per two-item transaction after the table streamed each of STREAM_RECORDS."""
    results: dict[int, float] = {}
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client, "runs")
        client.transact_write_items(TransactItems=[_put("warm-up")])  # botocore's first-call work, untimed
        streamed, n = 1, 0
        for records in STREAM_RECORDS:
            while streamed < records:  # one item updated again and again: the table stays small
                client.put_item(TableName="runs", Item={"pk": {"S": "hot"}, "v": {"N": str(streamed)}})
                streamed += 1
            started = time.process_time()
            for _ in range(TRANSACTIONS):
                client.transact_write_items(TransactItems=[_put(f"k{n}-{i}") for i in (0, 1)])
                n += 1
            streamed += 2 * TRANSACTIONS
            results[records] = (time.process_time() - started) * 1000 / TRANSACTIONS
    return results


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    before = cpu_ms_per_transaction()
    patch_moto()
    after = cpu_ms_per_transaction()
    print(f"{'records streamed':>17} {'moto':>9} {'moto_atomic':>12} {'ratio':>6}")
    for records in STREAM_RECORDS:
        ratio = before[records] / after[records]
        print(f"{records:>17} {before[records]:>7.1f}ms {after[records]:>10.1f}ms {ratio:>5.1f}x")


if __name__ == "__main__":
    main()
