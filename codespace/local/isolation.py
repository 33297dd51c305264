"""How one codespace's processes run: as its account, in its cgroup, in its sandbox.

:class:`Isolation` is what the start pipeline (:mod:`codespace.local.prepare`) and the spawner hold
for one codespace. Without an account (the hub is not root, or isolation is off) every
method is the identity: commands run as the hub's user, as before.

- :meth:`Isolation.as_account` wraps an argument vector to run as the account only (git,
  before the codespace's cgroup and sandbox exist);
- :meth:`Isolation.confined` wraps it to run in the cgroup, in the sandbox, as the account
  (lifecycle commands, the server, builds of the repository's project);
- :meth:`Isolation.write_file` / :meth:`Isolation.remove_file` change a file in the
  workspace as the account: the hub never writes as root into a directory the user owns
  (a symlink planted there would turn that write into one anywhere).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codespace.local.accounts import Account, chown_tree
from codespace.local.confine import confine_argv
from codespace.local.limits import Cgroup

# The variables (of HOST_ENV) that name a CA bundle (a file or a directory): the sandbox must
# show what they name, or pip, uv and git in a codespace cannot check a server's certificate.
TRUST_ENV = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)

# What a codespace's processes get of the hub's environment: the locale, and how to reach
# package indexes (CA bundles, proxies, pip's and uv's settings). Never the hub's secrets.
HOST_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    *TRUST_ENV,
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
HOST_ENV_PREFIXES = ("PIP_", "UV_")


def host_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` (the hub's) that codespaces and their builds may see."""
    return {
        key: value
        for key, value in environ.items()
        if key in HOST_ENV or key.startswith(HOST_ENV_PREFIXES)
    }


def trust_files(environ: Mapping[str, str]) -> list[Path]:
    """The CA bundles ``environ`` names that exist (absolute paths only)."""
    found = []
    for key in TRUST_ENV:
        value = environ.get(key, "")
        if value.startswith("/") and Path(value).exists() and Path(value) not in found:
            found.append(Path(value))
    return found


@dataclass
class Isolation:
    """One codespace's confinement; the default (no account) changes nothing."""

    account: Account | None = None
    cgroup: Cgroup | None = None
    sandbox: list[str] | None = None  # a bwrap prefix ending with "--"
    notes: list[str] = field(default_factory=list)  # for the progress log

    @property
    def active(self) -> bool:
        return self.account is not None

    def env(self) -> dict[str, str]:
        """HOME, USER, LOGNAME and SHELL of the account (nothing without one)."""
        return self.account.env() if self.account else {}

    def as_account(self, argv: Sequence[str]) -> list[str]:
        return self.account.demote_argv(argv) if self.account else list(argv)

    def confined(self, argv: Sequence[str]) -> list[str]:
        return confine_argv(argv, account=self.account, cgroup=self.cgroup, sandbox=self.sandbox)

    def hand_over(self, path: Path) -> None:
        """Give ``path`` (made by the hub, in a directory of the hub's) to the account."""
        if self.account is not None:
            chown_tree(path, self.account)

    def write_file(self, path: Path, text: str) -> None:
        """Write ``path`` (replacing it) as the account; directly without one."""
        if self.account is None:
            path.write_text(text, encoding="utf-8")
            return
        script = (
            'mkdir -p -- "${1%/*}" && cat > "$1.codespace-tmp" '
            '&& mv -f -T -- "$1.codespace-tmp" "$1"'
        )
        self.run(["/bin/sh", "-c", script, "sh", str(path)], text)

    def make_link(self, link: Path, target: Path) -> None:
        """Make the symlink ``link`` -> ``target`` (and its directory) as the account."""
        script = 'mkdir -p -- "${2%/*}" && ln -s -- "$1" "$2"'
        self.run(["/bin/sh", "-c", script, "sh", str(target), str(link)])

    def remove_file(self, path: Path) -> None:
        if self.account is None:
            path.unlink(missing_ok=True)
            return
        self.run(["rm", "-f", "--", str(path)], "")

    def run(self, argv: list[str], stdin: str = "") -> None:
        """Run a small command (``chmod``, ``rm``) as the account; raise OSError if it fails."""
        done = subprocess.run(
            self.as_account(argv), input=stdin.encode(), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise OSError(f"{argv[-1]}: {done.stderr.decode(errors='replace').strip()}")
