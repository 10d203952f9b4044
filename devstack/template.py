"""template.yaml as devstack sees it: parameters, physical names, functions and their events.

The template is parsed by aws-sam-translator's loader (it knows CloudFormation's short tags) and
the few intrinsic functions the template uses are evaluated here against local physical names:
Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, Fn::Equals, Fn::Not, Fn::Select, Fn::Split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"
NO_VALUE = object()

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


@dataclass(frozen=True)
class EventSource:
    """One entry of a function's ``Events``, with its properties resolved."""

    name: str
    type: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: list[EventSource] = field(default_factory=list)
    # The Function URL's resolved ``Cors`` block, if it has one.
    url_cors: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The function's short name: its CodeUri folder (``functions/<name>/``)."""
        return self.code_uri.name

    @property
    def web_adapter(self) -> bool:
        """A web app run by the Lambda Web Adapter: its handler is a start script, not Python."""
        return self.environment.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap"


class Stack:
    """A template bound to local parameter values and physical resource names."""

    def __init__(
        self,
        path: Path = TEMPLATE,
        parameters: dict[str, str] | None = None,
        stage: str | None = None,
    ) -> None:
        self.path = path
        self.template: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
        self.resources: dict[str, dict[str, Any]] = self.template.get("Resources", {})
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in self.template.get("Parameters", {}).items()
        }
        self.parameters.update(parameters or {})
        if stage is not None:
            self.parameters["Stage"] = stage
        self.stage = self.parameters.get("Stage", "dev")
        # moto's account; LocalStack's is 000000000000. devstack sets the one its SQS endpoint
        # reports before it resolves any ARN.
        self.account = ACCOUNT

    # --- names ---------------------------------------------------------------------------------
    def resources_of(self, type_: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res.get("Type") == type_}

    def physical_name(self, logical_id: str) -> str:
        res = self.resources[logical_id]
        props = res.get("Properties", {})
        type_ = res["Type"]
        if type_ == "AWS::SQS::Queue":
            name = f"sluice-{self.stage}-{logical_id}"
            return name + ".fifo" if props.get("FifoQueue") else name
        if type_ == "AWS::S3::Bucket":
            return f"sluice-{self.stage}-{logical_id}".lower()
        return f"sluice-{self.stage}-{logical_id}"

    def queue_url(self, logical_id: str, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}/{self.account}/{self.physical_name(logical_id)}"

    def arn(self, logical_id: str) -> str:
        type_ = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if type_ == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{self.account}:{name}"
        if type_ == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if type_ == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{REGION}:{self.account}:table/{name}"
        return f"arn:aws:local:{REGION}:{self.account}:{logical_id}"

    def logical_id_of_arn(self, arn: str) -> str:
        for logical_id in self.resources:
            if self.arn(logical_id) == arn:
                return logical_id
        raise KeyError(arn)

    # --- intrinsics ----------------------------------------------------------------------------
    def resolve(self, value: Any, endpoint: str = "http://localhost:4566") -> Any:
        """Evaluate intrinsic functions; ``Ref`` to a queue gives its URL at ``endpoint``."""
        if isinstance(value, list):
            items = [self.resolve(v, endpoint) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg, endpoint)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(logical_id, attr, endpoint)
            if key == "Fn::Sub":
                return self._sub(arg, endpoint)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(parts, endpoint))
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no, endpoint)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items, endpoint)[int(self.resolve(index, endpoint))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text, endpoint)).split(sep)
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._evaluate_condition(value)
        resolved = {k: self.resolve(v, endpoint) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str) -> bool:
        return bool(self._evaluate_condition(self.template.get("Conditions", {})[name]))

    def _evaluate_condition(self, expr: Any) -> bool:
        ((key, arg),) = expr.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return bool(str(left) == str(right))
        if key == "Fn::Not":
            return not self._evaluate_condition(arg[0])
        if key == "Fn::And":
            return all(self._evaluate_condition(a) for a in arg)
        if key == "Fn::Or":
            return any(self._evaluate_condition(a) for a in arg)
        if key == "Condition":
            return self.condition(arg)
        raise ValueError(f"unsupported condition {expr!r}")

    def _ref(self, name: str, endpoint: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name == "AWS::Region":
            return REGION
        if name == "AWS::AccountId":
            return self.account
        if name in ("AWS::URLSuffix",):
            return "amazonaws.com"
        if name in ("AWS::StackName",):
            return f"sluice-{self.stage}"
        if name in self.parameters:
            spec = self.template.get("Parameters", {}).get(name, {})
            raw = self.parameters[name]
            if spec.get("Type") == "CommaDelimitedList":
                return [part for part in raw.split(",") if part] if raw else [""]
            return raw
        if self.resources[name]["Type"] == "AWS::SQS::Queue":
            return self.queue_url(name, endpoint)
        return self.physical_name(name)

    def _get_att(self, logical_id: str, attr: str, endpoint: str) -> str:
        if attr == "Arn":
            return self.arn(logical_id)
        if attr == "QueueName":
            return self.physical_name(logical_id)
        if attr == "QueueUrl":
            return self.queue_url(logical_id, endpoint)
        if attr == "FunctionUrl":
            # Known only once devstack serves the function (web_apps); empty until then.
            return ""
        if attr == "StreamArn":
            # The stream's label is a timestamp known only once the table exists; devstack.streams
            # looks the real ARN up by table.
            return f"{self.arn(logical_id)}/stream/*"
        return f"{self.physical_name(logical_id)}.{attr}"

    def _sub(self, arg: Any, endpoint: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name], endpoint))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attr = name.split(".", 1)
                return self._get_att(logical_id, attr, endpoint)
            return str(self._ref(name, endpoint))

        return _SUB_VAR.sub(replace, text)

    # --- functions -----------------------------------------------------------------------------
    def functions(self, endpoint: str = "http://localhost:4566") -> list[FunctionSpec]:
        globals_ = self.template.get("Globals", {}).get("Function", {})
        specs = []
        for logical_id, res in self.resources_of("AWS::Serverless::Function").items():
            props = res.get("Properties", {})
            env = dict(globals_.get("Environment", {}).get("Variables", {}))
            env.update(props.get("Environment", {}).get("Variables", {}))
            events = [
                EventSource(name, ev["Type"], self.resolve(ev.get("Properties", {}), endpoint))
                for name, ev in props.get("Events", {}).items()
            ]
            specs.append(
                FunctionSpec(
                    logical_id=logical_id,
                    code_uri=(self.path.parent / props["CodeUri"]).resolve(),
                    handler=props.get("Handler", globals_.get("Handler", "app.handler")),
                    timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                    memory=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                    environment={k: str(v) for k, v in self.resolve(env, endpoint).items()},
                    events=events,
                    url_cors=self.resolve(props.get("FunctionUrlConfig", {}).get("Cors"), endpoint),
                )
            )
        return specs

    def http_api_cors(self) -> dict[str, Any] | None:
        """The HTTP API's resolved ``CorsConfiguration``, if it has one."""
        for res in self.resources_of("AWS::Serverless::HttpApi").values():
            config = res.get("Properties", {}).get("CorsConfiguration")
            if config:
                return self.resolve(config)  # type: ignore[no-any-return]
        return None

    def function(self, name: str, endpoint: str = "http://localhost:4566") -> FunctionSpec:
        """A function by its short name (``trigger_intake``) or logical id."""
        for spec in self.functions(endpoint):
            if name in (spec.name, spec.logical_id):
                return spec
        raise KeyError(f"no function {name!r} in {self.path.name}")
