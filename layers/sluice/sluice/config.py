"""Typed settings, read once per process from ``SLUICE_*`` environment variables.

Every setting has a default that works on the local stack; template.yaml supplies the deployed
values. The README's settings table documents each one.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

KIB = 1024
MIB = 1024 * KIB


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore", frozen=True)

    stage: str = "dev"

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    # Lambda answers within API Gateway's 30 s, so a Redis call must give up long before that;
    # every Redis use in Sluice has a fail-open or retry path for a timeout.
    redis_socket_timeout_ms: int = Field(default=500, ge=10)
    redis_connect_timeout_ms: int = Field(default=1000, ge=10)
    redis_retries: int = Field(default=2, ge=0)

    # --- AWS resources (template.yaml fills these) --------------------------------------------
    api_keys_table: str = "sluice-api-keys"
    runs_table: str = "sluice-runs"
    idempotency_table: str = "sluice-idempotency"
    run_queue_url: str = ""
    payload_bucket: str = "sluice-payloads"
    aws_connect_timeout_s: float = Field(default=2.0, gt=0)
    aws_read_timeout_s: float = Field(default=5.0, gt=0)
    aws_max_attempts: int = Field(default=4, ge=1)

    # --- Triggers -----------------------------------------------------------------------------
    # The largest payload a trigger may carry (the reference platform's limit is 3 MiB).
    max_payload_bytes: int = Field(default=3 * MIB, ge=1)
    # Payloads above this go to S3; it stays well under DynamoDB's 400 KB item limit so that the
    # rest of the run record always fits beside an inline payload.
    payload_offload_bytes: int = Field(default=256 * KIB, ge=1)
    # How long an idempotency key holds when the trigger gives no idempotencyKeyTTL (the
    # reference platform's default is 30 days).
    idempotency_default_ttl: str = "30d"
    idempotency_key_max_chars: int = Field(default=2048, ge=1)
    max_tags: int = Field(default=10, ge=0)

    # --- Auth ---------------------------------------------------------------------------------
    # A resolved API key is cached this long per process, so a warm function does not read
    # DynamoDB on every request; a revoked key stops working within this time.
    auth_cache_ttl_s: float = Field(default=30.0, ge=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def reload_settings() -> Settings:
    """Drop the cached settings (tests and devstack change the environment between uses)."""
    get_settings.cache_clear()
    return get_settings()
