"""Before and after in one run: a bench measures this tree and an earlier commit of it side by side.

The earlier tree is exported with ``git archive`` into a temporary directory (no worktree to
clean up), and the bench's child mode runs there in a fresh interpreter with this tree's
``bench`` package but the earlier tree's ``sluice`` and ``devstack``: the same measuring code on
both sides, only the code measured differs. The default baseline is where this branch left
``main`` (``git merge-base HEAD main``), or ``--baseline <ref>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def default_ref() -> str:
    return subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def exported(ref: str) -> Iterator[Path]:
    """The tree of ``ref`` in a temporary directory, with this tree's ``bench`` beside it."""
    with tempfile.TemporaryDirectory(prefix="sluice-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        shim = Path(tmp) / "shim"
        shim.mkdir()
        (shim / "bench").symlink_to(ROOT / "bench")
        yield Path(tmp)


def path_for(tree: Path | None, base: Path | None = None) -> str:
    """PYTHONPATH that measures ``tree`` (None: this tree) with this tree's bench package."""
    if tree is None:
        return os.pathsep.join([str(ROOT), str(ROOT / "layers" / "sluice")])
    assert base is not None
    return os.pathsep.join([str(base / "shim"), str(tree), str(tree / "layers" / "sluice")])


def run_child(module: str, args: list[str], pythonpath: str) -> Any:
    """``python -m module --child args`` on that path; its last stdout line is its JSON result."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, "-m", module, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{module} --child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def before_and_after(module: str, args: list[str], ref: str | None = None) -> tuple[Any, Any, str]:
    """The child's result on the baseline and on this tree, and the baseline's short commit."""
    ref = ref or default_ref()
    short = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with exported(ref) as base:
        before = run_child(module, args, path_for(base / "tree", base))
    after = run_child(module, args, path_for(None))
    return before, after, short
