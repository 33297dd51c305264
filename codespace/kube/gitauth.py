"""The user's Git host token in a Kubernetes spawn: a per-user Secret the clones read.

Two containers clone the repository in the cluster: the workspace's init container
(:func:`codespace.kube.workspace.clone_init_container`) and the build Job's ``clone``
container (:func:`codespace.kube.build_job.build_job`). When the user logged in with the Git host
and the repository is on it, each gets git's ``http.<https://host/>.extraHeader``
(:func:`codespace.gitauth.header_env`) through the environment, and the header itself, which
carries the token, comes from a Secret (``valueFrom.secretKeyRef``): the pod and Job specs
(readable by anyone who may list pods) never contain the token.

- :class:`GitAuthRef`: where the header is (Secret name, key) and the host it applies to:
  all the pure builders take (``git_auth=``; None, the default: no ``env`` is added, the
  manifests are as without a Git host login); :meth:`GitAuthRef.env` are the containers'
  ``env`` entries;
- :func:`git_auth_ref`: the reference for a user's credential;
- :func:`git_secret`: the Secret (the spawner creates it, or replaces it, before the build
  Job and the pod; one per user, see :func:`git_secret_name`);
- :data:`CREDENTIAL_HELPER`: ``codespace git-credential`` as it exists inside every
  codespace image (the platform's environment), for git pushes from the codespace.

One Secret per user (:func:`git_secret_name`), written by the spawner at each spawn from the
Git host and deleted when the user's last active server stops or is deleted
(:mod:`spawner.kube.git_secret`).

The build Job is one per image, shared by the spawns of the same environment: it reads the
Secret of the user whose spawn created it; a spawn that finds the Job running follows it and
its own token is not used (it has already cloned the repository with it in the hub, so it can
read the repository). The Job's pod clones once, at its start, just after that Secret was
written. Should that user's last server stop before the Job's pod could start (a full
cluster, a cancelled spawn), the Secret is gone and the clone cannot start: the build fails
(the spawns that follow it start a recovery codespace) until the Job is gone.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from dataclasses import dataclass

from codespace.gitauth import GitCredential, header_env
from codespace.jobs.argo_workflow import MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL, label_value
from codespace.kube.image import PLATFORM_PYTHON

SECRET_PREFIX = "codespace-git-"  # noqa: S105 - a name prefix, not a secret
HEADER_KEY = "GIT_CONFIG_VALUE_0"  # the Secret's key: the header, git's GIT_CONFIG_VALUE_0
COMPONENT = "git-credentials"
HOST_ANNOTATION = "codespace.io/git-host"
# `codespace` of the platform's environment, in every codespace image (images/singleuser,
# and the platform overlay copies /opt onto a repository's own image): an absolute path, so
# an environment that has its own `codespace` command first on PATH does not shadow it.
CREDENTIAL_HELPER = f"{posixpath.dirname(PLATFORM_PYTHON)}/codespace git-credential"
_NAME_PART = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class GitAuthRef:
    """The clone's ``Authorization`` header for ``scope`` (``https://host[:port]/``) is the
    value of ``key`` in the Secret ``secret_name``."""

    secret_name: str
    scope: str
    key: str = HEADER_KEY

    def env(self) -> list[dict]:
        """A container's ``env`` entries: git's configuration from the environment (git
        2.31+), the header (the token) from the Secret."""
        return [
            {"name": "GIT_CONFIG_COUNT", "value": "1"},
            {"name": "GIT_CONFIG_KEY_0", "value": f"http.{self.scope}.extraHeader"},
            {
                "name": "GIT_CONFIG_VALUE_0",
                "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": self.key}},
            },
        ]


def git_secret_name(owner: str) -> str:
    """The user's Secret: ``codespace-git-<readable part>-<hash>``. The hash of the exact
    user name keeps two users (``a.b``, ``a-b``) from ever sharing one."""
    readable = _NAME_PART.sub("-", owner.lower()).strip("-")[:32].strip("-") or "user"
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return f"{SECRET_PREFIX}{readable}-{digest}"


def git_auth_ref(credential: GitCredential, owner: str) -> GitAuthRef:
    return GitAuthRef(secret_name=git_secret_name(owner), scope=credential.scope)


def git_secret(ref: GitAuthRef, credential: GitCredential, namespace: str, owner: str) -> dict:
    """The Secret ``ref`` names, holding ``credential``'s header (the same text as
    :func:`codespace.gitauth.header_env` gives a local clone)."""
    env = header_env(credential)
    if env["GIT_CONFIG_KEY_0"] != f"http.{ref.scope}.extraHeader":
        raise ValueError(f"the credential for {credential.scope} does not match {ref.scope}")
    header = env["GIT_CONFIG_VALUE_0"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ref.secret_name,
            "namespace": namespace,
            "labels": {
                MANAGED_BY: "codespace-hub",
                "app.kubernetes.io/component": COMPONENT,
                OWNER_LABEL: label_value(owner),
            },
            "annotations": {OWNER_ANNOTATION: owner, HOST_ANNOTATION: credential.host},
        },
        "type": "Opaque",
        "data": {ref.key: base64.b64encode(header.encode()).decode()},
    }
