"""The `sluice` command line with the SDK talking to an httpx mock transport: where the endpoint
and key come from, what each command sends and prints, and the exit code of each failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from sluice_client import RetryOptions, Sluice, Transport, stream_calls
from sluice_client.batches import MAX_REQUEST_ITEMS, MAX_STAGED_ITEMS
from sluice_client.cli import app
from sluice_client.cli import session as cli_session
from sluice_client.cli.session import Exit
from sluice_client.runs import IDEMPOTENCY_KEY_MAX_CHARS
from tests.unit.batches.conftest import fake_batch_routes

Responder = Callable[[httpx.Request], httpx.Response]


class Api:
    """Records the requests the CLI's SDK client makes and answers them with ``respond``."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.respond: Responder = lambda _: httpx.Response(200, json={})
        self.clients: list[tuple[str, str]] = []
        self.stream_urls: list[str | None] = []

    def sluice(
        self, api_url: str, api_key: str, *, retry: RetryOptions | None = None, stream_url: str | None = None
    ) -> Sluice:
        self.clients.append((api_url, api_key))
        self.stream_urls.append(stream_url)

        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return self.respond(request)

        http = httpx.Client(
            base_url=api_url,
            transport=httpx.MockTransport(handle),
            headers={"authorization": f"Bearer {api_key}"},
        )
        transport = Transport(api_url, api_key, retry=retry, http=http, sleep=lambda _: None)
        sluice = Sluice(api_url, api_key, transport=transport, stream_url=stream_url)
        sluice.batches._uploads = httpx.Client(transport=httpx.MockTransport(handle))
        return sluice


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Api:
    fake = Api()
    monkeypatch.setattr(cli_session, "Sluice", fake.sluice)
    for name in ("SLUICE_API_URL", "SLUICE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLUICE_STACK_FILE", str(tmp_path / "no-stack.json"))
    return fake


def sluice(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


FLAGS = ("--api-url", "http://api.test", "--api-key", "sk_flag")


def test_trigger_sends_the_payload_and_key_and_prints_the_run(api: Api) -> None:
    api.respond = lambda _: httpx.Response(200, json={"id": "run_1", "isCached": False})
    done = sluice(*FLAGS, "trigger", "send email", "--payload", '{"to": "a"}', "--idempotency-key", "k1")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"id": "run_1", "isCached": False}
    [request] = api.requests
    assert request.url.raw_path == b"/api/v1/tasks/send%20email/trigger"
    assert request.headers["authorization"] == "Bearer sk_flag"
    assert json.loads(request.content) == {"payload": {"to": "a"}, "options": {"idempotencyKey": "k1"}}


def test_payload_that_is_not_json_is_a_usage_error_before_any_request(api: Api) -> None:
    done = sluice(*FLAGS, "trigger", "t", "--payload", "{nope")
    assert done.exit_code == Exit.USAGE and "--payload is not JSON" in done.stderr
    assert api.requests == []


def test_runs_get_prints_the_run(api: Api) -> None:
    api.respond = lambda r: httpx.Response(200, json={"id": r.url.path.rsplit("/", 1)[1], "status": "QUEUED"})
    done = sluice(*FLAGS, "runs", "get", "run_9")
    assert done.exit_code == 0 and json.loads(done.stdout) == {"id": "run_9", "status": "QUEUED"}


def test_flags_win_over_environment_which_wins_over_stack_json(api: Api, tmp_path: Path) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"apiUrl": "http://stack.test", "apiKey": "sk_stack"}))
    env = {"SLUICE_STACK_FILE": str(stack)}
    with_key = {**env, "SLUICE_API_KEY": "sk_env"}
    assert sluice("runs", "get", "r", env=env).exit_code == 0
    assert sluice("runs", "get", "r", env=with_key).exit_code == 0
    assert sluice("--api-key", "sk_flag", "runs", "get", "r", env=with_key).exit_code == 0
    both = {"SLUICE_API_URL": "http://env.test", "SLUICE_API_KEY": "k"}
    assert sluice("runs", "get", "r", env=both).exit_code == 0
    assert api.clients == [
        ("http://stack.test", "sk_stack"),
        ("http://stack.test", "sk_env"),
        ("http://stack.test", "sk_flag"),
        ("http://env.test", "k"),
    ]


