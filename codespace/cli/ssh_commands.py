"""``codespace login|logout|ssh|ssh-proxy|ssh-config``: SSH into codespaces through the hub.

::

    codespace login --hub https://hub.example.org --add-key    # token from the hub's token page
    codespace ssh analysis                    # a shell in alice's codespace "analysis"
    codespace ssh bob/analysis -L 8888:localhost:8888 -- jupyter lab list
    codespace ssh-config --dry-run            # the ~/.ssh/config block, as a diff
    ssh codespace-analysis / scp / VS Code Remote-SSH: through `codespace ssh-proxy`

``ssh-proxy`` is the ProxyCommand: it starts the codespace when it is stopped (progress on
stderr; stdout is the SSH stream), then pumps stdin/stdout over the codespace's ``sshd/``
websocket. It and ``ssh`` exit 255 (ssh's code for a connection failure) when the hub refuses
the token, cannot be reached, or the codespace does not start.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from codespace.ssh import sshconfig
from codespace.ssh.client import (
    HubClient,
    HubError,
    Target,
    check_name,
    ensure_running,
    fingerprint,
    parse_target,
    websocket_url,
)
from codespace.ssh.hubs import HubLogin, HubStore, LoginError, normalize_hub_url

DEFAULT_KEYS = ("id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub")
# ssh's options that take a value (ssh(1) SYNOPSIS): the next word belongs to them.
SSH_VALUE_OPTIONS = set("BbcDEeFIiJLlmOoPpQRSWw")
START_TIMEOUT = 600.0
Command = Callable[[argparse.Namespace], int]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _guard(prog: str, failure: int) -> Callable[[Command], Command]:
    """Report the errors a user can act on as ``<prog>: <message>`` and ``failure``."""

    def wrap(command: Command) -> Command:
        def func(args: argparse.Namespace) -> int:
            try:
                return command(args)
            except (HubError, LoginError, ValueError, OSError) as error:
                _say(f"{prog}: {error}")
                return failure

        return func

    return wrap


def _connect(args: argparse.Namespace) -> tuple[HubStore, HubLogin, HubClient]:
    store = HubStore()
    login = store.get(args.hub)
    return store, login, HubClient(login)


# login / logout ------------------------------------------------------------------------------


def _read_token(args: argparse.Namespace, url: str) -> str:
    if args.token:
        return args.token.strip()
    if args.token_stdin:
        return sys.stdin.readline().strip()
    _say(f"Create a token at {url}/hub/token and paste it here.")
    return getpass.getpass("Token: ").strip()


def public_key(path: Path) -> tuple[str, str]:
    """A public key file's text and its title (the comment, else the file name); refuses
    anything that is not one line ``<type> <base64> [comment]`` (a private key above all)."""
    text = path.read_text().strip()
    words = text.split()
    if len(text.splitlines()) != 1 or len(words) < 2 or "PRIVATE KEY" in text:
        raise ValueError(f"{path} is not an OpenSSH public key (give the .pub file)")
    fingerprint(words[1])  # valid base64
    return text, " ".join(words[2:]) or path.name


def default_key(home: Path | None = None) -> Path:
    ssh_dir = (home or Path.home()) / ".ssh"
    for name in DEFAULT_KEYS:
        if (ssh_dir / name).is_file():
            return ssh_dir / name
    names = ", ".join(DEFAULT_KEYS)
    raise ValueError(f"no public key in {ssh_dir} ({names}); make one with ssh-keygen -t ed25519")


def _add_key(hub: HubClient, path_text: str) -> None:
    path = Path(path_text).expanduser() if path_text else default_key()
    key, title = public_key(path)
    added = hub.add_key(key, title)
    print(f"{'added' if added else 'the hub already has'} the key {path} ({title})")


def _login(args: argparse.Namespace) -> int:
    store = HubStore()
    url = normalize_hub_url(args.hub) if args.hub else store.get().url
    token = _read_token(args, url)
    if not token:
        raise ValueError("no token given")
    hub = HubClient(HubLogin(url, "", token))
    me = hub.whoami()
    if not isinstance(me, dict) or not me.get("name") or me.get("kind", "user") != "user":
        raise ValueError(f"the token is not a user's token ({me!r:.80})")
    login = HubLogin(url, str(me["name"]), token, token_id=me.get("token_id"))
    store.save(login)
    print(f"logged in to {url} as {login.user} (saved in {store.path})")
    if args.add_key is not None:
        _add_key(HubClient(login), args.add_key)
    return 0


def _logout(args: argparse.Namespace) -> int:
    store = HubStore()
    login = store.get(args.hub)
    if args.revoke and login.token_id:
        hub = HubClient(login)
        user, token_id = quote(login.user, safe=""), quote(login.token_id, safe="")
        hub.api("DELETE", f"users/{user}/tokens/{token_id}")
        print(f"revoked the token at {login.url}")
    store.remove(login.url)
    print(f"logged out of {login.url}")
    return 0


# the ProxyCommand ----------------------------------------------------------------------------


def ssh_facts(hub: HubClient, store: HubStore, target: Target, server_url: str) -> dict[str, Any]:
    """The session's ``ssh`` object (``{}`` when it cannot be read); raises when the
    codespace says SSH is not available. Remembers the login name for ssh-config."""
    try:
        facts = hub.session(server_url).get("ssh") or {}
    except HubError:
        return {}  # an older codespace, or refused: the websocket says which
    if facts.get("available") is False:
        reason = facts.get("reason") or "no reason given"
        raise HubError(503, f"SSH is not available in codespace {target}: {reason}")
    if facts.get("user"):
        check_name(str(facts["user"]), "login name")
        store.remember_login(hub.login.url, str(target), str(facts["user"]))
    if facts.get("hostKeyFingerprint"):  # ssh's KnownHostsCommand then needs no hub call
        store.remember_host_key(hub.login.url, str(target), str(facts["hostKeyFingerprint"]))
    return facts


def _proxy(args: argparse.Namespace) -> int:
    from codespace.ssh.bridge import bridge

    store, login, hub = _connect(args)
    target = parse_target(args.target, login.user)
    server_url = ensure_running(hub, target, timeout=args.timeout, report=_say)
    ssh_facts(hub, store, target, server_url)
    return bridge(websocket_url(server_url + "sshd/"), login.token)


def _known_hosts(args: argparse.Namespace) -> int:
    """ssh's KnownHostsCommand: the key as a known host when its fingerprint is the one the
    codespace reports, ``@revoked`` when it differs, nothing when the codespace does not say."""
    if not args.key.strip() or not args.key_type.startswith(("ssh-", "ecdsa-", "sk-")):
        return 0  # ssh asking which key types it knows for the host (no key yet): none
    store, login, hub = _connect(args)
    target = parse_target(args.target, login.user)
    line = f"{args.name} {args.key_type} {args.key}"
    # the ProxyCommand has just read the session: its fingerprint, else ask the hub
    wanted = store.host_key(hub.login.url, str(target))
    if wanted is None:
        try:
            expected = ssh_facts(hub, store, target, hub.server_url(target, hub.server(target)))
        except HubError:
            return 0
        wanted = expected.get("hostKeyFingerprint")
    if not wanted:
        return 0
    if fingerprint(args.key) == wanted:
        print(line)
    else:
        _say(f"codespace ssh: the host key of {target} is not the one its session reports")
        print(f"@revoked {line}")
    return 0


# ssh -----------------------------------------------------------------------------------------


def split_ssh_args(rest: list[str]) -> tuple[list[str], list[str]]:
    """``[ssh options...] [-- command...]`` -> (options, command). Before ``--`` only
    options (and their values) are allowed: a bare word there is refused, not guessed."""
    if "--" in rest:
        cut = rest.index("--")
        options, command = rest[:cut], rest[cut + 1 :]
    else:
        options, command = rest, []
    index = 0
    while index < len(options):
        word = options[index]
        if not word.startswith("-") or word == "-":
            raise ValueError(f"{word!r} is not an ssh option: put the remote command after --")
        for position, letter in enumerate(word[1:], start=1):
            if letter in SSH_VALUE_OPTIONS:
                if position == len(word) - 1:
                    if index + 1 >= len(options):
                        raise ValueError(f"ssh option {word} needs a value")
                    index += 1  # the value is the next word
                break
        index += 1
    return options, command


def destination(hub_url: str, target: Target) -> str:
    """The host name ssh is given (a placeholder: the ProxyCommand decides where it goes)."""
    return "".join(
        c if c.isalnum() or c in ".-" else "-" for c in sshconfig.host_key_alias(hub_url, target)
    )


def pin_supported(ssh: str) -> bool:
    version = sshconfig.ssh_version(ssh)
    return bool(version and version >= sshconfig.KNOWN_HOSTS_COMMAND_SINCE)


def ssh_argv(
    ssh: str,
    hub_url: str,
    target: Target,
    login_name: str | None,
    rest: list[str],
    *,
    pin_host_key: bool = False,
    python: str | None = None,
) -> list[str]:
    """The ``ssh`` command line: our options, the user's ssh options, ``--``, the
    destination, the remote command. Hub data only ever fills option values."""
    options, command = split_ssh_args(rest)
    argv = [ssh]
    for key, value in sshconfig.connect_options(
        hub_url, target, python=python, pin_host_key=pin_host_key
    ):
        argv += ["-o", f"{key}={value}"]
    if login_name:
        argv += ["-o", f"User={check_name(login_name, 'login name')}"]
    return [*argv, *options, "--", destination(hub_url, target), *command]


def _exec(argv: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # pragma: no cover
        return subprocess.run(argv, check=False).returncode
    os.execv(argv[0], argv)  # noqa: S606 - an argument list, no shell
    return 255  # pragma: no cover


def target_and_rest(words: list[str]) -> tuple[str, list[str]]:
    """``codespace ssh``'s words: the codespace, then what goes to ssh."""
    words = words[1:] if words[:1] == ["--"] else words
    if not words:
        raise ValueError("give the codespace: codespace ssh [USER/]SERVER")
    split_ssh_args(words[1:])  # refuse a bad command line before starting anything
    return words[0], words[1:]


