"""Tenant administration: organizations, their environments, API keys and organization flags.

The writes behind ``sluice admin`` (authorised by the operator's AWS credentials, never by an API
key) and devstack's ``keys create``. Items of the API keys table (see ``sluice.auth.api_keys``
for the read side):

- ``ORG#<orgId>`` -> ``createdAt``, ``flags`` (JSON text): one organization.
- ``ENV#<orgId>/<envId>`` -> ``orgId``, ``envId``, ``envType``, ``createdAt``: one environment.
- ``KEY#<sha256(key)>`` -> ``orgId``, ``envId``, ``envType``, ``createdAt``, ``tenant``
  (``orgId/envId``), ``keyId``, ``start``, and ``revokedAt`` once revoked: one API key. The
  ``byTenant`` index (``tenant``, ``keyId``) lists an environment's keys and finds one by id.

Keys are stored hashed: only the methods that make one (``create_key``, ``rotate_key``,
``provision_key``) see it, and return it once.
``keyId`` is ``key_`` and 16 hex digits of the hash (naming a key without being one), ``start``
its first four characters after the prefix, so that an operator can tell which key they hold.

A revoked key is refused from its ``revokedAt`` on, by each function once its cached resolution of
the key expires: within ``SLUICE_AUTH_CACHE_TTL_S`` (30 s by default). ``rotate_key`` makes a new key
and sets the old one's ``revokedAt`` in one transaction, ``grace`` after now (default: now), so
that clients can move to the new key before the old one stops working.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from sluice import aws
from sluice.auth.api_keys import ENV_PREFIX, KEY_PREFIX, ORG_PREFIX, hash_key, tenant_key
from sluice.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Ids an operator chooses. Never "/": tenant_key joins the two with it, unambiguously only so.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The reference platform's environment types.
ENV_TYPES = ("DEVELOPMENT", "STAGING", "PREVIEW", "PRODUCTION")
TENANT_INDEX = "byTenant"
KEY_ID_PREFIX = "key_"
_KEY_ID_HEX = 16  # 64 bits of the hash: unique among any table's keys, and no use as a key
_START_CHARS = 4
# update_flags retries when another writer changed the flags between its read and its write.
_FLAG_WRITE_ATTEMPTS = 5


class AdminError(Exception):
    """A tenant administration request that cannot be done as asked."""


class InvalidInput(AdminError, ValueError):
    """An id, environment type or flag that is not valid."""


class AlreadyExists(AdminError):
    """The organization or environment exists already: it is never overwritten."""


class NotFound(AdminError):
    """No such organization, environment or key."""


class AlreadyRevoked(AdminError):
    """The key is revoked already (or is being replaced by a rotation)."""


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as administration shows it: never the key itself."""

    key_id: str
    org_id: str
    env_id: str
    env_type: str
    start: str
    created_at: int
    revoked_at: int | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None or self.revoked_at > now

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "orgId": self.org_id,
            "envId": self.env_id,
            "envType": self.env_type,
            "start": self.start,
            "createdAt": iso_time(self.created_at),
            "revokedAt": None if self.revoked_at is None else iso_time(self.revoked_at),
            "active": self.active(now),
        }


@dataclass(frozen=True)
class NewApiKey:
    api_key: str  # shown once: only its hash is stored
    info: ApiKeyInfo


def iso_time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidInput(f"invalid {kind} id {value!r}: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'")
    return value


def checked_tenant(org_id: str, env_id: str) -> str:
    """``tenant_key`` of two ids that are valid (``InvalidInput`` otherwise)."""
    return tenant_key(check_id("organization", org_id), check_id("environment", env_id))


def check_env_type(value: str) -> str:
    upper = value.upper()
    if upper not in ENV_TYPES:
        raise InvalidInput(f"invalid environment type {value!r}: one of {', '.join(ENV_TYPES)}")
    return upper