def test_the_default_stack_file_is_devstacks(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_STACK_FILE")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".devstack").mkdir()
    stack = {"apiUrl": "http://d.test", "apiKey": "sk_d"}
    (tmp_path / ".devstack" / "stack.json").write_text(json.dumps(stack))
    assert sluice("runs", "get", "r").exit_code == 0
    assert api.clients == [("http://d.test", "sk_d")]


@pytest.mark.parametrize(
    ("args", "missing"),
    [(("--api-key", "k"), "no API URL"), (("--api-url", "http://api.test"), "no API key")],
)
def test_a_missing_endpoint_or_key_says_where_it_can_come_from(
    api: Api, args: tuple[str, ...], missing: str
) -> None:
    done = sluice(*args, "runs", "get", "r")
    assert done.exit_code == Exit.USAGE
    assert missing in done.stderr and "SLUICE_API_" in done.stderr and "devstack" in done.stderr
    assert api.requests == []


def test_an_unreadable_stack_file_is_a_usage_error(api: Api, tmp_path: Path) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text("{half")
    done = sluice("runs", "get", "r", env={"SLUICE_STACK_FILE": str(stack)})
    assert done.exit_code == Exit.USAGE and f"cannot read {stack}" in done.stderr


def test_a_bad_key_exits_rejected_with_a_hint(api: Api) -> None:
    api.respond = lambda _: httpx.Response(401, json={"error": "Invalid API key", "code": "unauthorized"})
    done = sluice(*FLAGS, "runs", "get", "r")
    assert done.exit_code == Exit.REJECTED
    assert "401 unauthorized: Invalid API key" in done.stderr and "--api-key" in done.stderr
    assert done.stdout == ""


def test_a_4xx_prints_its_code_and_issues(api: Api) -> None:
    body = {"error": "Invalid request", "code": "invalid_request", "issues": [{"path": ["options", "ttl"]}]}
    api.respond = lambda _: httpx.Response(422, json=body)
    done = sluice(*FLAGS, "trigger", "t")
    assert done.exit_code == Exit.REJECTED
    assert "422 invalid_request: Invalid request" in done.stderr and '"ttl"' in done.stderr


def test_a_5xx_after_the_retries_exits_server(api: Api) -> None:
    api.respond = lambda _: httpx.Response(503, json={"error": "down", "code": "unavailable"})
    done = sluice(*FLAGS, "--max-attempts", "2", "runs", "get", "r")
    assert done.exit_code == Exit.SERVER and "503 unavailable" in done.stderr
    assert len(api.requests) == 2


def test_an_unreachable_api_exits_unreachable(api: Api) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api.respond = refuse
    done = sluice(*FLAGS, "--max-attempts", "1", "runs", "get", "r")
    assert done.exit_code == Exit.UNREACHABLE and "cannot reach http://api.test" in done.stderr


def test_batch_upload_streams_the_file_in_line_order(api: Api, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    api.respond = fake_batch_routes(seen)
    file = tmp_path / "items.ndjson"
    file.write_text('{"task": "a", "payload": 1}\n\n{"task": "b", "options": {"tags": ["x"]}}\n')
    done = sluice(*FLAGS, "batch", "upload", str(file), "--idempotency-key", "b1")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {
        "id": "batch_1",
        "runCount": 2,
        "isCached": False,
        "sealed": True,
        "staged": False,
    }
    assert seen[0]["runCount"] == 2 and seen[0]["staged"] is False and seen[0]["idempotencyKey"] == "b1"
    assert seen[1] == {
        "ndjson": [
            {"index": 0, "task": "a", "payload": 1},
            {"index": 1, "task": "b", "payload": None, "options": {"tags": ["x"]}},
        ]
    }


def test_batch_upload_stages_above_the_threshold(api: Api, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    api.respond = fake_batch_routes(seen)
    file = tmp_path / "items.ndjson"
    file.write_text("".join(json.dumps({"task": "t", "payload": i}) + "\n" for i in range(3)))
    done = sluice(*FLAGS, "batch", "upload", str(file), "--stage-above", "2")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["staged"] is True
    assert seen[0]["staged"] is True and len(seen[1]["staged"].splitlines()) == 3


def test_an_unsealed_batch_exits_failed(api: Api, tmp_path: Path) -> None:
    api.respond = fake_batch_routes([], sealed=False)
    file = tmp_path / "items.ndjson"
    file.write_text('{"task": "a"}\n{"task": "b"}\n')
    done = sluice(*FLAGS, "--max-attempts", "1", "batch", "upload", str(file))
    assert done.exit_code == Exit.FAILED and "was not sealed" in done.stderr


def test_batch_create_rejected_names_the_phase(api: Api, tmp_path: Path) -> None:
    api.respond = lambda _: httpx.Response(422, json={"error": "runCount too big", "code": "invalid_request"})
    file = tmp_path / "items.ndjson"
    file.write_text('{"task": "a"}\n')
    done = sluice(*FLAGS, "batch", "upload", str(file))
    assert done.exit_code == Exit.REJECTED and "batch create failed: 422" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"task": "a"}\n{oops\n', "items.ndjson:2: not JSON"),
        ('{"task": "a"}\n[1]\n', 'items.ndjson:2: an item is an object with a "task" string'),
        ('{"payload": 1}\n', 'items.ndjson:1: an item is an object with a "task" string'),
        ('{"task": "a", "options": 3}\n', 'items.ndjson:1: "options" must be an object'),
        ("\n\n", "items.ndjson has no items"),
    ],
)
def test_a_bad_items_file_is_a_usage_error_naming_the_line(
    api: Api, tmp_path: Path, content: str, message: str
) -> None:
    file = tmp_path / "items.ndjson"
    file.write_text(content)
    done = sluice(*FLAGS, "batch", "upload", str(file))
    assert done.exit_code == Exit.USAGE and message in done.stderr
    assert api.requests == []


def test_a_missing_items_file_is_a_usage_error(api: Api, tmp_path: Path) -> None:
    done = sluice(*FLAGS, "batch", "upload", str(tmp_path / "nope.ndjson"))
    assert done.exit_code == Exit.USAGE and "cannot read" in done.stderr


def test_batch_status_prints_the_batch(api: Api) -> None:
    api.respond = lambda r: httpx.Response(200, json={"id": "batch_1", "offset": r.url.params["runsOffset"]})
    done = sluice(*FLAGS, "batch", "status", "batch_1", "--runs-offset", "5")
    assert done.exit_code == 0 and json.loads(done.stdout) == {"id": "batch_1", "offset": "5"}


# --- sluice stream tail ----------------------------------------------------------------------------


def sse(*frames: str) -> httpx.Response:
    return httpx.Response(
        200, text="".join(f"{frame}\n\n" for frame in frames), headers={"content-type": "text/event-stream"}
    )


def data(entry_id: str, value: Any) -> str:
    return f"id: {entry_id}\ndata: {json.dumps(value)}"


END = "event: end\ndata: "


def test_stream_tail_prints_each_chunk_from_the_start_until_the_stream_ends(api: Api) -> None:
    api.respond = lambda _: sse(": keep-alive", data("1-0", {"delta": "Hel"}), data("1-1", "lo"), END)
    done = sluice(*FLAGS, "stream", "tail", "run_1", "ai/out")
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ['{"delta": "Hel"}', '"lo"']
    [request] = api.requests
    assert str(request.url) == "http://api.test/realtime/v1/streams/run_1/ai%2Fout"
    assert request.headers["last-event-id"] == "0-0" and request.headers["authorization"] == "Bearer sk_flag"


def test_stream_tail_resumes_after_the_last_id_across_reconnects_and_prints_ids_with_json(api: Api) -> None:
    answers = iter([sse(data("1-0", 1), data("1-1", 2), "retry: 10"), sse(data("2-0", 3), END)])
    api.respond = lambda _: next(answers)
    done = sluice(*FLAGS, "stream", "tail", "run_1", "out", "--json", "--last-event-id", "0-5")
    assert done.exit_code == 0, done.output
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"id": "1-0", "data": 1},
        {"id": "1-1", "data": 2},
        {"id": "2-0", "data": 3},
    ]
    assert [r.headers["last-event-id"] for r in api.requests] == ["0-5", "1-1"]


