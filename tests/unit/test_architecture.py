"""One architecture from `make build` to `sam deploy`: the Web Adapter layer follows the
template's Architecture, and the build and deploy defaults name the same one."""

from __future__ import annotations

import re
import tomllib

import pytest

from devstack.template import ROOT, Stack


def _stream_reader_layers(architecture: str) -> list[str]:
    stack = Stack(parameters={"Architecture": architecture})
    props = stack.resources["StreamReaderFunction"]["Properties"]
    return [str(layer) for layer in stack.resolve(props["Layers"])]


@pytest.mark.parametrize(
    ("architecture", "layer"), [("arm64", "LambdaAdapterLayerArm64"), ("x86_64", "LambdaAdapterLayerX86")]
)
def test_web_adapter_layer_follows_the_architecture(architecture: str, layer: str) -> None:
    (arn,) = _stream_reader_layers(architecture)
    assert arn == f"arn:aws:lambda:us-east-1:753240598075:layer:{layer}:26"


def _overrides(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split())


def test_build_and_deploy_name_the_same_architecture() -> None:
    default = Stack().parameters["Architecture"]
    make_default = re.search(r"^ARCH \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert make_default is not None and make_default.group(1) == default
    script = (ROOT / "scripts/sam-build.sh").read_text()
    assert f"arch=${{ARCH:-{default}}}" in script
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    build = _overrides(config["default"]["build"]["parameters"]["parameter_overrides"])
    assert build["Architecture"] == default
    for env in ("default", "prod"):
        deploy = _overrides(config[env]["deploy"]["parameters"]["parameter_overrides"])
        assert deploy["Architecture"] == default, env
