"""``codespace-hub``: JupyterHub + configurable-http-proxy with the embedded local defaults.

Everything lives in one data directory (SQLite database, workspaces, the environment cache,
secrets, logs). Login is a generated shared password, stored mode 0600 in the data directory
and printed at start; admin users log in with a separate generated admin password. With
``CODESPACE_HUB_ADMIN_TOKEN`` set, an admin service with that token can manage users and
servers through the REST API (``Authorization: token ...``). ``--dataset-catalog FILE``
(default ``<data-dir>/datasets.yaml`` when it exists) names the datasets the spawn form offers
and codespaces mount.

The JupyterHub configuration itself is ``config/jupyterhub_config_local.py``; this command
prepares the data directory and passes the settings to it through ``CODESPACE_HUB_*``
environment variables, so ``jupyterhub -f config/jupyterhub_config_local.py`` works too.
Arguments after ``--`` go to JupyterHub unchanged.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = REPO_ROOT / "config" / "jupyterhub_config_local.py"


def write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner alone (mode 0600 from its creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def secret_file(path: Path, length: int, make: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """Read a secret, or generate it with ``make(length)`` and store it (mode 0600) the
    first time."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = make(length)
    write_private(path, value + "\n")
    return value


def crypt_key(path: Path) -> bytes:
    """The 32-byte key that encrypts ``auth_state`` (hex, mode 0600, made the first time)."""
    return bytes.fromhex(secret_file(path, 32, secrets.token_hex))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codespace-hub",
        description="Start Codespace Hub (JupyterHub with local codespaces) on one machine.",
    )
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--data-dir", default="data", help="database, workspaces, env cache, secrets, logs"
    )
    parser.add_argument(
        "--dataset-catalog",
        default=None,
        metavar="FILE",
        help="dataset catalog YAML offered in the spawn form "
        "(default: <data-dir>/datasets.yaml if it exists)",
    )
    parser.add_argument(
        "--admin-user",
        action="append",
        default=None,
        help="an admin user name (repeat for more; default: admin)",
    )
    parser.add_argument(
        "--allow-repo-root",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory under which local paths / file:// URLs may be given as repositories "
        "(repeat for more; default: none)",
    )
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="do not run codespaces in the bubblewrap sandbox (accounts and limits stay)",
    )
    parser.add_argument(
        "--idle-timeout",
        default=None,
        metavar="DURATION",
        help="stop a codespace idle this long when its .codespace sets no lifetime.idleTimeout "
        "(seconds or 30m, 2h, 1d; default 1h; 0: never)",
    )
    parser.add_argument(
        "--max-idle-timeout",
        default=None,
        metavar="DURATION",
        help="the longest lifetime.idleTimeout a codespace may ask for (default: any)",
    )
    parser.add_argument(
        "--max-age",
        default=None,
        metavar="DURATION",
        help="stop every codespace this long after its start, busy or not (default: never)",
    )
    parser.add_argument("--no-cull", action="store_true", help="never stop idle codespaces")
    add_login_arguments(parser)
    parser.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="the group policy (YAML): profiles, quotas, datasets and backends per group "
        "(README: Identity and policy; default: none, everything allowed)",
    )
    parser.add_argument("jupyterhub_args", nargs="*", help="after --: arguments for JupyterHub")
    return parser


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("login (README: Identity and policy)")
    group.add_argument(
        "--login",
        choices=("shared-password", "gitea", "gitlab", "github", "oidc"),
        default=None,
        help="how users log in (default: a generated shared password)",
    )
    group.add_argument("--login-config", default="", metavar="FILE", help="login settings YAML")
    group.add_argument("--login-url", default="", help="the Git host's or OIDC issuer's URL")
    group.add_argument("--login-client-id", default="", help="the OAuth client id")
    group.add_argument(
        "--login-client-secret-file", default="", metavar="FILE", help="the OAuth client secret"
    )
    group.add_argument(
        "--login-git-url", default="", help="the Git host the login's token clones from"
    )
    group.add_argument(
        "--login-admin-group", action="append", default=[], help="a provider group of admins"
    )


