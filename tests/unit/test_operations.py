"""template.yaml's operations: every metric the code emits has a dashboard widget, every Sluice
metric the dashboard or an alarm names is emitted, every dead-letter queue has an alarm and a line,
and every alarm notifies the AlarmTopicArn topic."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from devstack.template import Stack

ROOT = Path(__file__).resolve().parents[2]
# sluice.observability's helpers, whose first argument is the metric's name.
NAMED_FIRST = {"count_now", "lag_ms", "run_transition"}
SLUICE_NAMESPACE = "Sluice/${Stage}"


def emitted_metrics() -> set[str]:
    """Metric names in the source: ``metrics.count("Name", ...)`` (sluice.mollifier.metrics),
    ``observability.count("Name")`` and the other helpers of ``NAMED_FIRST``, and Powertools'
    ``add_metric(name="Name")`` and ``single_metric(name="Name")``."""
    names: set[str] = set()
    files = [*(ROOT / "layers/sluice/sluice").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            named_first = func in NAMED_FIRST or (
                func == "count" and isinstance(owner, ast.Name) and owner.id in ("metrics", "observability")
            )
            if named_first and node.args:
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
    """The names of Sluice's own metrics on the dashboard (not AWS/SQS, AWS/Lambda, ...)."""
    names: set[str] = set()
    for widget in dashboard()["widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                expression = line[0]["expression"]
                if 'Namespace=\\"Sluice/' in expression or 'Namespace="Sluice/' in expression:
                    names.update(re.findall(r'MetricName="(\w+)"', expression))
            elif line[0] == "Sluice/x":  # ${Stage} was substituted by dashboard()
                names.add(line[1])
    return names


def alarm_metric_names() -> set[str]:
    """The names of Sluice's own metrics that alarms watch."""
    return {
        r["Properties"]["MetricName"]
        for r in resources().values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Namespace") == {"Fn::Sub": SLUICE_NAMESPACE}
    }


def test_the_scan_finds_the_metrics_the_code_emits() -> None:
    assert {"MollifierDecision", "MollifierDrain", "BufferDepth", "BufferOldestAge"} <= emitted_metrics()
    run_metrics = {"RunTriggered", "RunCompleted", "DispatchLag", "DrainLag", "StreamConnections"}
    assert run_metrics <= emitted_metrics()
    assert {"BufferOldestAge", "RunWorkerLost"} <= alarm_metric_names()
    assert {"MollifierDecision", "BufferDepth", "RunFailed"} <= dashboard_metric_names()


def test_every_emitted_metric_has_a_dashboard_widget() -> None:
    missing = emitted_metrics() - dashboard_metric_names()
    assert not missing, f"add a widget to OperationsDashboard for {sorted(missing)}"


def test_the_dashboard_and_the_alarms_name_only_metrics_the_code_emits() -> None:
    assert dashboard_metric_names() - emitted_metrics() == set()
    assert alarm_metric_names() - emitted_metrics() == set()


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
