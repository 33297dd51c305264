"""Slurm for local codespaces: the job backend's settings, with a token of the user's own.

When the hub is given a Slurm (``c.LocalCodespaceSpawner.slurm_url``: slurmrestd, with the
JWT plugin), each codespace's server gets the Slurm job backend beside the local one, with a
JWT the hub mints for the codespace's account (``scontrol token username=<account>``), so
jobs run on the cluster as that account, never as the hub. The token is written into the
server's private settings (readable by the account only), like the rest of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

SLURM_BACKEND = "codespace.jobs.slurm.SlurmBackend"


class SlurmUnavailable(RuntimeError):
    """No token could be made; the message says why (the codespace starts without Slurm)."""


def mint_token(user: str, lifespan: int, *, conf: str = "", scontrol: str = "") -> str:
    """A Slurm JWT for ``user`` (as the hub: root or SlurmUser)."""
    program = scontrol or shutil.which("scontrol")
    if not program:
        raise SlurmUnavailable("scontrol is not installed on the hub's machine")
    env = {**os.environ, **({"SLURM_CONF": conf} if conf else {})}
    argv = [program, "token", f"username={user}", f"lifespan={lifespan}"]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SlurmUnavailable(f"scontrol token failed: {error}") from None
    token = done.stdout.strip().partition("SLURM_JWT=")[2]
    if done.returncode != 0 or not token:
        raise SlurmUnavailable(f"scontrol token failed: {(done.stderr or done.stdout).strip()}")
    return token


def slurm_settings(url: str, user: str, token: str, conf: str = "") -> dict[str, Any]:
    """The server extension's job settings that add the Slurm backend."""
    options: dict[str, Any] = {"url": url, "token": token, "user_name": user}
    if conf:
        options["slurm_conf"] = conf
    return {
        "job_backends": {"local": "codespace.jobs.local.LocalJobBackend", "slurm": SLURM_BACKEND},
        "job_backend_options": {"slurm": options},
    }


def codespace_slurm(
    url: str, user: str, lifespan: int, conf: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """The settings for one codespace; without a token, none (and the spawn page says why)."""
    try:
        token = mint_token(user, lifespan, conf=conf)
    except SlurmUnavailable as error:
        say(f"jobs: Slurm is not available to this codespace: {error}")
        return {}
    say(f"jobs: Slurm at {url}, jobs run as {user}")
    return slurm_settings(url, user, token, conf)
