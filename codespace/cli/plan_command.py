"""``codespace plan PATH --target kubernetes``: print every object a spawn would create.

For admins and CI to review and lint (``kubectl apply --dry-run=server -f -``,
kubeconform, policy checks) without a hub. Prints the image build Job (when the image
must be built), the workspace PVC and the pod as KubeSpawner will create it, as YAML
documents or, with ``--json``, one ``v1`` ``List``. Without ``--config`` the documented
default profile is used (CPU only: a GPU request is refused, naming the profile).
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
from codespace.kube.plan import Names, PlanError, make_kube_plan
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
    parser.add_argument("--target", choices=["kubernetes"], default="kubernetes")
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
    parser.add_argument("--user", default="user", help="user name for object names")
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


def run(args: argparse.Namespace) -> int:
    from codespace.resolve import resolve  # the spec layer; imported late to keep help fast
    from codespace.spec.errors import SpecError

    if not args.path.is_dir():
        print(f"codespace plan: {args.path} is not a directory", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        options = UserOptions(
            repo=args.repo or _origin(args.path),
            ref=args.ref,
            profile=args.profile,
            datasets=args.dataset,
        )
        resolution = resolve(args.path, config=args.spec_config, mode="kubernetes")
        names = Names(
            namespace=args.namespace, pod=f"jupyter-{args.user}", pvc=f"claim-{args.user}"
        )
        plan = make_kube_plan(
            resolution.codespace, options, config, resolution.env_hash, names=names
        )
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
        document = {"apiVersion": "v1", "kind": "List", "items": objects}
        print(json.dumps(document, indent=2))
    else:
        print(yaml.dump_all(objects, Dumper=_NoAliases, sort_keys=False), end="")
    return 0
