"""``codespace plan PATH --target local|kubernetes``: print what a spawn would do.

Both targets render the same launch plan (:mod:`codespace.launch`). ``--target local``
prints it as the local mode applies it: the environment (hash, Python, kernel layer), the
server's variables, the dataset links, the lifecycle commands and the proxied apps, with
the data directory's paths (``--data-dir``, ``--user``, ``--server``). ``--target
kubernetes`` (the default) prints every object a spawn would create, for admins and CI to
review and lint (``kubectl apply --dry-run=server -f -``, kubeconform, policy checks)
without a hub: the image build Job (when the image must be built, with its Dockerfile),
the workspace PVC and the pod as KubeSpawner will create it, as YAML documents or, with
``--json``, one ``v1`` ``List``. Without ``--config`` the documented default profile is
used (CPU only: a GPU request is refused, naming the profile).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from codespace.kube.config import ConfigError, load_config
from codespace.kube.datasets import DatasetNotReady
from codespace.kube.gpu import GpuUnsatisfiable
from codespace.kube.plan import Names, PlanError, launch_plan, make_kube_plan
from codespace.launch import TARGETS, Placement, make_launch_plan
from codespace.options import UserOptions


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print the objects a spawn would create (Kubernetes)",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("path", type=Path, help="the repository checkout")
    parser.add_argument("--target", choices=list(TARGETS), default="kubernetes")
    parser.add_argument("--profile", help="profile name (default: the config's default)")
    parser.add_argument(
        "--config", type=Path, help="the admin's Kubernetes document (YAML/JSON; see README)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON v1 List")
    parser.add_argument("--repo", help="repository URL (default: PATH's origin remote)")
    parser.add_argument("--ref", help="branch, tag or commit the pod clones")
    parser.add_argument(
        "--dataset", action="append", default=[], help="an extra dataset to mount (repeatable)"
    )
    parser.add_argument("--spec-config", help="devcontainer configuration name when several")
    parser.add_argument("--namespace", default="codespaces")
    parser.add_argument("--user", default="user", help="user name for object names and paths")
    parser.add_argument("--server", default="", help="server name (local paths)")
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="the hub's data directory (local)"
    )
    parser.set_defaults(func=run)


def _origin(path: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(path), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        result = None
    if result is not None and result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip()
    return str(path.resolve())


def _local_placement(args: argparse.Namespace) -> Placement:
    root = args.data_dir.resolve()
    name = args.server or "default"
    return Placement(
        "local",
        str(root / "workspaces" / args.user / name),
        str(root / "servers" / args.user / name / "env"),
    )


def _dump(data: object, as_json: bool) -> str:
    if as_json:
        return json.dumps(data, indent=2) + "\n"
    if isinstance(data, list):
        return yaml.dump_all(data, Dumper=_NoAliases, sort_keys=False)
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    from codespace.resolve import resolve  # the spec layer; imported late to keep help fast
    from codespace.spec.errors import SpecError

    if not args.path.is_dir():
        print(f"codespace plan: {args.path} is not a directory", file=sys.stderr)
        return 2
    try:
        options = UserOptions(
            repo=args.repo or _origin(args.path),
            ref=args.ref,
            profile=args.profile,
            datasets=args.dataset,
        )
        resolution = resolve(args.path, config=args.spec_config, mode=args.target)
        if args.target == "local":
            launch = make_launch_plan(resolution, options, _local_placement(args))
            for warning in launch.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(_dump(launch.describe(), args.json), end="")
            return 0
        config = load_config(args.config)
        names = Names(
            namespace=args.namespace, pod=f"jupyter-{args.user}", pvc=f"claim-{args.user}"
        )
        plan = make_kube_plan(launch_plan(resolution, options, config), config, names=names)
    except SpecError as error:
        print(str(error), file=sys.stderr)
        return 1
    except (ConfigError, GpuUnsatisfiable, PlanError, DatasetNotReady, ValueError) as error:
        print(f"codespace plan: {error}", file=sys.stderr)
        return 1
    for warning in [*resolution.warnings, *plan.warnings]:
        print(f"warning: {warning}", file=sys.stderr)
    objects = plan.objects()
    if args.json:
        print(_dump({"apiVersion": "v1", "kind": "List", "items": objects}, True), end="")
    else:
        print(_dump(objects, False), end="")
    return 0