def login_environment(args: argparse.Namespace, data_dir: Path) -> tuple[dict[str, str], str]:
    """Check the login settings; store them (0600) for the config; the banner's login line."""
    from codespace.spec.errors import SpecError
    from hub.identity import load_login_settings

    if not args.login and not args.login_config:
        return {}, ""
    try:
        settings = load_login_settings(
            args.login_config,
            provider=args.login,
            url=args.login_url,
            client_id=args.login_client_id,
            client_secret_file=args.login_client_secret_file,
            git_url=args.login_git_url,
            admin_groups=args.login_admin_group,
        )
    except SpecError as error:
        raise SystemExit(f"codespace-hub: login settings:\n{error}") from None
    if settings.provider == "shared-password":
        return {}, ""
    path = data_dir / "secrets" / "login.json"
    write_private(path, settings.model_dump_json())
    git = f"; private repositories from {settings.git_url}" if settings.git_url else ""
    return {
        "CODESPACE_HUB_LOGIN": str(path)
    }, f"Log in with {settings.provider} ({settings.url}){git}"


def policy_environment(args: argparse.Namespace) -> dict[str, str]:
    """Check the policy file at start (file:line errors end the command)."""
    if not args.policy:
        return {}
    from codespace.policy import load_policy
    from codespace.spec.errors import SpecError

    path = Path(args.policy).resolve()
    try:
        load_policy(path)
    except SpecError as error:
        raise SystemExit(f"codespace-hub: policy:\n{error}") from None
    return {"CODESPACE_HUB_POLICY": str(path)}