def test_stream_tail_no_follow_prints_what_is_there_page_by_page_without_waiting(api: Api) -> None:
    pages = {
        "0-0": {"records": [{"id": "1-0", "data": "a"}, {"id": "1-1", "data": "b"}], "hasMore": True},
        "1-1": {"records": [{"id": "1-2", "data": "c"}], "hasMore": False},
    }
    api.respond = lambda r: httpx.Response(200, json=pages[r.url.params["after"]])
    done = sluice(*FLAGS, "stream", "tail", "run_1", "out", "--no-follow")
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ['"a"', '"b"', '"c"']
    assert [r.url.path for r in api.requests] == ["/realtime/v1/streams/run_1/out/records"] * 2


def test_stream_tail_reads_from_the_stacks_streamed_reader_only_with_the_stacks_api(
    api: Api, tmp_path: Path
) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"apiUrl": "http://d.test", "apiKey": "sk_d", "streamUrl": "http://s.test"}))
    api.respond = lambda _: sse(END)
    env = {"SLUICE_STACK_FILE": str(stack)}
    assert sluice("stream", "tail", "r", "k", env=env).exit_code == 0
    assert sluice("--api-url", "http://other.test", "stream", "tail", "r", "k", env=env).exit_code == 0
    assert sluice("--stream-url", "http://mine.test/", "stream", "tail", "r", "k", env=env).exit_code == 0
    assert api.stream_urls == ["http://s.test", None, "http://mine.test/"]
    assert [r.url.host for r in api.requests] == ["s.test", "other.test", "mine.test"]


