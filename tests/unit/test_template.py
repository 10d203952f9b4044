"""template.yaml as devstack reads it: every function loads and every reference resolves."""

from __future__ import annotations

from devstack.handlers import load_handler
from devstack.template import Stack


def test_every_function_handler_imports() -> None:
    stack = Stack()
    specs = stack.functions()
    assert {"trigger_intake"} <= {spec.name for spec in specs}
    for spec in specs:
        if spec.web_adapter:  # a start script for the Lambda Web Adapter (test_web_apps.py)
            assert (spec.code_uri / spec.handler).is_file()
            continue
        assert callable(load_handler(spec))


def test_function_environment_resolves_to_local_names() -> None:
    env = Stack(stage="test").function("trigger_intake", "http://127.0.0.1:4566").environment
    assert env["SLUICE_RUNS_TABLE"] == "sluice-test-RunsTable"
    assert env["SLUICE_RUN_QUEUE_URL"] == "http://127.0.0.1:4566/123456789012/sluice-test-RunQueue"
    assert env["SLUICE_PAYLOAD_BUCKET"] == "sluice-test-payloadbucket"
    assert all(isinstance(v, str) for v in env.values())


def test_vpc_config_is_dropped_without_subnets() -> None:
    stack = Stack()
    vpc = stack.template["Globals"]["Function"]["VpcConfig"]
    assert stack.resolve(vpc) == {} or stack.resolve({"X": vpc}) == {}
    with_subnets = Stack(parameters={"SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1"})
    assert with_subnets.resolve(vpc)["SubnetIds"] == ["subnet-1", "subnet-2"]
