"""Every Redis key of the burst buffer, built here and nowhere else.

Cluster layout: an organization maps to one of ``SLUICE_MOLLIFIER_SHARDS`` shards
(``crc32(orgId) % shards``) and every key of that organization carries the shard's hash tag
``{mollifier:<shard>}``, so all keys one Lua call touches (an entry, its environment's queue,
the shard's rotation rings, the draining set, the idempotency lookup, the trip counters) sit in one
cluster slot. Every variable segment is base64url without padding: its alphabet has no ``:``,
``{`` or ``}``, so a customer string can neither alias another key nor move a key to another slot.

Per shard ``S`` (``T = {mollifier:S}``):

- ``T:entry:<run>`` HASH, one buffered run (fields in ``models.BufferEntry``).
- ``T:queue:<org>:<env>`` LIST of run ids (two organizations may both name an environment
  ``prod``); accept LPUSHes, pop takes the RPOP end, requeue RPUSHes.
- ``T:org-envs:<org>`` LIST, ring of the organization's environments with queued entries.
- ``T:orgs`` LIST, ring of the shard's organizations with queued entries.
- ``T:draining`` ZSET run id -> pop time (ms).
- ``T:idempotency:<tenant>:<task>:<key>`` STRING, the buffered run that owns an idempotency key.
- ``T:claim:<tenant>:<task>:<key>`` STRING, ``pending:<token>`` then the winning run id (with TTL).
- ``T:rate:<tenant>`` / ``T:tripped:<tenant>`` STRING, the trip evaluator's window counter and hold.

``<tenant>`` is ``sluice.auth.tenant_key(org, env)`` (``<org>/<env>``), base64url like every segment.
- ``T:slot-guard`` never written: ``pop_batch.lua`` declares it so that Redis refuses the script
  while the shard's slot migrates (see ``MollifierBuffer.pop_batch``).

``pop_batch.lua`` builds the entry, queue and org-envs keys itself, as ``prefix .. base64url(id)``
(a queue: ``prefix .. base64url(org) .. ':' .. base64url(env)``)
with the prefixes from ``ShardKeys.script_prefixes`` (its ``b64`` is this module's ``b64``; a
test holds them to the same output).

Outside the shards, single-key state of the stale sweep (no script touches it):
``mollifier:sweep:cursor`` (next shard) and ``mollifier:sweep:stats`` (HASH shard -> last figures).
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass

SWEEP_CURSOR = "mollifier:sweep:cursor"
SWEEP_STATS = "mollifier:sweep:stats"


def b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).rstrip(b"=").decode("ascii")


def shard_of(org_id: str, shards: int) -> int:
    """The organization's shard: crc32 because it is the same in every process (``hash()`` is not)."""
    return zlib.crc32(org_id.encode("utf-8")) % shards


@dataclass(frozen=True)
class ShardKeys:
    shard: int

    @property
    def tag(self) -> str:
        return f"{{mollifier:{self.shard}}}"

    @property
    def orgs(self) -> str:
        return f"{self.tag}:orgs"

    @property
    def draining(self) -> str:
        return f"{self.tag}:draining"

    @property
    def slot_guard(self) -> str:
        return f"{self.tag}:slot-guard"

    def _prefix(self, kind: str) -> str:
        return f"{self.tag}:{kind}:"

    def entry(self, run_id: str) -> str:
        return self._prefix("entry") + b64(run_id)

    def queue(self, org_id: str, env_id: str) -> str:
        return f"{self._prefix('queue')}{b64(org_id)}:{b64(env_id)}"

    def org_envs(self, org_id: str) -> str:
        return self._prefix("org-envs") + b64(org_id)

    def script_prefixes(self) -> list[str]:
        """The entry, queue and org-envs prefixes, for a script that builds those keys itself."""
        return [self._prefix("entry"), self._prefix("queue"), self._prefix("org-envs")]

    def idempotency(self, tenant: str, task_id: str, key: str) -> str:
        return f"{self.tag}:idempotency:{b64(tenant)}:{b64(task_id)}:{b64(key)}"

    def claim(self, tenant: str, task_id: str, key: str) -> str:
        return f"{self.tag}:claim:{b64(tenant)}:{b64(task_id)}:{b64(key)}"

    def rate(self, tenant: str) -> str:
        return f"{self.tag}:rate:{b64(tenant)}"

    def tripped(self, tenant: str) -> str:
        return f"{self.tag}:tripped:{b64(tenant)}"
