"""``python -m devstack``: up, down, status, logs, keys create, invoke, sam-env, events."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack import key_backup, stack_file
from devstack.run_consumer import CONSUMERS, DEFAULT_CONSUMER

_EPILOG = """\
examples:
  python -m devstack up                          serve template.yaml on http://127.0.0.1:3030
  python -m devstack up --port 0 --schedule-scale 60 --state-dir .devstack/demo
  python -m devstack up --detach && python -m devstack down
  python -m devstack up --reload                 an edited handler or layer module is used at once
  python -m devstack up --aws localstack         SQS and S3 on LocalStack (`make localstack`)
  python -m devstack keys create --org org_a --env env_a --flag mollifierEnabled=true
  python -m devstack invoke trigger_intake --event events/trigger_intake_post.json
  python -m devstack logs --run run_... --follow   one run's story across intake, dispatcher, lifecycle
  python -m devstack sam-env -o .devstack/sam-env.json && python -m devstack events

environment:
  REDIS_URL          use this Redis instead of starting redis-server
  AWS_ENDPOINT_URL   use this AWS endpoint for every service instead of moto (when --aws is not given)
  AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB
                     this endpoint for one service; the others as --aws says
  SLUICE_*           override the template's value for every function
"""


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _state_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir",
        type=Path,
        default=stack_file.DEFAULT_STATE_DIR,
        help="where stack.json, the pid file and the detached log live (default: .devstack); "
        "give each concurrently running stack its own",
    )


def logs_parser(commands: Any) -> argparse.ArgumentParser:
    logs: argparse.ArgumentParser = commands.add_parser(
        "logs", help="the stack's log (STATE_DIR/devstack.log, by `up --detach`), readable and filtered"
    )
    logs.add_argument("--function", help="only this function's lines (folder name or logical id)")
    logs.add_argument("--run", dest="run_id", help="only the lines that name this run id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing lines as they are written")
    logs.add_argument("--metrics", action="store_true", help="show the EMF metric lines too, as name=value")
    logs.add_argument("--raw", action="store_true", help="print the selected lines as written (JSON)")
    logs.add_argument(
        "--template",
        type=Path,
        default=Path("template.yaml"),
        help="names the functions when no stack runs (default template.yaml)",
    )
    _state_dir_option(logs)
    return logs


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m devstack",
        description="The Docker-free local stack: Redis, AWS emulation, the template's HTTP routes, "
        "SQS event sources and schedules, each function in worker processes of its own.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the stack and serve until Ctrl-C / SIGTERM")
    up.add_argument("--port", type=int, default=3030, help="HTTP API port (default 3030; 0 = any free port)")
    up.add_argument("--host", default="127.0.0.1", help="HTTP API address (default 127.0.0.1)")
    up.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="SAM template (default template.yaml)"
    )
    _state_dir_option(up)
    up.add_argument(
        "--aws",
        default=None,
        metavar="moto|localstack|URL",
        help="AWS emulation: moto (started by devstack), localstack (SQS and S3 on "
        "http://localhost:4566, DynamoDB on moto) or a URL for every service; "
        "AWS_ENDPOINT_URL_SQS/_S3/_DYNAMODB override one service each, and any service not "
        "given runs on moto (default: AWS_ENDPOINT_URL if set, else moto)",
    )
    up.add_argument(
        "--aws-port",
        type=int,
        default=None,
        help="run moto on this port (e.g. 4566) instead of a free one, when moto serves a service",
    )
    up.add_argument(
        "--moto-server",
        choices=("devstack", "plain"),
        default="devstack",
        help="devstack (default): moto behind a keep-alive server with devstack's speed-ups; "
        "plain: moto's own server, to tell a devstack problem from a moto one",
    )
    up.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="worker processes per function, and per SQS source without "
        "ScalingConfig.MaximumConcurrency (default 8)",
    )
    up.add_argument(
        "--schedule-scale",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="run schedules FACTOR times faster: 60 makes rate(1 minute) fire every second (default 1)",
    )
    up.add_argument("--no-schedules", action="store_true", help="do not fire Schedule events")
    up.add_argument(
        "--param",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override, e.g. --param Stage=test (repeatable)",
    )
    up.add_argument("--org", default="org_dev", help="organization of the dev API key (default org_dev)")
    up.add_argument("--env", default="env_dev", help="environment of the dev API key (default env_dev)")
    up.add_argument("--verbose", "-v", action="store_true", help="log every request, batch and schedule tick")
    up.add_argument(
        "--run-consumer",
        choices=sorted(CONSUMERS),
        default=DEFAULT_CONSUMER,
        help="what takes runs off RunQueue in place of task workers: count (default) drains and "
        "counts them (see `status`); none leaves them there for you to read",
    )
    up.add_argument(
        "--tcp-nodelay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TCP_NODELAY on the HTTP API (default on; off only to measure the ~40 ms Nagle stall)",
    )
    up.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start one worker per function at start (default), so that the first request meets a "
        "warm function and a handler that does not import is reported at once; --no-warm starts "
        "workers on first use (a faster start for a stack that uses a few of its functions)",
    )
    up.add_argument(
        "--reload",
        action="store_true",
        help="pick up an edited handler (functions/*/) or layer module at the next invocation: "
        "the function's warm workers are replaced by new ones",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="start in the background (log in STATE_DIR/devstack.log); print stack.json once ready",
    )

    down = commands.add_parser("down", help="stop the stack running with this state dir")
    _state_dir_option(down)
    down.add_argument("--timeout", type=float, default=30, help="seconds to wait for it to stop")

    status = commands.add_parser(
        "status", help="print the running stack's stack.json (key masked) and the health of its parts"
    )
    status.add_argument("--show-key", action="store_true", help="print the API key in full")
    _state_dir_option(status)

    logs_parser(commands)

    keys = commands.add_parser("keys", help="API keys of the running stack")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_commands.add_parser("create", help="create an API key, print {apiKey, orgId, envId}")
    create.add_argument("--org", required=True, help="organization id")
    create.add_argument("--env", required=True, help="environment id")
    create.add_argument(
        "--env-type",
        default="DEVELOPMENT",
        help="DEVELOPMENT (default), STAGING, PREVIEW or PRODUCTION (sk_prod_ keys)",
    )
    create.add_argument(
        "--flag",
        type=_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="organization feature flag; JSON values parse (true, 5), others are strings",
    )
    create.add_argument("--template", type=Path, default=None, help="default: the running stack's template")
    _state_dir_option(create)

    sam_env = commands.add_parser(
        "sam-env", help="write an --env-vars file for `sam local invoke` from the running stack"
    )
    sam_env.add_argument(
        "--host",
        default="host.docker.internal",
        help="host a container reaches this machine by (default host.docker.internal)",
    )
    sam_env.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")
    _state_dir_option(sam_env)

    events = commands.add_parser("events", help="write the sample events with the running stack's API key")
    events.add_argument("--out-dir", type=Path, default=None, help="default: STATE_DIR/events")
    _state_dir_option(events)

    inv = commands.add_parser("invoke", help="invoke a function once with an event (sam local invoke)")
    inv.add_argument("function", help="short name (folder under functions/) or logical id")
    inv.add_argument(
        "--event",
        "-e",
        required=True,
        help=f"event JSON file, or - for stdin; {'<devstack-api-key>'} becomes the stack's key",
    )
    inv.add_argument("--template", type=Path, default=None, help="default: the running stack's template")
    _state_dir_option(inv)
    return root


def cmd_up(args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(args)
    from devstack.up import UpOptions, run

    return run(
        UpOptions(
            port=args.port,
            host=args.host,
            template=args.template,
            state_dir=args.state_dir,
            aws_port=args.aws_port,
            concurrency=max(1, args.concurrency),
            schedule_scale=args.schedule_scale,
            schedules=not args.no_schedules,
            verbose=args.verbose,
            parameters=dict(args.param),
            org_id=args.org,
            env_id=args.env,
            tcp_nodelay=args.tcp_nodelay,
            aws=args.aws,
            run_consumer=args.run_consumer,
            moto_server=args.moto_server,
            warm=args.warm,
            reload=args.reload,
        )
    )


def _detach(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / stack_file.LOG_FILE
    argv = [a for a in sys.argv[1:] if a != "--detach"]
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "devstack", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    while child.poll() is None:
        info = stack_file.read_stack(state_dir)
        if info is not None and info.get("pid") == child.pid:
            print(json.dumps(stack_file.masked(info), indent=2))
            sys.stderr.write(f"devstack: running in the background (pid {child.pid}, log {log_path})\n")
            return 0
        time.sleep(0.1)
    sys.stderr.write(log_path.read_text(encoding="utf-8", errors="replace"))
    sys.stderr.write(f"devstack: the stack exited with status {child.returncode} while starting\n")
    return child.returncode or 1


def cmd_down(args: argparse.Namespace) -> int:
    pid = stack_file.read_pid(args.state_dir)
    if pid is None or not stack_file.pid_alive(pid):
        sys.stderr.write(f"devstack: no stack runs with state dir {args.state_dir}\n")
        stack_file.clear(args.state_dir, pid)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while stack_file.pid_alive(pid):
        if time.monotonic() > deadline:
            sys.stderr.write(f"devstack: pid {pid} did not stop within {args.timeout:g}s\n")
            return 1
        time.sleep(0.1)
    sys.stderr.write(f"devstack: stopped pid {pid}\n")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = stack_file.read_stack(args.state_dir)
    if info is None or not stack_file.pid_alive(int(info.get("pid", 0)) or -1):
        sys.stderr.write(f"devstack: no stack runs with state dir {args.state_dir}\n")
        return 1
    shown = info if args.show_key else stack_file.masked(info)
    health = stack_file.read_health(args.state_dir)
    if health is None:
        shown["health"] = {"state": "starting"}
    else:
        age = time.time() - float(health.get("updatedAt", 0))
        children = health.get("children", {}).values()
        state = "up" if all(c.get("state") == "up" for c in children) else "degraded"
        shown["health"] = {"state": "stale" if age > stack_file.HEALTH_STALE_S else state, **health}
    print(json.dumps(shown, indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from devstack import logs
    from devstack.template import Stack

    function = None
    if args.function:
        info = stack_file.read_stack(args.state_dir)
        functions = (info or {}).get("functions") or {
            spec.logical_id: spec.name for spec in Stack(args.template).functions()
        }
        function = logs.resolve_function(args.function, functions)
    filters = logs.Filters(function=function, run_id=args.run_id, metrics=args.metrics, raw=args.raw)
    return logs.run(args.state_dir / stack_file.LOG_FILE, filters, args.follow)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from devstack.attach import running_stack, use_stack_in_process

    info = running_stack(args.state_dir)
    use_stack_in_process(info, args.template)
    from sluice import aws
    from sluice.auth import provision_key
    from sluice.auth.admin import flag_value
    from sluice.config import get_settings

    flags = {name: flag_value(value) for name, value in args.flag}
    api_key = provision_key(args.org, args.env, env_type=args.env_type, flags=flags or None)
    # So that the key outlives a restart of the stack's moto.
    key_backup.save(args.state_dir, aws.dynamodb(), get_settings().api_keys_table)
    print(json.dumps({"apiKey": api_key, "orgId": args.org, "envId": args.env}))
    return 0


def cmd_sam_env(args: argparse.Namespace) -> int:
    from devstack.attach import running_stack
    from devstack.sam import sam_env

    text = json.dumps(sam_env(running_stack(args.state_dir), args.host), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        stack_file.write_atomic(args.output, text)
        sys.stderr.write(f"devstack: wrote {args.output}\n")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from devstack.attach import running_stack
    from devstack.sam import write_events

    out_dir = args.out_dir or args.state_dir / "events"
    for path in write_events(running_stack(args.state_dir), out_dir):
        print(path)
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    from devstack.invoke import invoke

    outcome = invoke(args.function, args.event, args.state_dir, args.template)
    if outcome.ok:
        print(json.dumps(outcome.result))
        return 0
    print(json.dumps(outcome.error))
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            return cmd_up(args)
        if args.command == "down":
            return cmd_down(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "logs":
            return cmd_logs(args)
        if args.command == "keys":
            return cmd_keys_create(args)
        if args.command == "sam-env":
            return cmd_sam_env(args)
        if args.command == "events":
            return cmd_events(args)
        return cmd_invoke(args)
    except (RuntimeError, KeyError, FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"devstack: {exc}\n")
        return 2
