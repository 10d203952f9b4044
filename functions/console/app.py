"""The console: GET /console and its static files (sluice.console)."""

from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import console, observability
from sluice.api import make_resolver, route_docs

app = make_resolver()
STATIC = Path(__file__).parent / "static"


def _asset(name: str) -> Response[Any]:
    return console.asset(STATIC, name, app.current_event.headers.get("if-none-match"))


@app.get("/console", **route_docs(public=True, ok_type="text/html", ok_description="The console page"))
def index() -> Response[Any]:
    return _asset("index.html")


@app.get("/console/<name>", **route_docs(public=True, ok_type="text/plain", ok_description="A console file"))
def static_file(name: str) -> Response[Any]:
    return _asset(name)


@observability.lambda_handler(http=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