@pytest.mark.parametrize(
    ("status", "code", "shown"),
    [(404, "not_found", "404 not_found: Stream runs/r/k not found"), (401, "unauthorized", "--api-key")],
)
def test_stream_tail_of_an_unknown_run_or_with_a_bad_key_exits_rejected(
    api: Api, status: int, code: str, shown: str
) -> None:
    api.respond = lambda _: httpx.Response(status, json={"error": "Stream runs/r/k not found", "code": code})
    for follow in ("--follow", "--no-follow"):
        done = sluice(*FLAGS, "stream", "tail", "r", "k", follow)
        assert done.exit_code == Exit.REJECTED and shown in done.stderr and done.stdout == ""


def test_stream_tail_stops_on_ctrl_c_with_what_it_printed(api: Api) -> None:
    answers = iter([sse(data("1-0", "before"), "retry: 10")])

    def respond(_: httpx.Request) -> httpx.Response:
        for answer in answers:
            return answer
        raise KeyboardInterrupt

    api.respond = respond
    done = sluice(*FLAGS, "stream", "tail", "r", "k")
    assert done.exit_code == Exit.INTERRUPTED and done.stdout == '"before"\n'


def test_flags_over_the_api_limits_are_usage_errors_before_any_request(api: Api, tmp_path: Path) -> None:
    file = tmp_path / "items.ndjson"
    file.write_text('{"task": "a"}\n')
    over = sluice(*FLAGS, "batch", "upload", str(file), "--stage-above", str(MAX_REQUEST_ITEMS + 1))
    assert (
        over.exit_code == Exit.USAGE
        and "--stage-above" in over.stderr
        and str(MAX_REQUEST_ITEMS) in over.stderr
    )
    long_key = "k" * (IDEMPOTENCY_KEY_MAX_CHARS + 1)
    for args in (("batch", "upload", str(file)), ("trigger", "t")):
        done = sluice(*FLAGS, *args, "--idempotency-key", long_key)
        assert done.exit_code == Exit.USAGE, done.output
        assert f"the API takes at most {IDEMPOTENCY_KEY_MAX_CHARS}" in done.stderr
    file.write_text('{"task": "a"}\n' * (MAX_STAGED_ITEMS + 1))
    too_many = sluice(*FLAGS, "batch", "upload", str(file))
    assert too_many.exit_code == Exit.USAGE and f"at most {MAX_STAGED_ITEMS}" in too_many.stderr
    assert api.requests == []


