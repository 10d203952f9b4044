"""template.yaml's operations: every metric the code emits has a dashboard widget, every
dead-letter queue an alarm and a line, and every alarm notifies the AlarmTopicArn topic."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from devstack.template import Stack

ROOT = Path(__file__).resolve().parents[2]
# Metrics other components will emit, with their widget already on the dashboard.
PLANNED = {"StreamConnections"}


def emitted_metrics() -> set[str]:
    """Metric names in the source: ``metrics.count("Name", ...)`` (sluice.mollifier.metrics),
    Powertools' ``add_metric(name="Name")`` and ``single_metric(name="Name")``."""
    names: set[str] = set()
    files = [*(ROOT / "layers/sluice/sluice").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if func == "count" and isinstance(owner, ast.Name) and owner.id == "metrics" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
            elif func in ("add_metric", "single_metric"):
                for keyword in node.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        names.add(str(keyword.value.value))
    return names


def resources() -> dict[str, Any]:
    return Stack().template["Resources"]  # type: ignore[no-any-return]


def dashboard() -> dict[str, Any]:
    body = resources()["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    return json.loads(re.sub(r"\$\{[^}]+\}", "x", body))  # type: ignore[no-any-return]


def dashboard_metric_names() -> set[str]:
    names: set[str] = set()
    for widget in dashboard()["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                names.update(re.findall(r'MetricName="(\w+)"', line[0]["expression"]))
            else:
                names.add(line[1])
    return names


def test_the_scan_finds_the_metrics_the_code_emits() -> None:
    assert {"MollifierDecision", "MollifierDrain", "BufferDepth", "BufferOldestAge"} <= emitted_metrics()


def test_every_emitted_metric_has_a_dashboard_widget() -> None:
    missing = emitted_metrics() - dashboard_metric_names()
    assert not missing, f"add a widget to OperationsDashboard for {sorted(missing)}"


def test_the_dashboard_shows_nothing_that_is_never_emitted() -> None:
    aws = {"Duration", "Count", "4xx", "5xx", "ApproximateNumberOfMessagesVisible"}
    assert dashboard_metric_names() - aws - emitted_metrics() - PLANNED == set()


def test_every_dead_letter_queue_has_an_alarm_and_a_dashboard_line() -> None:
    res = resources()
    dlqs = {name for name, r in res.items() if r["Type"] == "AWS::SQS::Queue" and "DeadLetter" in name}
    body = res["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    alarmed = {
        dim["Value"]["Fn::GetAtt"][0]
        for r in res.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for dim in r["Properties"].get("Dimensions", [])
        if isinstance(dim["Value"], dict) and "Fn::GetAtt" in dim["Value"]
    }
    assert len(dlqs) >= 4 and dlqs <= alarmed
    assert all(f"${{{dlq}.QueueName}}" in body for dlq in dlqs)


def test_every_alarm_notifies_the_alarm_topic() -> None:
    alarms = [r for r in resources().values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert alarms
    for alarm in alarms:
        for key in ("AlarmActions", "OKActions"):
            assert alarm["Properties"][key] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }
