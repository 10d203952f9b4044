"""Write tokens: only a genuine, unexpired token made for this stream and environment writes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from sluice import streams
from sluice.auth import Environment
from sluice.streams import InvalidStreamToken, StreamAddress
from sluice.streams.tokens import mint_token, signing_secret, verify_token
from tests.conftest import make_tenant
from tests.unit.streams.conftest import StreamsApi, new_run

ADDRESS = StreamAddress.run("run_1", "out")
ENV_A = Environment(org_id="org_a", env_id="env_a")


def test_a_minted_token_verifies_for_its_stream(api: StreamsApi) -> None:
    claims = verify_token(mint_token(ENV_A, ADDRESS, int(time.time()) + 60), ADDRESS)
    assert (claims.org_id, claims.env_id, claims.address) == ("org_a", "env_a", ADDRESS)
    assert claims.tenant == ENV_A.tenant


@pytest.mark.parametrize(
    ("address", "expires_in"),
    [
        (StreamAddress.run("run_2", "out"), 60),  # wrong run
        (StreamAddress.run("run_1", "log"), 60),  # wrong key
        (StreamAddress("session", "run_1", "out"), 60),  # not a run stream
        (ADDRESS, -1),  # expired
    ],
)
def test_a_token_for_another_stream_or_expired_is_refused(
    api: StreamsApi, address: StreamAddress, expires_in: int
) -> None:
    token = mint_token(ENV_A, ADDRESS, int(time.time()) + expires_in)
    with pytest.raises(InvalidStreamToken):
        verify_token(token, address)


def test_a_forged_or_tampered_token_is_refused(api: StreamsApi) -> None:
    genuine = mint_token(ENV_A, ADDRESS, int(time.time()) + 60)
    forged = mint_token(ENV_A, ADDRESS, int(time.time()) + 60, secret=b"guessed")
    prefix, claims, signature = genuine.split(".")
    other_org = Environment(org_id="org_b", env_id="env_a")
    other_claims = mint_token(other_org, ADDRESS, int(time.time()) + 60).split(".")[1]
    for token in (forged, f"{prefix}.{other_claims}.{signature}", f"{prefix}.{claims}.", "st1.x", "nope"):
        with pytest.raises(InvalidStreamToken):
            verify_token(token, ADDRESS)


def append_status(api: StreamsApi, run_id: str, key: str, token: str) -> tuple[int, str]:
    res = api.append(run_id, key, token, {"x": 1})
    return res.status, res.json().get("code", "")


def test_appends_with_bad_tokens_are_401_over_http(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    other_run = new_run(api.tenant)
    token = api.token(run_id, "out")
    api.token(other_run, "out")
    expired = mint_token(api.tenant.env, StreamAddress.run(run_id, "out"), int(time.time()) - 1)
    forged = mint_token(api.tenant.env, StreamAddress.run(run_id, "out"), 2**40, secret=b"guess")
    assert append_status(api, run_id, "out", expired) == (401, "stream_token_expired")
    assert append_status(api, run_id, "out", forged) == (401, "invalid_stream_token")
    assert append_status(api, other_run, "out", token)[0] == 401  # wrong run
    assert append_status(api, run_id, "log", token)[0] == 401  # wrong key
    assert append_status(api, run_id, "out", api.tenant.api_key)[0] == 401  # an API key is no token
    assert api.close(other_run, "out", token).status == 401
    assert streams.get_store().tail(StreamAddress.run(run_id, "out")) is None


@pytest.mark.parametrize(
    "other",
    [("org_b", None), (None, "env_b")],
    ids=["another organization, same environment id", "another environment of the organization"],
)
def test_a_token_of_another_tenant_is_401_even_when_signed(
    api: StreamsApi, other: tuple[str | None, str | None]
) -> None:
    """Defence in depth: a stream is bound to its tenant (organization and environment) at mint,
    and the append and close scripts and the token read refuse a token of any other, so a token
    signed for another tenant (an organization whose environment has the same id) cannot write,
    close or read it."""
    run_id = new_run(api.tenant)
    api.token(run_id, "out")
    stray_env = make_tenant(other[0] or api.tenant.env.org_id, other[1] or api.tenant.env.env_id).env
    stray = mint_token(stray_env, StreamAddress.run(run_id, "out"), int(time.time()) + 60)
    assert append_status(api, run_id, "out", stray) == (401, "invalid_stream_token")
    assert api.close(run_id, "out", stray).status == 401
    assert api.read(run_id, bearer=stray).status == 401
    assert streams.get_store().tail(StreamAddress.run(run_id, "out")) is None


def test_a_token_without_the_organization_is_refused(api: StreamsApi) -> None:
    """A token minted before tokens named the organization proves no tenant: 401."""
    legacy = {"env": "env_a", "s": "run", "o": "run_1", "k": "out", "exp": int(time.time()) + 60}
    body = "st1." + base64.urlsafe_b64encode(json.dumps(legacy).encode()).rstrip(b"=").decode()
    signature = base64.urlsafe_b64encode(
        hmac.new(signing_secret(), body.encode(), hashlib.sha256).digest()
    ).rstrip(b"=")
    with pytest.raises(InvalidStreamToken):
        verify_token(f"{body}.{signature.decode()}", ADDRESS)
