"""The hub's side of the user's Git host Secret (the pure half: :mod:`codespace.kube.gitauth`).

One Secret per user, ``codespace-git-<name>-<hash>``: written (created, else replaced) at
each spawn whose repository is on the Git host, before the build Job and the pod that read
it; deleted when the user's last active server stops or is deleted (the next spawn writes it
again). The hub's Role needs ``secrets`` create, update and delete (config/helm/rbac.yaml).
"""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException


class GitSecretError(RuntimeError):
    """The Secret cannot be written; the message says why (never with its content)."""


async def save_git_secret(core, secret: dict) -> None:
    """Create ``secret``, or replace the one of the same name (the token may have changed)."""
    namespace, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
    try:
        try:
            await core.create_namespaced_secret(namespace, secret)
        except ApiException as error:
            if error.status != 409:
                raise
            await core.replace_namespaced_secret(name, namespace, secret)
    except ApiException as error:
        raise GitSecretError(
            f"cannot write Secret {namespace}/{name} with the Git host credential: "
            f"{error.status} {error.reason} (the hub's Role needs secrets create and update)"
        ) from None


async def delete_git_secret(core, namespace: str, name: str) -> bool:
    """Delete the user's Secret; False when there was none."""
    try:
        await core.delete_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return False
    return True
