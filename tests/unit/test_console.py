"""The console's files: served without credentials, only the files it has, revalidated by ETag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sluice.console import CONTENT_TYPES

STATIC = Path(__file__).resolve().parents[2] / "functions" / "console" / "static"


def test_the_page_and_each_of_its_files_are_served_without_credentials(call_api: Any) -> None:
    page = call_api("GET", "/console")
    assert page.status == 200, page.body
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name, content_type in CONTENT_TYPES.items():
        got = call_api("GET", f"/console/{name}")
        assert got.status == 200 and got.headers["Content-Type"] == content_type
        assert got.body == (STATIC / name).read_text(encoding="utf-8")


def test_every_file_the_page_loads_is_one_the_function_serves() -> None:
    """A script or stylesheet the page or a module names but the function does not serve is a
    console that loads blank: every /console/<file> reference in the assets is in CONTENT_TYPES."""
    named = set()
    for asset in STATIC.iterdir():
        named |= set(re.findall(r"/console/([\w.-]+)", asset.read_text(encoding="utf-8")))
    assert named and named <= set(CONTENT_TYPES)
    assert {p.name for p in STATIC.iterdir()} == set(CONTENT_TYPES)


def test_a_file_it_does_not_have_is_a_404_in_the_api_shape(call_api: Any) -> None:
    for name in ("secret.py", "..%2Fapp.py", "app.py"):
        got = call_api("GET", f"/console/{name}")
        assert got.status == 404 and got.json()["code"] == "route_not_found"


def test_an_unchanged_file_is_a_304(call_api: Any) -> None:
    first = call_api("GET", "/console/app.js")
    again = call_api("GET", "/console/app.js", headers={"if-none-match": first.headers["ETag"]})
    assert again.status == 304 and again.body == ""
    changed = call_api("GET", "/console/app.js", headers={"if-none-match": '"other"'})
    assert changed.status == 200