def flag_value(text: str) -> Any:
    """A flag's value from a command line: JSON when it parses (``true`` -> True, ``5`` -> 5), else
    the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_id_of(api_key: str) -> str:
    return KEY_ID_PREFIX + hash_key(api_key)[:_KEY_ID_HEX]


def _key_info(item: Mapping[str, Any]) -> ApiKeyInfo:
    revoked = item.get("revokedAt")
    return ApiKeyInfo(
        key_id=item["keyId"]["S"],
        org_id=item["orgId"]["S"],
        env_id=item["envId"]["S"],
        env_type=item.get("envType", {}).get("S", "DEVELOPMENT"),
        start=item.get("start", {}).get("S", ""),
        created_at=int(item["createdAt"]["N"]),
        revoked_at=int(revoked["N"]) if revoked else None,
    )


def _cancellation_codes(exc: ClientError) -> list[str]:
    """What stopped each item of a cancelled transaction ("None" for an item that was fine)."""
    reasons = exc.response.get("CancellationReasons", [])
    return [str(reason.get("Code", "None")) for reason in reasons]


class TenantAdmin:
    """Administration of the API keys table ``table`` through ``dynamodb``.

    Each write is one conditional call (a transaction where it checks another item), so that two
    operators at once never overwrite each other: creating what exists is ``AlreadyExists``.

    Raises (every method): ``InvalidInput``, ``NotFound``, ``AlreadyExists``, ``AlreadyRevoked``
    as each says; an AWS failure (no table, no access, unreachable) as botocore raises it.
    """

    def __init__(
        self, dynamodb: DynamoDBClient, table: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.clock = clock

    @classmethod
    def from_settings(cls) -> TenantAdmin:
        """On the process's table (``SLUICE_API_KEYS_TABLE``) and DynamoDB client."""
        return cls(aws.dynamodb(), get_settings().api_keys_table)

    # --- organizations and environments --------------------------------------------------------

    def create_organization(self, org_id: str) -> None:
        item = {**self._org_key(org_id), "createdAt": self._now(), "flags": {"S": "{}"}}
        if self._put_new(item) is not None:
            raise AlreadyExists(f"organization {org_id} exists already")

    def create_environment(self, org_id: str, env_id: str, env_type: str = "DEVELOPMENT") -> None:
        item = self._env_item(org_id, env_id, check_env_type(env_type))
        try:
            self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": self._org_key(org_id),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            codes = _cancellation_codes(exc)
            if codes[:1] == ["ConditionalCheckFailed"]:
                raise NotFound(f"no organization {org_id}: create it first") from exc
            if codes[1:2] == ["ConditionalCheckFailed"]:
                raise AlreadyExists(f"environment {env_id} of organization {org_id} exists already") from exc
            raise

    # --- API keys ------------------------------------------------------------------------------

    def create_key(self, org_id: str, env_id: str) -> NewApiKey:
        """A new key for the environment."""
        env = self._environment(org_id, env_id)
        return self._put_key(org_id, env_id, env["envType"]["S"])

    def provision_key(
        self, org_id: str, env_id: str, env_type: str = "DEVELOPMENT", *, flags: dict[str, Any] | None = None
    ) -> NewApiKey:
        """A new key for the environment, making the organization and the environment first when
        they do not exist (devstack's ``keys create``, tests): three puts when they do not, no
        transaction (moto copies every table for one). ``flags`` replace the organization's. An
        existing environment of another type is ``InvalidInput``."""
        checked_tenant(org_id, env_id)
        env_type = check_env_type(env_type)
        org = {**self._org_key(org_id), "createdAt": self._now(), "flags": {"S": json.dumps(flags or {})}}
        if self._put_new(org) is not None and flags is not None:
            self.update_flags(org_id, flags, replace=True)
        existing = self._put_new(self._env_item(org_id, env_id, env_type))
        if existing is not None and existing["envType"]["S"] != env_type:
            raise InvalidInput(
                f"environment {env_id} of organization {org_id} is {existing['envType']['S']}, not {env_type}"
            )
        return self._put_key(org_id, env_id, env_type)

    def list_keys(self, org_id: str, env_id: str) -> list[ApiKeyInfo]:
        """The environment's keys, revoked ones included, oldest first."""
        items = list(self._query_keys(org_id, env_id))
        if not items:
            self._environment(org_id, env_id)  # an environment that does not exist is no empty list
        return sorted((_key_info(item) for item in items), key=lambda info: (info.created_at, info.key_id))

    def revoke_key(self, org_id: str, env_id: str, key_id: str) -> ApiKeyInfo:
        """Revoke the key now (also one whose rotation's grace runs: it stops now)."""
        item = self._key_item(org_id, env_id, key_id)
        now = self._now()
        try:
            answer = self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": item["pk"]},
                UpdateExpression="SET revokedAt = :now",
                ConditionExpression=(
                    "tenant = :tenant AND (attribute_not_exists(revokedAt) OR revokedAt > :now)"
                ),
                ExpressionAttributeValues={":now": now, ":tenant": {"S": tenant_key(org_id, env_id)}},
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                old = cast("Mapping[str, Any]", exc.response.get("Item") or item)
                was = _key_info(old).revoked_at
                raise AlreadyRevoked(f"key {key_id} is revoked already, since {iso_time(was or 0)}") from exc
            raise
        return _key_info(answer["Attributes"])

    def rotate_key(
        self, org_id: str, env_id: str, key_id: str, *, grace: timedelta = timedelta(0)
    ) -> tuple[NewApiKey, ApiKeyInfo]:
        """A new key for the environment of key ``key_id``, and that key revoked ``grace`` from now,
        both or neither. A key already revoked, or already rotated, is refused."""
        old_item = self._key_item(org_id, env_id, key_id)
        old = _key_info(old_item)
        if old.revoked_at is not None:
            raise AlreadyRevoked(
                f"key {key_id} is revoked already (or rotated): rotate the key that replaced it"
            )
        new, new_item = self._new_key_item(org_id, env_id, old.env_type)
        revoked_at = int(self.clock() + grace.total_seconds())
        try:
            self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": new_item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": old_item["pk"]},
                            "UpdateExpression": "SET revokedAt = :at",
                            "ConditionExpression": "tenant = :tenant AND attribute_not_exists(revokedAt)",
                            "ExpressionAttributeValues": {
                                ":at": {"N": str(revoked_at)},
                                ":tenant": {"S": tenant_key(org_id, env_id)},
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _cancellation_codes(exc)[1:2] == ["ConditionalCheckFailed"]:
                raise AlreadyRevoked(f"key {key_id} was revoked or rotated meanwhile") from exc
            raise
        return new, dataclasses.replace(old, revoked_at=revoked_at)

    # --- organization flags ----------------------------------------------------------------------

    def get_flags(self, org_id: str) -> dict[str, Any]:
        return _flags_of(self._organization(org_id))

    def update_flags(
        self,
        org_id: str,
        values: Mapping[str, Any] | None = None,
        *,
        unset: Iterable[str] = (),
        replace: bool = False,
    ) -> dict[str, Any]:
        """Set ``values`` (and remove ``unset``) in the organization's flags, keeping the others;
        with ``replace``, the flags become ``values``. Returns the flags as stored."""
        values = dict(values or {})
        unset = list(unset)
        for name in [*values, *unset]:
            if not isinstance(name, str) or not name:
                raise InvalidInput(f"invalid flag name {name!r}")
        for _ in range(_FLAG_WRITE_ATTEMPTS):
            if replace:
                old_text, flags = None, values
            else:
                item = self._organization(org_id)
                old_text = item.get("flags", {}).get("S")
                flags = {**_flags_of(item), **values}
                for name in unset:
                    flags.pop(name, None)
            if self._write_flags(org_id, flags, old_text, replace=replace):
                return flags
        raise AdminError(f"the flags of organization {org_id} kept changing while being written; try again")

    def _write_flags(
        self, org_id: str, flags: dict[str, Any], old_text: str | None, *, replace: bool
    ) -> bool:
        """Whether the write won: ``old_text`` must still be the stored flags (unless ``replace``)."""
        condition, values = "attribute_exists(pk)", {":flags": {"S": json.dumps(flags)}}
        if not replace:
            if old_text is None:
                condition += " AND attribute_not_exists(flags)"
            else:
                condition += " AND flags = :old"
                values[":old"] = {"S": old_text}
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._org_key(org_id),
                UpdateExpression="SET flags = :flags",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ConditionalCheckFailedException":
                raise
            if not exc.response.get("Item"):
                raise NotFound(f"no organization {org_id}") from exc
            return False
        return True

    # --- reads ---------------------------------------------------------------------------------------

    def _now(self) -> dict[str, str]:
        return {"N": str(int(self.clock()))}

    def _org_key(self, org_id: str) -> dict[str, Any]:
        return {"pk": {"S": ORG_PREFIX + check_id("organization", org_id)}}

    def _organization(self, org_id: str) -> dict[str, Any]:
        item = self.dynamodb.get_item(
            TableName=self.table, Key=self._org_key(org_id), ConsistentRead=True
        ).get("Item")
        if item is None:
            raise NotFound(f"no organization {org_id}")
        return dict(item)

    def _environment(self, org_id: str, env_id: str) -> dict[str, Any]:
        key = {"pk": {"S": ENV_PREFIX + checked_tenant(org_id, env_id)}}
        item = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise NotFound(f"no environment {env_id} in organization {org_id}: create it first")
        return dict(item)

    def _query_keys(self, org_id: str, env_id: str, key_id: str | None = None) -> Iterable[dict[str, Any]]:
        condition, values = "tenant = :tenant", {":tenant": {"S": checked_tenant(org_id, env_id)}}
        if key_id is not None:
            condition += " AND keyId = :key"
            values[":key"] = {"S": key_id}
        pages = self.dynamodb.get_paginator("query").paginate(
            TableName=self.table,
            IndexName=TENANT_INDEX,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        for page in pages:
            yield from page.get("Items", [])

    def _key_item(self, org_id: str, env_id: str, key_id: str) -> dict[str, Any]:
        found = next(iter(self._query_keys(org_id, env_id, key_id)), None)
        if found is None:
            raise NotFound(f"no key {key_id} in environment {env_id} of organization {org_id}")
        return found

    def _put_key(self, org_id: str, env_id: str, env_type: str) -> NewApiKey:
        new, item = self._new_key_item(org_id, env_id, env_type)
        if self._put_new(item) is not None:  # 192 random bits met a key again: nothing to retry
            raise AlreadyExists("that API key exists already")
        return new

    def _put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Write ``item`` unless its key exists: None when written, else the item that exists."""
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if aws.error_code(exc) == "ConditionalCheckFailedException":
                return cast("dict[str, Any]", exc.response.get("Item") or {})
            raise
        return None

    def _env_item(self, org_id: str, env_id: str, env_type: str) -> dict[str, Any]:
        return {
            "pk": {"S": ENV_PREFIX + checked_tenant(org_id, env_id)},
            "orgId": {"S": org_id},
            "envId": {"S": env_id},
            "envType": {"S": env_type},
            "createdAt": self._now(),
        }

    def _new_key_item(self, org_id: str, env_id: str, env_type: str) -> tuple[NewApiKey, dict[str, Any]]:
        prefix = "sk_prod_" if env_type == "PRODUCTION" else "sk_dev_"
        api_key = prefix + secrets.token_urlsafe(24)
        info = ApiKeyInfo(
            key_id=key_id_of(api_key),
            org_id=org_id,
            env_id=env_id,
            env_type=env_type,
            start=api_key[: len(prefix) + _START_CHARS],
            created_at=int(self.clock()),
        )
        item = {
            "pk": {"S": KEY_PREFIX + hash_key(api_key)},
            "orgId": {"S": org_id},
            "envId": {"S": env_id},
            "envType": {"S": env_type},
            "createdAt": {"N": str(info.created_at)},
            "tenant": {"S": tenant_key(org_id, env_id)},
            "keyId": {"S": info.key_id},
            "start": {"S": info.start},
        }
        return NewApiKey(api_key, info), item


def _flags_of(item: Mapping[str, Any]) -> dict[str, Any]:
    flags = json.loads(item["flags"]["S"]) if "flags" in item else {}
    return flags if isinstance(flags, dict) else {}


# --- the local stack's and the tests' shortcut -----------------------------------------------------


def provision_key(
    org_id: str,
    env_id: str,
    *,
    env_type: str = "DEVELOPMENT",
    flags: dict[str, Any] | None = None,
) -> str:
    """An API key for ``env_id`` of ``org_id`` (``TenantAdmin.provision_key`` on the process's table),
    returned the only time it is seen."""
    return TenantAdmin.from_settings().provision_key(org_id, env_id, env_type, flags=flags).api_key


def set_org_flags(org_id: str, flags: dict[str, Any]) -> None:
    """Replace the organization's flags."""
    TenantAdmin.from_settings().update_flags(org_id, flags, replace=True)
