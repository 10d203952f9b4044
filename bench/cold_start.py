"""Cold start: the CPU each function's handler module costs to import, in a fresh interpreter
with only the layer's requirements to import from, before and after side by side
(``bench.baseline``).

Each import runs in ``python -I -S`` (no site-packages, no user paths) with ``sys.path`` the
function's directory, the tree's layer, and a directory that holds only the distributions
``layers/sluice/requirements.txt`` names and their dependencies, linked from this venv (what
``sam build`` would put in the layer), then boto3 as the runtime provides it, and the function's
environment from ``template.yaml``.
Figures are the median of ROUNDS fresh interpreters; the largest imports are listed for
``trigger_intake``. The layer's size with and without botocore (the Lambda runtime ships its own)
is printed beside it.

    .venv/bin/python -m bench.cold_start [--baseline <ref>] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.baseline import before_and_after

ROUNDS = 5
PROBE = """
import sys, time
sys.path[:0] = {paths!r}
start = time.process_time()
import app
print(round((time.process_time() - start) * 1000, 1))
"""


def _requirements(requirements: Path) -> list[Requirement]:
    lines = (raw.split("#", 1)[0].strip() for raw in requirements.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions ``requirements`` need, transitively, with the extras they name (the
    layer's ``aws-lambda-powertools[parser,tracer]`` brings pydantic and aws-xray-sdk)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = list(requirements)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        names.add(name)
        for line in dist.requires or []:
            needed = Requirement(line)
            marker = needed.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""}):
                todo.append(needed)
    return names


def _site(names: set[str], into: Path) -> dict[str, int]:
    """A site directory of the distributions ``names``, linked from this venv; each one's size."""
    into.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in sorted(names):
        dist = metadata.distribution(name)
        tops = {str(f).split("/", 1)[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            target = into / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
        sizes[name] = sum(Path(str(f.locate())).stat().st_size for f in dist.files or [])
    return sizes


def layer_site(root: Path, into: Path) -> tuple[Path, int, int]:
    """A site directory of the layer's distributions; with the size of those files and of
    botocore's among them."""
    sizes = _site(_closure(_requirements(root / "layers" / "sluice" / "requirements.txt")), into)
    return into, sum(sizes.values()), sizes.get("botocore", 0)


def runtime_site(into: Path) -> Path:
    """What the Lambda runtime adds after the layer on the path: boto3 (which Powertools'
    parameters import), not counted in the layer's size; the layer's botocore comes first."""
    _site(_closure([Requirement("boto3")]), into)
    return into


def function_env(root: Path) -> dict[str, dict[str, str]]:
    from devstack.template import Stack

    stack = Stack(root / "template.yaml")
    return {
        spec.name: {k: str(v) for k, v in spec.environment.items()}
        for spec in stack.functions("http://127.0.0.1:9")
    }


def import_ms(function_dir: Path, paths: list[str], env: dict[str, str]) -> float:
    full = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE.format(paths=paths)],
        cwd=function_dir,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{function_dir.name}: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def child(rounds: int) -> dict[str, Any]:
    import sluice

    root = Path(sluice.__file__).resolve().parents[3]
    envs = function_env(root)
    with tempfile.TemporaryDirectory(prefix="sluice-layer-") as tmp:
        site, total, botocore = layer_site(root, Path(tmp) / "site")
        runtime = runtime_site(Path(tmp) / "runtime")
        figures = {}
        for function_dir in sorted((root / "functions").iterdir()):
            if not (function_dir / "app.py").exists():
                continue
            paths = [str(function_dir), str(root / "layers" / "sluice"), str(site), str(runtime)]
            env = envs.get(function_dir.name, {})
            figures[function_dir.name] = statistics.median(
                import_ms(function_dir, paths, env) for _ in range(rounds)
            )
    return {"import_ms": figures, "layer_bytes": total, "botocore_bytes": botocore}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help="the commit to compare with (default: merge-base with main)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds)))
        return
    before, after, short = before_and_after("bench.cold_start", ["--rounds", str(args.rounds)], args.baseline)
    print(f"Import CPU per handler, ms (median of {args.rounds} fresh interpreters; before = {short})")
    print(f"{'function':<22} {'before':>8} {'after':>8} {'ratio':>6}")
    for name, now in after["import_ms"].items():
        was = before["import_ms"].get(name)
        if was is None:
            print(f"{name:<22} {'-':>8} {now:>8.1f}")
        else:
            print(f"{name:<22} {was:>8.1f} {now:>8.1f} {now / was:>6.2f}")
    mb = 1024 * 1024
    layer, botocore, was = after["layer_bytes"] / mb, after["botocore_bytes"] / mb, before["layer_bytes"] / mb
    print(f"layer's distributions: {layer:.1f} MB, botocore {botocore:.1f} MB of it (before: {was:.1f} MB)")
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main()
