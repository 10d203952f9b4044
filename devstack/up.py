"""``devstack up``: start Redis and AWS emulation, provision the template, serve it, and stop
everything again on SIGINT/SIGTERM.

Each resource is released in reverse order of acquisition, on a normal stop, on a signal and on a
failed start alike, so no redis-server, moto or worker process outlives the stack.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config

from devstack import endpoints, environment, key_backup, reload, stack_file, web_apps
from devstack.cors import CorsPolicy
from devstack.pollers import SqsPoller, SqsSource
from devstack.polling import stop_all
from devstack.provision import create_all, secret_values
from devstack.run_consumer import CONSUMERS, DEFAULT_CONSUMER, RUN_QUEUE, CountingConsumer
from devstack.runtime import FunctionRuntime, pool_size
from devstack.schedules import Scheduler, ScheduleSource
from devstack.server import ApiServer, BoundRoute, routes_of
from devstack.services import REDIS_MISSING, Service, start_moto, start_redis
from devstack.streams import StreamPoller, StreamSource
from devstack.supervise import Child
from devstack.template import REGION, FunctionSpec, Stack

DEV_ORG = "org_dev"
DEV_ENV = "env_dev"
# Points the mint's readUrl at the locally served streamed reader.
STREAM_READ_URL_SETTING = "SLUICE_STREAM_READ_URL"


class StartupError(RuntimeError):
    """The stack cannot start; the message says why and what to do."""


class Stopped(RuntimeError):
    """A signal arrived while the stack was starting."""


@dataclass
class UpOptions:
    port: int = 3030
    template: Path = field(default_factory=lambda: Path("template.yaml"))
    state_dir: Path = stack_file.DEFAULT_STATE_DIR
    aws_port: int | None = None
    concurrency: int = 8
    schedule_scale: float = 1.0
    schedules: bool = True
    verbose: bool = False
    host: str = "127.0.0.1"
    parameters: dict[str, str] = field(default_factory=dict)
    org_id: str = DEV_ORG
    env_id: str = DEV_ENV
    tcp_nodelay: bool = True
    aws: str | None = None
    run_consumer: str = DEFAULT_CONSUMER
    moto_server: str = "devstack"
    warm: bool = True
    reload: bool = False


def say(text: str) -> None:
    sys.stderr.write(f"devstack: {text}\n")
    sys.stderr.flush()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def aws_clients(urls: dict[str, str], env: dict[str, str], pool: int = 10) -> dict[str, Any]:
    # Receives long-poll for a second; the read timeout must outlast them.
    config = Config(
        max_pool_connections=pool, read_timeout=30, retries={"mode": "standard", "max_attempts": 4}
    )
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=env.get("AWS_DEFAULT_REGION", REGION),
    )
    return {
        name: session.client(name, endpoint_url=endpoints.url_of(urls, name), config=config)  # type: ignore[call-overload]
        for name in (*endpoints.SERVICES, *endpoints.COMPANIONS)
    }


class StackRunner:
    """One running devstack: starts its services, provisions the template, serves it, keeps its
    children alive, and releases everything in reverse order. (Not the LocalStack product, which
    it can use as its AWS emulation: see devstack.endpoints.)"""

    def __init__(self, options: UpOptions, environ: dict[str, str] | None = None) -> None:
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)
        self.stopping = threading.Event()
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self.info: dict[str, Any] = {}
        self.children: dict[str, Child] = {}
        self.run_consumer: CountingConsumer | None = None
        self.stream_pollers: list[StreamPoller] = []
        # What a restarted moto needs put back: see _reprovision.
        self._provisioned: tuple[Stack, dict[str, Any], str, dict[str, str]] | None = None
        self._keys_table: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def _on_stop(self, what: str, action: Callable[[], None]) -> None:
        self._cleanups.append((what, action))

    def _checkpoint(self) -> None:
        if self.stopping.is_set():
            raise Stopped("stopped while starting")

    def stop(self) -> None:
        while self._cleanups:
            what, action = self._cleanups.pop()
            started = time.monotonic()
            try:
                action()
            except Exception as exc:  # keep releasing the rest
                say(f"stopping {what} failed: {exc!r}")
            if self.options.verbose:
                say(f"stopped {what} ({(time.monotonic() - started) * 1000:.0f} ms)")

    def start(self) -> dict[str, Any]:
        opts = self.options
        state_dir = opts.state_dir
        self._claim_state_dir(state_dir)
        self._check_port()
        template = opts.template.resolve()
        if not template.is_file():
            raise StartupError(f"no template at {template}")
        stack = Stack(template, parameters=opts.parameters)
        self._checkpoint()

        redis_url = self._start_redis()
        self._checkpoint()
        urls = self._start_aws()
        endpoint = urls["sqs"]  # queue URLs are built on it
        self._checkpoint()

        aws_env = environment.aws_client_environment(self.environ, urls)
        clients = aws_clients(urls, aws_env, pool=max(10, opts.concurrency * 4))
        secrets = secret_values(stack)
        queue_urls = create_all(stack, clients, endpoint, secrets)
        self._provisioned = (stack, clients, endpoint, secrets)
        tables = {lid: stack.physical_name(lid) for lid in stack.resources_of("AWS::DynamoDB::Table")}
        buckets = {lid: stack.physical_name(lid) for lid in stack.resources_of("AWS::S3::Bucket")}
        say(f"provisioned  {len(queue_urls)} queues, {len(tables)} tables, {len(buckets)} buckets")
        self._checkpoint()

        specs = stack.functions(endpoint)
        url_map = environment.local_queue_urls(stack, endpoint, queue_urls)
        envs = {
            spec.logical_id: environment.function_environment(
                spec, environ=self.environ, redis_url=redis_url, aws_endpoints=urls, queue_urls=url_map
            )
            for spec in specs
        }
        web_specs = web_apps.web_app_specs(specs)
        web_urls = web_apps.reserve_urls(web_specs, opts.host)
        stream_url = next((web_urls[s.logical_id] for s in web_specs if s.name == "stream_reader"), "")
        for env in envs.values():
            if STREAM_READ_URL_SETTING in env:
                env[STREAM_READ_URL_SETTING] = stream_url
        specs = [spec for spec in specs if not spec.web_adapter]
        settings = environment.stack_settings(envs)
        environment.apply_to_process(settings, aws_env)
        api_key = self._provision_key(settings, clients["dynamodb"])
        self._checkpoint()

        runtimes = self._start_runtimes(specs, envs)
        self._watch_code(stack, runtimes)
        self._checkpoint()
        server = self._start_server(specs, runtimes, stack)
        self._start_web_apps(web_specs, envs, web_urls)
        self._start_pollers(stack, specs, runtimes, queue_urls, clients["sqs"])
        self._start_streams(specs, runtimes, clients)
        self._start_run_consumer(queue_urls, clients["sqs"])
        self._start_schedules(specs, runtimes)
        self._checkpoint()

        self.info = {
            "apiUrl": server.url,
            "apiKey": api_key,
            "orgId": opts.org_id,
            "envId": opts.env_id,
            "redisUrl": redis_url,
            "awsEndpointUrl": endpoint,
            # The streamed SSE reader (the mint's readUrl); the HTTP API's read is the long poll.
            "streamUrl": stream_url,
            "webApps": web_urls,
            "awsEndpoints": urls,
            "account": stack.account,
            "pid": os.getpid(),
            "stage": stack.stage,
            "template": str(template),
            "stateDir": str(state_dir.resolve()),
            "region": aws_env["AWS_DEFAULT_REGION"],
            "queueUrls": queue_urls,
            "tables": tables,
            "buckets": buckets,
            "functions": {spec.logical_id: spec.name for spec in specs},
            "scheduleScale": opts.schedule_scale,
            "runConsumer": opts.run_consumer if self.run_consumer is not None else "none",
            # What `keys create` and `invoke` need to see the stack as its functions do.
            "overrides": environment.sluice_overrides(self.environ),
            "startedAt": time.time(),
        }
        # Before stack.json: whoever sees the stack ready can read its health at once.
        stack_file.write_health(state_dir, self.health())
        path = stack_file.write_stack(state_dir, self.info)
        say(f"ready        {path}  (stop with Ctrl-C or `python -m devstack down`)")
        return self.info

    def _claim_state_dir(self, state_dir: Path) -> None:
        pid = stack_file.read_pid(state_dir)
        if pid is not None and pid != os.getpid() and stack_file.pid_alive(pid):
            raise StartupError(
                f"a stack (pid {pid}) already runs with state dir {state_dir}; stop it with "
                f"`python -m devstack down --state-dir {state_dir}` or pick another --state-dir"
            )
        stack_file.clear(state_dir)
        stack_file.write_pid(state_dir, os.getpid())
        self._on_stop("state files", lambda: stack_file.clear(state_dir, os.getpid()))

    def _check_port(self) -> None:
        # Before Redis, moto and provisioning: a busy port is the commonest reason not to start.
        host, port = self.options.host, self.options.port
        if port and _port_in_use(host, port):
            raise StartupError(
                f"port {port} on {host} is taken (another devstack? `python -m devstack status`); "
                "pick another with --port N, or --port 0 for any free port"
            )

    def _watch_code(self, stack: Stack, runtimes: dict[str, FunctionRuntime]) -> None:
        if not self.options.reload:
            return
        watch = reload.CodeWatch(runtimes.values(), reload.layer_dirs(stack), log=say)
        watch.attach()
        say(
            f"reload       on: edits to functions/*/ and {len(watch.layers)} layer folder(s) reach the "
            "next invocation (restart for template.yaml and web apps)"
        )

    def _supervise(
        self,
        what: str,
        service: Service,
        start: Callable[[], Service],
        after_restart: Callable[[], dict[str, Any]] | None = None,
    ) -> Child:
        child = Child(what, service, start, after_restart, log=say)
        self.children[what] = child
        self._on_stop(what, child.stop)
        return child

    def _start_redis(self) -> str:
        if url := self.environ.get("REDIS_URL"):
            say(f"redis        {url} (REDIS_URL)")
            return url
        if shutil.which("redis-server") is None:
            raise StartupError(REDIS_MISSING)
        service = start_redis()
        port = service.port
        child = self._supervise("redis-server", service, lambda: start_redis(port))
        say(f"redis        {service.url} (redis-server pid {child.pid})")
        return service.url

    def _start_aws(self) -> dict[str, str]:
        try:
            chosen = endpoints.plan(self.options.aws, self.environ)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        moto_url = None
        if endpoints.MOTO in chosen.values():
            moto_url = self._start_moto()
        urls = endpoints.resolve(chosen, moto_url)
        for service, url in urls.items():
            origin = "moto" if chosen[service] == endpoints.MOTO else "given"
            say(f"aws          {service:<8} {url} ({origin})")
        return urls

    def _start_moto(self) -> str:
        port = self.options.aws_port
        if port is not None and _port_in_use("127.0.0.1", port):
            raise StartupError(
                f"port {port} is taken (LocalStack or another moto?); use it with --aws URL, "
                "or drop --aws-port for a free port"
            )
        plain = self.options.moto_server == "plain"
        service = start_moto(port, plain=plain)
        port = service.port
        # A new moto knows nothing: the stack's resources and its keys go back in.
        child = self._supervise("moto", service, lambda: start_moto(port, plain=plain), self._reprovision)
        say(f"moto         {service.url} (moto server pid {child.pid})")
        return service.url

    def _reprovision(self) -> dict[str, Any]:
        """Put back into a restarted moto what the stack had made: its queues, tables, buckets
        and secrets (with their values), every API key, and the stream pollers' new streams.
        What the functions wrote (runs, messages) is gone with the old moto."""
        if self._provisioned is None:
            return {}
        stack, clients, endpoint, secrets = self._provisioned
        queue_urls = create_all(stack, clients, endpoint, secrets)
        keys = 0
        if self._keys_table is not None:
            keys = key_backup.restore(self.options.state_dir, clients["dynamodb"], self._keys_table)
        for poller in self.stream_pollers:
            poller.follow_new_stream()
        return {
            "at": time.time(),
            "queues": len(queue_urls),
            "tables": len(stack.resources_of("AWS::DynamoDB::Table")),
            "buckets": len(stack.resources_of("AWS::S3::Bucket")),
            "apiKeyItems": keys,
        }

    def supervise(self) -> None:
        """Restart any child that died (called by the main loop)."""
        for child in self.children.values():
            if not self.stopping.is_set():
                child.check()

    def health(self) -> dict[str, Any]:
        """What ``devstack status`` reports beside stack.json: children and the RunQueue consumer."""
        return {
            "updatedAt": time.time(),
            "children": {what: child.health() for what, child in self.children.items()},
            "runQueue": self.run_consumer.stats() if self.run_consumer is not None else {"consumer": "none"},
        }

    def _provision_key(self, settings: dict[str, str], dynamodb: Any) -> str | None:
        if "SLUICE_API_KEYS_TABLE" not in settings:
            say("api key      none: no function has SLUICE_API_KEYS_TABLE")
            return None
        from sluice.auth import provision_key

        api_key = provision_key(self.options.org_id, self.options.env_id)
        self._keys_table = settings["SLUICE_API_KEYS_TABLE"]
        key_backup.save(self.options.state_dir, dynamodb, self._keys_table)
        say(
            f"api key      {stack_file.mask_key(api_key)} ({self.options.org_id}/{self.options.env_id}; "
            f"the full key is in stack.json, or `python -m devstack status --show-key`)"
        )
        return api_key

    def _start_runtimes(
        self, specs: list[FunctionSpec], envs: dict[str, dict[str, str]]
    ) -> dict[str, FunctionRuntime]:
        runtimes: dict[str, FunctionRuntime] = {}
        self._on_stop("function workers", lambda: _close_all(list(runtimes.values())))
        for spec in specs:
            runtime = FunctionRuntime(spec, envs[spec.logical_id], pool_size(spec, self.options.concurrency))
            runtimes[spec.logical_id] = runtime
        if not self.options.warm:
            for runtime in runtimes.values():
                say(_described(runtime, ", started on first use"))
            return runtimes
        if not runtimes:
            return runtimes
        # Cold starts in parallel: the first request meets warm workers, and a handler that does
        # not import is reported now rather than on first use.
        with ThreadPoolExecutor(max_workers=len(runtimes)) as pool:
            errors = dict(zip(runtimes, pool.map(lambda r: r.warm(), runtimes.values()), strict=True))
        for name, runtime in runtimes.items():
            error = errors[name]
            if error is None:
                say(_described(runtime))
            else:
                trace = "".join(error.get("stackTrace") or [])
                say(
                    f"function     {name} FAILED TO LOAD, its invocations will fail: "
                    f"{error.get('errorType')}: {error.get('errorMessage')}\n{trace}"
                )
        return runtimes

    def _start_server(
        self, specs: list[FunctionSpec], runtimes: dict[str, FunctionRuntime], stack: Stack
    ) -> ApiServer:
        routes = [BoundRoute(route, runtimes[spec.logical_id]) for route, spec in routes_of(specs)]
        try:
            server = ApiServer(
                (self.options.host, self.options.port),
                routes,
                verbose=self.options.verbose,
                openapi=self.options.template.resolve().parent / "openapi.json",
                tcp_nodelay=self.options.tcp_nodelay,
                cors=CorsPolicy.from_config(stack.http_api_cors(), self.environ),
            )
        except OSError as exc:
            raise StartupError(f"cannot serve on {self.options.host}:{self.options.port}: {exc}") from exc
        server.start()
        self._on_stop("http server", server.stop)
        say(f"http         {server.url}")
        for bound in routes:
            say(f"  {bound.route.method:6} {bound.route.path} -> {bound.runtime.name}")
        return server

    def _start_web_apps(
        self, specs: list[FunctionSpec], envs: dict[str, dict[str, str]], urls: dict[str, str]
    ) -> None:
        for spec in specs:
            try:
                service = web_apps.start_web_app(
                    spec,
                    envs[spec.logical_id],
                    urls[spec.logical_id],
                    cors=CorsPolicy.from_config(spec.url_cors, self.environ),
                    verbose=self.options.verbose,
                )
            except RuntimeError as exc:
                raise StartupError(f"{spec.logical_id} did not start: {exc}") from exc
            self._on_stop(f"web app {spec.logical_id}", service.stop)
            say(f"web app      {spec.logical_id} ({spec.handler} in {spec.code_uri.name}/) {service.url}")

    def _start_pollers(
        self,
        stack: Stack,
        specs: list[FunctionSpec],
        runtimes: dict[str, FunctionRuntime],
        queue_urls: dict[str, str],
        sqs: Any,
    ) -> None:
        pollers: list[SqsPoller] = []
        self._on_stop("sqs pollers", lambda: stop_all(pollers))
        for spec in specs:
            for event in spec.events:
                if event.type != "SQS" or event.properties.get("Enabled", True) in (False, "false"):
                    continue
                queue_arn = str(event.properties["Queue"])
                try:
                    queue_id = stack.logical_id_of_arn(queue_arn)
                except KeyError:
                    raise StartupError(
                        f"{spec.logical_id}.{event.name}: queue {queue_arn} is not declared in the template"
                    ) from None
                source = SqsSource.from_event(event, queue_urls[queue_id], self.options.concurrency)
                poller = SqsPoller(source, runtimes[spec.logical_id], sqs, verbose=self.options.verbose)
                poller.start()
                pollers.append(poller)
                flags = ", partial batch failures" if source.report_failures else ""
                window = f", window {source.window_s:g}s" if source.window_s else ""
                say(
                    f"sqs          {queue_id} -> {spec.logical_id} (batch {source.batch_size}{window}, "
                    f"concurrency {source.max_concurrency}{flags})"
                )

    def _start_streams(
        self, specs: list[FunctionSpec], runtimes: dict[str, FunctionRuntime], clients: dict[str, Any]
    ) -> None:
        pollers = self.stream_pollers
        self._on_stop("stream pollers", lambda: stop_all(pollers))
        for spec in specs:
            for event in spec.events:
                if event.type != "DynamoDB" or event.properties.get("Enabled", True) in (False, "false"):
                    continue
                source = StreamSource.from_event(event)
                poller = StreamPoller(
                    source, runtimes[spec.logical_id], clients["dynamodb"], clients["dynamodbstreams"]
                )
                poller.start()
                pollers.append(poller)
                flags = ", partial batch failures" if source.report_failures else ""
                filtered = f", {len(source.patterns)} filter(s)" if source.patterns else ""
                say(
                    f"stream       {source.table} -> {spec.logical_id} "
                    f"(batch {source.batch_size}{filtered}{flags})"
                )

    def _start_run_consumer(self, queue_urls: dict[str, str], sqs: Any) -> None:
        make = CONSUMERS[self.options.run_consumer]
        if make is None or RUN_QUEUE not in queue_urls:
            say(f"run queue    no consumer: {RUN_QUEUE} keeps what is sent to it")
            return
        consumer = make()
        source = SqsSource(
            name="consumer",
            queue_arn=RUN_QUEUE,
            queue_url=queue_urls[RUN_QUEUE],
            batch_size=10,
            window_s=0,
            max_concurrency=2,
            report_failures=False,
        )
        poller = SqsPoller(source, consumer, sqs, verbose=self.options.verbose)
        poller.start()
        self._on_stop("run queue consumer", poller.stop)
        self.run_consumer = consumer
        say(f"run queue    {RUN_QUEUE} -> {self.options.run_consumer} consumer (stands in for task workers)")

    def _start_schedules(self, specs: list[FunctionSpec], runtimes: dict[str, FunctionRuntime]) -> None:
        scheduler = Scheduler(self.options.schedule_scale, verbose=self.options.verbose)
        for spec in specs:
            for event in spec.events:
                if event.type not in ("Schedule", "ScheduleV2"):
                    continue
                try:
                    source = ScheduleSource.from_event(event)
                except ValueError as exc:
                    say(f"schedule     {spec.logical_id}.{event.name} skipped: {exc}")
                    continue
                if source is None:
                    say(f"schedule     {spec.logical_id}.{event.name} is disabled in the template")
                    continue
                if not self.options.schedules:
                    say(f"schedule     {spec.logical_id}.{event.name} off (--no-schedules)")
                    continue
                scheduler.add(runtimes[spec.logical_id], source)
                scale = self.options.schedule_scale
                speed = f", {scale:g}x faster" if scale != 1 else ""
                say(f"schedule     {source.expression} -> {spec.logical_id}{speed}")
        scheduler.start()
        self._on_stop("scheduler", scheduler.stop)


def _described(runtime: FunctionRuntime, note: str = "") -> str:
    spec = runtime.spec
    return (
        f"function     {runtime.name} ({spec.handler} in {spec.code_uri.name}/, "
        f"pool {runtime.size}, timeout {spec.timeout}s{note})"
    )


def _close_all(runtimes: list[FunctionRuntime]) -> None:
    # Together: each close may wait out an invocation's grace period.
    if runtimes:
        with ThreadPoolExecutor(max_workers=len(runtimes)) as pool:
            list(pool.map(lambda r: r.close(), runtimes))


def run(options: UpOptions) -> int:
    """Start the stack and serve until SIGINT/SIGTERM; the exit status."""
    stack = StackRunner(options)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stack.stopping.is_set():
            say(f"{signal.Signals(signum).name}: stopping")
        stack.stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            stack.start()
        except Stopped:
            return 0
        except StartupError as exc:
            say(f"cannot start: {exc}")
            return 2
        except Exception as exc:
            say(f"cannot start: {exc!r}\n{traceback.format_exc()}")
            return 1
        state_dir = options.state_dir
        while not stack.stopping.wait(0.5):
            stack.supervise()
            stack_file.write_health(state_dir, stack.health())
        return 0
    finally:
        stack.stop()
        say("stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