def test_stream_tail_refuses_a_key_or_entry_id_the_api_would(api: Api) -> None:
    bad_key = sluice(*FLAGS, "stream", "tail", "run_1", "my key")
    assert bad_key.exit_code == Exit.USAGE and "is not a stream key" in bad_key.stderr
    bad_id = sluice(*FLAGS, "stream", "tail", "run_1", "ai", "--last-event-id", "yesterday")
    assert bad_id.exit_code == Exit.USAGE and "is not an entry id" in bad_id.stderr
    assert api.requests == []


def test_the_clients_limits_are_the_servers() -> None:
    from sluice.config import Settings
    from sluice.streams import STREAM_KEY_PATTERN
    from sluice.streams.reader import ENTRY_ID_PATTERN

    defaults = Settings.model_fields
    assert defaults["batch_max_items"].default == MAX_REQUEST_ITEMS
    assert defaults["batch_max_staged_items"].default == MAX_STAGED_ITEMS
    assert defaults["idempotency_key_max_chars"].default == IDEMPOTENCY_KEY_MAX_CHARS
    assert stream_calls.STREAM_KEY_PATTERN == STREAM_KEY_PATTERN
    assert stream_calls.ENTRY_ID_PATTERN == ENTRY_ID_PATTERN


def test_a_rate_limited_upload_says_how_long_it_waits(api: Api, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    routes = fake_batch_routes(seen)
    limited = []

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/items") and not limited:
            limited.append(request)
            return httpx.Response(429, headers={"retry-after": "20"}, json={"error": "wait", "code": "x"})
        return routes(request)

    api.respond = respond
    file = tmp_path / "items.ndjson"
    file.write_text('{"task": "a"}\n')
    done = sluice(*FLAGS, "batch", "upload", str(file))
    assert done.exit_code == 0, done.output
    assert "items.ndjson: waiting 20s to retry (the API is rate limiting or busy)" in done.stderr
    assert json.loads(done.stdout)["sealed"] is True


def test_runs_list_sends_the_filters_and_prints_the_page(api: Api) -> None:
    page = {"data": [{"id": "run_1"}], "pagination": {"next": "c2"}}
    api.respond = lambda r: httpx.Response(200, json=page)

    done = sluice(
        *FLAGS, "runs", "list", "--status", "QUEUED,DELAYED", "--tag", "vip", "--limit", "5", "--after", "c1"
    )

    assert done.exit_code == 0 and json.loads(done.stdout) == page
    query = dict(api.requests[0].url.params)
    assert (api.requests[0].url.path, query) == (
        "/api/v1/runs",
        {"filter[status]": "QUEUED,DELAYED", "filter[tag]": "vip", "page[size]": "5", "page[after]": "c1"},
    )


def test_runs_cancel_and_replay_post_to_their_routes(api: Api) -> None:
    api.respond = lambda r: httpx.Response(200, json={"id": "run_9"})
    assert sluice(*FLAGS, "runs", "cancel", "run_9").exit_code == 0
    assert sluice(*FLAGS, "runs", "replay", "run_9").exit_code == 0
    assert [(r.method, r.url.path) for r in api.requests] == [
        ("POST", "/api/v2/runs/run_9/cancel"),
        ("POST", "/api/v1/runs/run_9/replay"),
    ]
