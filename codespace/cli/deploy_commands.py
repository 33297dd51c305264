"""``codespace deploy create|list|show|logs|predict|delete|token``.

The commands talk to this codespace's server extension (the REST API the lab panel, the
widget and the SDK use)::

    codespace deploy create model.joblib                  # waits until it serves
    codespace deploy create model.joblib --name iris --protocol v1 --idle-timeout 15m
    codespace deploy predict iris --data '[[5.1, 3.5, 1.4, 0.2]]'
    codespace deploy predict iris --file request.json --json
    codespace deploy token iris --note "for Ana" --expires-in 7d
    codespace deploy list --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from codespace.cli.common import command_group, print_fields, print_table, runner
from codespace.client import ApiError
from codespace.deploy.records import CREATING
from codespace.deploy.sdk import DeployApi, deployment_spec, request_body, response_outputs

PROG = "codespace deploy"


def _url(record: dict[str, Any]) -> str:
    return (record.get("endpoint") or {}).get("url") or ""


def _summary(record: dict[str, Any]) -> str:
    reason = f" ({record['reason']})" if record.get("reason") else ""
    url = f"  {_url(record)}" if _url(record) else ""
    return f"{record['name']}  {record['state']}{reason}{url}"


def _wait(api: DeployApi, record: dict[str, Any], timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while record["state"] in CREATING:
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"deployment {record['name']!r} is still {record['state']} after {timeout:g}s"
            )
        time.sleep(poll)
        record = api.get(record["name"])
    return record


def _create(args: argparse.Namespace, api: DeployApi) -> Any:
    spec = deployment_spec(
        args.artifact,
        args.name,
        format=args.format,
        protocol=args.protocol,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        idle_timeout=args.idle_timeout,
        backend=args.backend,
    )
    record = api.create(spec)
    if args.wait:
        record = _wait(api, record, args.timeout, args.poll)
        if record["state"] == "failed":
            args.exit_code = 1
    if args.json:
        return record
    print(_summary(record))
    if record["state"] == "failed":
        print(f"{PROG}: deployment {record['name']!r} failed", file=sys.stderr)
    elif record.get("endpoint"):
        print(f"  {record['protocol']} requests: POST {record['endpoint']['infer']}")
    return None


def _list(args: argparse.Namespace, api: DeployApi) -> Any:
    records = api.list()
    if args.json:
        return records
    rows = [["NAME", "STATE", "FORMAT", "PROTOCOL", "BACKEND", "URL"]]
    for record in records:
        state = record["state"] + (f" ({record['reason']})" if record.get("reason") else "")
        rows.append(
            [
                record["name"],
                state,
                record["format"],
                record["protocol"],
                record["backend"],
                _url(record),
            ]
        )
    print_table(rows)
    return None


def _show(args: argparse.Namespace, api: DeployApi) -> Any:
    record = api.get(args.name)
    if args.json:
        return record
    spec = record.pop("spec")
    endpoint = record.pop("endpoint", None) or {}
    print_fields(record.items(), 14)
    for key in ("url", "infer", "ready"):
        if endpoint.get(key):
            print(f"{key + ':':14} {endpoint[key]}")
    print(f"{'spec:':14} {json.dumps(spec, separators=(',', ':'))}")
    return None


def _logs(args: argparse.Namespace, api: DeployApi) -> Any:
    text = api.logs(args.name, args.tail)
    if args.json:
        return {"text": text}
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return None


def _request(args: argparse.Namespace) -> Any:
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"{args.file}: {error.strerror}") from error
    else:
        text = args.data
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"the request is not JSON: {error}") from error


def _predict(args: argparse.Namespace, api: DeployApi) -> Any:
    data = _request(args)
    full = isinstance(data, dict) and ("inputs" in data or "instances" in data)
    protocol = "v2" if full else api.get(args.name)["protocol"]
    answer = api.predict(args.name, request_body(data, protocol))
    if args.json:
        return answer
    print(json.dumps(response_outputs(answer, protocol)))
    return None


def _delete(args: argparse.Namespace, api: DeployApi) -> Any:
    api.delete(args.name)
    if args.json:
        return {"name": args.name, "deleted": True}
    print(f"deleted {args.name}")
    return None


def _token(args: argparse.Namespace, api: DeployApi) -> Any:
    expires: Any = args.expires_in
    if isinstance(expires, str) and expires.isdigit():
        expires = int(expires)
    token = api.share(args.name, args.note, expires)
    if args.json:
        return token
    print(token["token"])
    expiry = f"expires {token['expires']}" if token.get("expires") else "does not expire"
    print(f"  for {token['deployment']} only; {expiry}", file=sys.stderr)
    return None


_run = runner(PROG, lambda args: DeployApi(), (ApiError, ValueError, TypeError, TimeoutError))


def _create_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    create = commands.add_parser(
        "create",
        parents=[common],
        help="deploy a model file or directory",
        description="Serve a model of the workspace over the KServe protocol (its format is "
        "read from the file) and wait until it answers.",
    )
    create.add_argument("artifact", help="a model file or directory of the workspace, or a URI")
    create.add_argument("--name", help="a DNS label (default: from the file's name)")
    create.add_argument("--format", help="sklearn, xgboost, lightgbm, ... (default: detected)")
    create.add_argument("--protocol", choices=("v1", "v2"), help="default: v2")
    create.add_argument(
        "--min-replicas", type=int, metavar="N", help="0 (the default): scale to zero"
    )
    create.add_argument("--max-replicas", type=int, help=argparse.SUPPRESS)
    create.add_argument(
        "--idle-timeout", metavar="DURATION", help="stop after this long without requests (15m)"
    )
    create.add_argument("--backend", help="a configured backend (default: the site's)")
    create.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return at once, do not wait"
    )
    create.add_argument(
        "--timeout", type=float, default=600, metavar="SECONDS", help="how long to wait (600)"
    )
    create.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    create.set_defaults(func=_run(_create))


def register(subparsers: argparse._SubParsersAction) -> None:
    commands, common = command_group(subparsers, "deploy", "deploy models and call them")

    _create_parser(commands, common)
    commands.add_parser("list", parents=[common], help="your deployments").set_defaults(
        func=_run(_list)
    )
    for name, handler, text in (
        ("show", _show, "one deployment"),
        ("delete", _delete, "stop serving and remove a deployment"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("name")
        command.set_defaults(func=_run(handler))
    logs = commands.add_parser("logs", parents=[common], help="the model server's output")
    logs.add_argument("name")
    logs.add_argument("--tail", type=int, help="the last N lines")
    logs.set_defaults(func=_run(_logs))

    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="send a request",
        description="Send rows (a JSON list: built into a V2 tensor or V1 instances) or a full "
        "request body (JSON with inputs/instances) and print the predictions.",
    )
    predict.add_argument("name")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="JSON: rows such as [[1, 2]], or a request body")
    source.add_argument("--file", help="a JSON file with the same")
    predict.set_defaults(func=_run(_predict))

    token = commands.add_parser(
        "token", parents=[common], help="mint a token that calls this endpoint only"
    )
    token.add_argument("name")
    token.add_argument("--note", default="", help="what it is for")
    token.add_argument("--expires-in", help="seconds or a duration (7d); default: never")
    token.set_defaults(func=_run(_token))
