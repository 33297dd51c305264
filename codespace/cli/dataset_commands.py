"""``codespace datasets list|show|files|prewarm|mount``.

Inside a codespace the commands talk to the server extension (the same API the lab panel
uses). With ``--catalog FILE`` they read a local catalog directly, without a server.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from codespace.cli.common import command_group, print_fields, print_table, runner
from codespace.client import ApiError, CodespaceClient
from codespace.datasets.backend import DatasetError
from codespace.datasets.direct import DirectClient


def _source(args: argparse.Namespace) -> Any:
    if args.catalog:
        return DirectClient(args.catalog, cache_dir=args.cache_dir, workspace=args.workspace)
    return CodespaceClient()


def _list(args: argparse.Namespace, api: Any) -> Any:
    datasets = api.list_datasets()
    if args.json:
        return datasets
    rows = [["NAME", "PHASE", "SIZE", "FILES", "CACHED", "SOURCE", "MOUNT"]]
    for d in datasets:
        s = d["status"]
        rows.append(
            [
                d["name"],
                s["phase"],
                s.get("ufsTotal") or "",
                str(s.get("fileNum") or ""),
                s.get("cachedPercentage") or "",
                d["source"],
                d["mountPath"] if d["mounted"] else "",
            ]
        )
    print_table(rows)
    return None


def _show(args: argparse.Namespace, api: Any) -> Any:
    dataset = api.get_dataset(args.name)
    if args.json:
        return dataset
    status = dataset.pop("status")
    print_fields([*dataset.items(), *status.items()], 18)
    return None


def _files(args: argparse.Namespace, api: Any) -> Any:
    page = api.list_files(args.name, args.path, limit=args.limit, cursor=args.cursor)
    if args.json:
        return page
    for entry in page["entries"]:
        size = "" if entry["size"] is None else str(entry["size"])
        suffix = "/" if entry["type"] == "directory" else ""
        print(f"{size:>12}  {entry['path']}{suffix}")
    if page.get("nextCursor"):
        print(f"... {page['total']} entries; next page: --cursor {page['nextCursor']}")
    return None


def _prewarm(args: argparse.Namespace, api: Any) -> Any:
    op = api.prewarm(args.name, args.paths or None)
    while args.wait and op["phase"] not in ("Complete", "Failed"):
        time.sleep(1)
        op = api.prewarm_history(args.name)[0]
        total = op.get("bytesTotal") or 0
        print(f"\r{op['phase']}: {op['bytesDone']}/{total} bytes", end="", file=sys.stderr)
    if args.wait:
        print(file=sys.stderr)
    if args.json:
        return op
    print(f"prewarm {op['id']}: {op['phase']}" + (f" ({op['message']})" if op["message"] else ""))
    return None


def _mount(args: argparse.Namespace, api: Any) -> Any:
    result = api.mount(args.name)
    if args.json:
        return result
    state = "mounted" if result["mounted"] else "pending restart"
    print(f"{args.name}: {state} at {result['mountPath']}: {result['message']}")
    return None


_run = runner("codespace datasets", _source, (ApiError, DatasetError, ValueError))


def register(subparsers: argparse._SubParsersAction) -> None:
    commands, common = command_group(
        subparsers, "datasets", "list, inspect, prewarm and mount datasets"
    )
    common.add_argument("--catalog", help="read this local catalog directly instead of the server")
    common.add_argument("--cache-dir", help="with --catalog: the prewarm cache directory")
    common.add_argument("--workspace", help="with --catalog: mount under WORKSPACE/datasets/")

    commands.add_parser("list", parents=[common], help="all datasets").set_defaults(
        func=_run(_list)
    )
    show = commands.add_parser("show", parents=[common], help="one dataset and its status")
    show.add_argument("name")
    show.set_defaults(func=_run(_show))
    files = commands.add_parser("files", parents=[common], help="list files in a dataset")
    files.add_argument("name")
    files.add_argument("path", nargs="?", default="", help="directory inside the dataset")
    files.add_argument("--limit", type=int, default=None)
    files.add_argument("--cursor", default=None, help="nextCursor from the previous page")
    files.set_defaults(func=_run(_files))
    prewarm = commands.add_parser("prewarm", parents=[common], help="warm the cache")
    prewarm.add_argument("name")
    prewarm.add_argument("paths", nargs="*", help="paths inside the dataset (default: all)")
    prewarm.add_argument("--wait", action="store_true", help="follow progress until done")
    prewarm.set_defaults(func=_run(_prewarm))
    mount = commands.add_parser("mount", parents=[common], help="mount into this codespace")
    mount.add_argument("name")
    mount.set_defaults(func=_run(_mount))