def _ssh(args: argparse.Namespace) -> int:
    ssh = shutil.which("ssh")
    if not ssh:
        raise ValueError("no `ssh` command found: install OpenSSH's client")
    args.target, rest = target_and_rest(args.args)
    store, login, hub = _connect(args)
    target = parse_target(args.target, login.user)
    server_url = ensure_running(hub, target, timeout=args.timeout, report=_say)
    facts = ssh_facts(hub, store, target, server_url)
    login_name = facts.get("user") or login_for(login, target)
    if not login_name:
        _say(f"codespace ssh: {target} did not name its SSH login; trying your local user name")
    argv = ssh_argv(
        ssh,
        login.url,
        target,
        login_name,
        rest,
        pin_host_key=pin_supported(ssh),
    )
    return _exec(argv)


# ssh-config ----------------------------------------------------------------------------------


def login_for(login: HubLogin, target: Target) -> str | None:
    """The login name last seen for ``target``, else for another codespace of its owner."""
    if str(target) in login.logins:
        return login.logins[str(target)]
    same_owner = [
        name for key, name in sorted(login.logins.items()) if key.startswith(f"{target.user}/")
    ]
    return same_owner[0] if same_owner else None


def host_entries(
    hub: HubClient, store: HubStore, login: HubLogin, text: str
) -> list[sshconfig.HostEntry]:
    servers = hub.servers(login.user)
    # the named servers are the codespaces; a default server only while it runs
    active = {name for name, model in servers.items() if model.get("ready") or model.get("pending")}
    targets = [Target(login.user, name) for name in servers if name or name in active]
    for target in targets:
        model = servers[target.server]
        if model.get("ready"):
            try:
                ssh_facts(hub, store, target, hub.server_url(target, model))
            except HubError as error:
                _say(f"codespace ssh-config: {target}: {error}")
    login = store.get(login.url)  # with the login names just seen
    taken = sshconfig.other_host_names(text, login.url)
    aliases = sshconfig.choose_aliases(login.url, targets, login.user, taken)
    return [
        sshconfig.HostEntry(aliases[target], target, login_for(login, target))
        for target in sorted(targets, key=lambda t: aliases[t])
    ]


