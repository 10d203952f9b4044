"""Create the queues, tables and buckets that template.yaml declares, on moto or LocalStack.

Idempotent: running it against a stack that already has them changes nothing, and an emulator
answering "already exists" (a LocalStack that outlived an earlier stack) is fine. The account id
is the one the SQS endpoint puts in its queue URLs (moto's 123456789012, LocalStack's
000000000000): every ARN resolved afterwards (redrive targets, S3 notifications) carries it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from devstack.endpoints import account_of_queue_url
from devstack.template import Stack

_QUEUE_EXISTS = {"QueueAlreadyExists", "QueueNameExists", "AWS.SimpleQueueService.QueueNameExists"}
_TABLE_EXISTS = {"ResourceInUseException", "TableAlreadyExistsException"}
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# Queue properties that map one-to-one onto SQS queue attributes.
_QUEUE_ATTRIBUTES = {
    "VisibilityTimeout": "VisibilityTimeout",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "DelaySeconds": "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize": "MaximumMessageSize",
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
}


def _attr(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def create_queues(stack: Stack, sqs: Any, endpoint: str) -> dict[str, str]:
    """Create every queue; dead-letter queues first so that redrive policies can name them."""
    queues = stack.resources_of("AWS::SQS::Queue")
    urls: dict[str, str] = {}
    ordered = sorted(queues, key=lambda lid: "RedrivePolicy" in queues[lid].get("Properties", {}))
    for logical_id in ordered:
        props = stack.resolve(queues[logical_id].get("Properties", {}), endpoint)
        attributes = {attr: _attr(props[prop]) for prop, attr in _QUEUE_ATTRIBUTES.items() if prop in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        name = stack.physical_name(logical_id)
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as exc:
            if _code(exc) not in _QUEUE_EXISTS:
                raise
            # Made by an earlier stack with other attributes: use it as it is.
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        urls[logical_id] = url
        stack.account = account_of_queue_url(url) or stack.account
    return urls


def create_tables(stack: Stack, dynamodb: Any) -> None:
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for logical_id, res in stack.resources_of("AWS::DynamoDB::Table").items():
        props = stack.resolve(res.get("Properties", {}))
        name = stack.physical_name(logical_id)
        if name in existing:
            continue
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("LocalSecondaryIndexes"):
            request["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        try:
            dynamodb.create_table(**request)
        except ClientError as exc:
            if _code(exc) not in _TABLE_EXISTS:
                raise
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )


def create_buckets(stack: Stack, s3: Any) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for logical_id, res in stack.resources_of("AWS::S3::Bucket").items():
        name = stack.physical_name(logical_id)
        if name not in existing:
            try:
                s3.create_bucket(Bucket=name)
            except ClientError as exc:
                if _code(exc) not in _BUCKET_EXISTS:
                    raise
        notify_queues(stack, s3, name, res.get("Properties", {}).get("NotificationConfiguration", {}))


def notify_queues(stack: Stack, s3: Any, bucket: str, config: dict[str, Any]) -> None:
    """Apply the template's S3 -> SQS notifications (moto's server then delivers ObjectCreated
    events to the queue itself, as S3 does)."""
    queues = [
        {
            "QueueArn": q["Queue"],
            "Events": [q["Event"]],
            "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
        }
        for q in stack.resolve(config).get("QueueConfigurations", [])
    ]
    if queues:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queues}
        )


def secret_values(stack: Stack) -> dict[str, str]:
    """A random value for each secret, by name, as ``GenerateSecretString`` makes one in AWS."""
    return {
        stack.physical_name(logical_id): secrets.token_urlsafe(48)
        for logical_id in stack.resources_of("AWS::SecretsManager::Secret")
    }


def create_secrets(stack: Stack, secretsmanager: Any, values: Mapping[str, str] | None = None) -> None:
    """Create each secret with its value in ``values`` (by name; a restarted emulator gets the
    values it had, so tokens signed with them stay valid), else a random one."""
    chosen = {**secret_values(stack), **(values or {})}
    for name, value in chosen.items():
        with contextlib.suppress(secretsmanager.exceptions.ResourceExistsException):
            secretsmanager.create_secret(Name=name, SecretString=value)


def create_all(
    stack: Stack, clients: dict[str, Any], endpoint: str, known_secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Create every resource; returns queue URLs by logical id. Secrets are created when
    ``clients`` has a Secrets Manager client (callers that need no stream tokens pass none),
    with the values ``known_secrets`` gives."""
    create_tables(stack, clients["dynamodb"])
    urls = create_queues(stack, clients["sqs"], endpoint)
    create_buckets(stack, clients["s3"])
    if "secretsmanager" in clients:
        create_secrets(stack, clients["secretsmanager"], known_secrets)
    return urls
