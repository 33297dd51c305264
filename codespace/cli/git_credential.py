"""``codespace git-credential get|store|erase``: git's credential helper inside a codespace.

The spawner names it as the helper for the Git host only (``credential.https://host.helper``,
through ``GIT_CONFIG_*`` variables: :func:`codespace.gitauth.helper_env`). For ``get`` it
asks the hub for the owner's current token (``GET $JUPYTERHUB_API_URL/codespace/
git-credential`` with the server's ``JUPYTERHUB_API_TOKEN``) and answers git on stdout; the
token is never stored. ``store`` and ``erase`` do nothing (the hub keeps the token). When the
hub cannot answer, it says why on stderr and answers nothing, so git goes on to its other
helpers or asks. Standard library only: it runs at every push.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from codespace.gitauth import GitCredential, credential_reply, parse_request
from codespace.ssh.client import hub_error_message

TIMEOUT = 30.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "git-credential",
        help="git's credential helper for the Git host (the hub gives the user's token)",
    )
    parser.add_argument("action", choices=("get", "store", "erase"))
    parser.set_defaults(func=run)


def fetch_credential(environ: dict[str, str] | os._Environ[str]) -> GitCredential | None:
    """The owner's credential from the hub, or None (the reason on stderr)."""
    api, token = environ.get("JUPYTERHUB_API_URL"), environ.get("JUPYTERHUB_API_TOKEN")
    if not api or not token:
        print("codespace git-credential: not in a codespace (no hub API)", file=sys.stderr)
        return None
    request = urllib.request.Request(  # noqa: S310 - the hub's API URL, from the spawner
        api.rstrip("/") + "/codespace/git-credential",
        headers={"Authorization": f"token {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        print(
            f"codespace git-credential: the hub says: {hub_error_message(error)}", file=sys.stderr
        )
        return None
    except (OSError, ValueError) as error:
        print(f"codespace git-credential: cannot ask the hub: {error}", file=sys.stderr)
        return None
    return GitCredential(f"https://{body['host']}/", body["password"], body["username"])


def run(args: argparse.Namespace) -> int:
    if args.action != "get":
        return 0
    request = parse_request(sys.stdin.read())
    if request.get("protocol") != "https":
        return 0
    sys.stdout.write(credential_reply(request, fetch_credential(os.environ)))
    return 0
