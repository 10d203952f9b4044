"""The README's account of the run lifecycle matches the code: routes, fields, codes, settings."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.template import Stack
from sluice.config import Settings
from sluice.engine import lifecycle

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def _route_rows() -> dict[str, str]:
    return {
        m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Z]+ /api/[^`]+)` \| (.*) \|$", README, re.M)
    }


def test_every_lifecycle_route_of_the_template_is_in_the_route_table() -> None:
    spec = Stack().function("run_lifecycle")
    routes = {f"{e.properties['Method']} {e.properties['Path']}" for e in spec.events if e.type == "HttpApi"}
    actions = ("start", "heartbeat", "complete", "fail")
    others = {"POST /api/v2/runs/{runId}/cancel", "GET /api/v1/queues", "PUT /api/v1/queues/{name}"}
    assert routes == {f"POST /api/v1/runs/{{runId}}/{a}" for a in actions} | others
    assert routes <= set(_route_rows())


def test_the_get_row_names_the_lifecycle_fields_the_run_shows() -> None:
    row = _route_rows()["GET /api/v1/runs/{runId}"]
    fields = ("attempt", "startedAt", "completedAt", "canceledAt", "output", "error")
    assert all(f"`{name}`" in row for name in fields)
    assert set(fields) <= set(lifecycle.Run.model_fields)
    assert "outputRef" in lifecycle.Run.model_fields and "`outputRef`" not in README


def test_every_error_code_the_lifecycle_raises_is_in_the_error_table() -> None:
    source = Path(lifecycle.__file__).read_text()
    codes = set(re.findall(r'code="([a-z_]+)"', source))
    assert codes >= {"run_already_started", "stale_lease", "run_finished", "run_not_due", "output_too_large"}
    rows = re.findall(r"^\| \d{3} \| ([^|]*) \|", README, re.M)
    table = {code for row in rows for code in re.findall(r"`([a-z_]+)`", row)}
    assert codes <= table


def test_every_run_setting_is_in_the_settings_table_with_its_default() -> None:
    defaults = Settings()
    names = [name for name in Settings.model_fields if name.startswith("run_") and name != "run_queue_url"]
    assert "run_lease_s" in names
    for name in names:
        env = f"SLUICE_{name.upper()}"
        row = next(
            (line for line in README.splitlines() if line.startswith("| `SLUICE_") and f"`{env}`" in line),
            None,
        )
        assert row is not None, env
        cells = [c.strip() for c in row.strip("|").split("|")]
        settings = [s.strip("` ") for s in cells[0].split("/")]
        values = [v.strip("` ").split(" ")[0] for v in cells[1].split("/")]
        assert values[settings.index(env)] == str(getattr(defaults, name)), env