def hub_environment(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str]]:
    """Environment for the JupyterHub config and the login secrets to print."""
    data_dir = Path(args.data_dir).resolve()
    catalog = Path(args.dataset_catalog).resolve() if args.dataset_catalog else None
    if catalog is not None and not catalog.is_file():
        raise SystemExit(f"codespace-hub: dataset catalog {catalog} does not exist")
    for sub in ("secrets", "workspaces", "servers", "env-cache"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    (data_dir / "secrets").chmod(0o700)
    # the database holds every token: private before JupyterHub creates it (sqlite keeps the
    # mode, for its journal too), whatever the umask
    database = data_dir / "jupyterhub.sqlite"
    os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    database.chmod(0o600)
    user_password = secret_file(data_dir / "secrets" / "user-password", 12)
    admin_password = secret_file(data_dir / "secrets" / "admin-password", 32)
    # with a login provider "admin" may be anyone's name there: admins only when named
    admins = args.admin_user or ([] if (args.login or args.login_config) else ["admin"])
    env = {
        "CODESPACE_HUB_DATA_DIR": str(data_dir),
        "CODESPACE_HUB_IP": args.ip,
        "CODESPACE_HUB_PORT": str(args.port),
        "CODESPACE_HUB_ADMIN_USERS": ",".join(admins),
    }
    login = {"user": user_password, "admin": admin_password, "admins": ", ".join(admins)}
    if catalog is not None:
        env["CODESPACE_HUB_DATASET_CATALOG"] = str(catalog)
    roots = [str(Path(root).resolve()) for root in args.allow_repo_root]
    env["CODESPACE_HUB_REPO_ROOTS"] = os.pathsep.join(roots)
    env["CODESPACE_HUB_SANDBOX"] = "0" if args.no_sandbox else "1"
    env.update(culling_environment(args))
    login_env, login["login"] = login_environment(args, data_dir)
    env.update(login_env)
    env.update(policy_environment(args))
    login["policy"] = env.get("CODESPACE_HUB_POLICY", "none (everything allowed)")
    login["trust"] = describe_trust(data_dir, sandbox=not args.no_sandbox, roots=roots)
    login["datasets"] = describe_catalog(
        Path(env.get("CODESPACE_HUB_DATASET_CATALOG") or data_dir / "datasets.yaml")
    )
    return env, login


def culling_environment(args: argparse.Namespace) -> dict[str, str]:
    """The culler's settings for the config (hub.cull); a bad duration ends the command."""
    from codespace.activity.cull import parse_duration

    env = {"CODESPACE_HUB_CULL": "0" if args.no_cull else "1"}
    given = {
        "CODESPACE_HUB_IDLE_TIMEOUT": ("--idle-timeout", args.idle_timeout),
        "CODESPACE_HUB_MAX_IDLE_TIMEOUT": ("--max-idle-timeout", args.max_idle_timeout),
        "CODESPACE_HUB_MAX_AGE": ("--max-age", args.max_age),
    }
    for key, (flag, value) in given.items():
        if value is None:
            continue
        try:
            env[key] = str(parse_duration(value))
        except ValueError as error:
            raise SystemExit(f"codespace-hub: {flag}: {error}") from None
    return env


def describe_catalog(path: Path) -> str:
    """One line for the banner: which catalog, how many datasets (or why it is unreadable)."""
    from codespace.datasets.backend import DatasetError
    from codespace.datasets.catalog import Catalog

    if not path.exists():
        return f"none (create {path} or pass --dataset-catalog FILE)"
    try:
        count = len(Catalog(path).entries())
    except DatasetError as error:
        return f"{path} cannot be read yet: {error}"
    return f"{path} ({count} dataset{'s' if count != 1 else ''})"


def describe_trust(data_dir: Path, *, sandbox: bool, roots: list[str]) -> str:
    """Banner lines: who codespaces run as, which limits and sandbox apply, which local
    repositories are allowed (the README's trust model section explains them)."""
    from codespace.local.accounts import harden_data_dir, running_as_root, traversal_problems
    from codespace.local.sandbox import platform_dirs
    from spawner.local_isolation import host_cgroups, host_sandbox

    local = f"local repositories under: {', '.join(roots)}" if roots else "no local repositories"
    if not running_as_root():
        user = os.environ.get("USER") or str(os.getuid())
        return (
            f"every codespace runs as {user}, the hub's own account, and can read what the "
            "hub can (run as root for an account per user); " + local
        )
    harden_data_dir(data_dir, traverse=("workspaces", "homes"))
    lines = [
        "each user's codespaces run as their own account (cs-<name>)",
        host_cgroups().sentence(),
        host_sandbox().sentence() if sandbox else "sandbox off (--no-sandbox)",
        local,
    ]
    if not (sandbox and host_sandbox().ok):
        lines.append(
            "warning: without the sandbox a user's codespaces can reach the environments that "
            "user builds (shared with the others as built)"
        )
        lines += [f"warning: {problem}" for problem in traversal_problems(*platform_dirs())]
    return "\n    ".join(lines)


def banner(ip: str, port: int, data_dir: str, login: dict[str, str]) -> str:
    host = "127.0.0.1" if ip in ("", "0.0.0.0") else ip  # noqa: S104 - only for display
    return "\n".join(
        [
            "",
            f"  Codespace Hub: http://{host}:{port}/",
            *(
                [f"  {login['login']}"]
                if login.get("login")
                else [
                    f"  Log in with any user name and the password: {login['user']}",
                    f"  Admin users ({login['admins']}) use the admin password in "
                    f"{data_dir}/secrets/admin-password",
                ]
            ),
            f"  Data (database, workspaces, env cache, secrets): {data_dir}",
            f"  Datasets: {login.get('datasets', 'none')}",
            f"  Codespaces: {login.get('trust', '')}",
            f"  Policy: {login.get('policy', 'none (everything allowed)')}",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env, login = hub_environment(args)
    os.environ.update(env)
    print(banner(args.ip, args.port, env["CODESPACE_HUB_DATA_DIR"], login), flush=True)
    from jupyterhub.app import JupyterHub

    os.chdir(env["CODESPACE_HUB_DATA_DIR"])
    JupyterHub.launch_instance([f"--config={CONFIG_FILE}", *args.jupyterhub_args])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
