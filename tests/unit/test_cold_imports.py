"""What a cold start imports: a handler loads only what its route needs (bench/cold_start.py
measures the CPU; this checks the modules, in a fresh interpreter as Lambda's init runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
import app
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {names!r} or m in {names!r})))
"""
NEVER_WITH_THE_KILL_SWITCH_OFF = [
    "redis",
    "sluice.mollifier",
    "sluice.smoothing",
    "pydantic_settings",
    "boto3",
]


def _imported(function: str, environment: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    env |= {"PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "sluice"), str(ROOT)]), **environment}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(names=NEVER_WITH_THE_KILL_SWITCH_OFF)],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_trigger_intake_imports_no_buffer_no_redis_and_no_boto3_with_the_kill_switch_off() -> None:
    assert _imported("trigger_intake", {"SLUICE_MOLLIFIER_ENABLED": "false"}) == []


def test_the_dispatcher_imports_neither_redis_nor_the_buffer() -> None:
    assert not {"redis", "sluice.mollifier", "sluice.smoothing"} & set(_imported("dispatcher", {}))