def _ssh_config(args: argparse.Namespace) -> int:
    store, login, hub = _connect(args)
    path = Path(args.config).expanduser() if args.config else sshconfig.default_config_path()
    old = sshconfig.read_config(path)
    if args.remove:
        new, entries = sshconfig.update_block(old, login.url, None), []
    else:
        entries = host_entries(hub, store, login, old)
        ssh = shutil.which("ssh")
        block = sshconfig.render_block(
            login.url, entries, pin_host_key=bool(ssh and pin_supported(ssh))
        )
        new = sshconfig.update_block(old, login.url, block)
    if args.dry_run:
        sys.stdout.write(sshconfig.unified_diff(old, new, path))
        return 0
    if new == old:
        _say(f"{path} is up to date")
        return 0
    sshconfig.write_config(path, new)
    _say(f"wrote {len(entries)} codespace host(s) for {login.url} to {path}")
    for entry in entries:
        note = "" if entry.login else "  (login name not known until it has run)"
        print(f"  ssh {entry.alias}{note}")
    return 0


# parsers -------------------------------------------------------------------------------------


def _hub_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", metavar="URL", help="a hub logged in to (default: the last)")


def _target_parser(subparsers: Any, name: str, text: str, func: Command) -> Any:
    parser = subparsers.add_parser(name, help=text, description=text)
    _hub_option(parser)
    parser.add_argument(
        "--timeout", type=float, default=START_TIMEOUT, help="seconds to wait for a start"
    )
    parser.set_defaults(func=_guard(f"codespace {name}", 255)(func))
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    login = subparsers.add_parser("login", help="log in to a hub (stores an API token)")
    login.add_argument("--hub", metavar="URL", help="the hub's URL (default: the last one)")
    tokens = login.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="an API token (default: asked for)")
    tokens.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    login.add_argument(
        "--add-key",
        nargs="?",
        const="",
        metavar="PATH",
        help="upload an SSH public key (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub)",
    )
    login.set_defaults(func=_guard("codespace login", 1)(_login))

    logout = subparsers.add_parser("logout", help="forget a hub's token")
    _hub_option(logout)
    logout.add_argument("--revoke", action="store_true", help="also revoke the token at the hub")
    logout.set_defaults(func=_guard("codespace logout", 1)(_logout))

    ssh = _target_parser(subparsers, "ssh", "ssh into a codespace (starts it if stopped)", _ssh)
    # one REMAINDER: argparse would drop the "--" that separates ssh options from a command
    ssh.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="[USER/]SERVER [ssh options] [-- command]",
        help="a codespace ('USER/': their default server), ssh's options, -- a remote command",
    )
    proxy = _target_parser(subparsers, "ssh-proxy", "ssh's ProxyCommand for a codespace", _proxy)
    proxy.add_argument("target", metavar="[USER/]SERVER", help="a codespace")

    known = subparsers.add_parser("ssh-known-hosts")  # ssh's KnownHostsCommand (no help: hidden)
    _hub_option(known)
    known.add_argument("target")
    for name in ("name", "key_type", "key"):  # empty while ssh orders its key algorithms
        known.add_argument(name, nargs="?", default="")
    known.set_defaults(func=_guard("codespace ssh-known-hosts", 1)(_known_hosts))

    config = subparsers.add_parser(
        "ssh-config", help="write Host entries for your codespaces into ~/.ssh/config"
    )
    _hub_option(config)
    config.add_argument("--config", metavar="PATH", help="the ssh config file (~/.ssh/config)")
    config.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    config.add_argument("--remove", action="store_true", help="remove the hub's block")
    config.set_defaults(func=_guard("codespace ssh-config", 1)(_ssh_config))
