"""The per-server workspace: a PVC, and an init container that clones the repository into it.

The clone happens once: when the checkout already exists (a restart), the init container
leaves it alone, so uncommitted work survives stop/start and a new commit never rebuilds
the image (the image depends on the environment files only). A start that asks for another
ref than the last one (a ``Codespace`` resource's new ``ref``) fetches and moves a clean
checkout to it; one with uncommitted changes stays as it is (the log says so).
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from codespace.kube.config import WorkspaceConfig

if TYPE_CHECKING:
    from codespace.kube.gitauth import GitAuthRef

# "$1" checkout directory, "$2" repository, "$3" ref (may be empty). Clones next to the
# destination and renames, so an interrupted clone is retried instead of half-used.
CLONE_SCRIPT = """set -eu
dest="$1"; repo="$2"; ref="$3"
asked="$dest/.git/codespace-requested-ref"
if [ -d "$dest/.git" ]; then
  last="$(cat "$asked" 2>/dev/null || echo '<none>')"
  wanted="${ref:-the default branch}"
  if [ "$last" = '<none>' ] || [ "$last" = "$ref" ]; then
    echo "codespace: keeping the existing checkout in $dest"
  elif [ -n "$(git -C "$dest" status --porcelain)" ]; then
    echo "codespace: the checkout has uncommitted changes: kept, not moved to $wanted"
  else
    git -C "$dest" fetch --quiet --tags origin
    if [ -z "$ref" ]; then
      git -C "$dest" remote set-head origin --auto >/dev/null
      ref="$(git -C "$dest" rev-parse --abbrev-ref origin/HEAD)"; ref="${ref#origin/}"
    fi
    if git -C "$dest" rev-parse --verify --quiet "refs/remotes/origin/$ref" >/dev/null; then
      git -C "$dest" checkout --quiet -B "$ref" "refs/remotes/origin/$ref" --
    else
      git -C "$dest" checkout --quiet --detach "$ref" --
    fi
    echo "codespace: moved the checkout to $wanted"
  fi
  printf '%s' "$3" > "$asked"
  exit 0
fi
partial="$dest.partial"
rm -rf "$partial"
git clone --quiet --no-checkout -- "$repo" "$partial"
if [ -n "$ref" ]; then
  git -C "$partial" checkout --quiet "$ref" --
else
  git -C "$partial" checkout --quiet
fi
printf '%s' "$ref" > "$partial/.git/codespace-requested-ref"
mkdir -p "$(dirname "$dest")"
mv "$partial" "$dest"
echo "codespace: cloned $repo into $dest"
"""


def checkout_name(repo: str) -> str:
    """The directory a repository is cloned into: its last path component, without .git."""
    tail = re.split(r"[/:]", repo.rstrip("/"))[-1]
    tail = re.sub(r"\.git$", "", tail)
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip(".-")
    return tail or "workspace"


def checkout_path(repo: str, config: WorkspaceConfig) -> str:
    return posixpath.join(config.mountPath, checkout_name(repo))


def workspace_pvc(name: str, namespace: str, config: WorkspaceConfig, labels: dict) -> dict:
    """The workspace PersistentVolumeClaim (kept across stop/start)."""
    spec: dict = {
        "accessModes": list(config.accessModes),
        "resources": {"requests": {"storage": config.capacity}},
    }
    if config.storageClassName:
        spec["storageClassName"] = config.storageClassName
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def workspace_volume(pvc_name: str) -> dict:
    return {"name": "workspace", "persistentVolumeClaim": {"claimName": pvc_name}}


def workspace_mount(config: WorkspaceConfig) -> dict:
    return {"name": "workspace", "mountPath": config.mountPath}


def clone_init_container(
    image: str,
    repo: str,
    ref: str | None,
    config: WorkspaceConfig,
    uid: int = 1000,
    git_auth: GitAuthRef | None = None,
) -> dict:
    """Clone ``repo`` at ``ref`` into the workspace unless a checkout is already there.

    Runs in the codespace image itself (it has git), as the user the server runs as. With
    ``git_auth`` git sends the user's token to the Git host, read from the user's Secret
    (:mod:`codespace.kube.gitauth`); the checkout's configuration never has it.
    """
    container = {
        "name": "clone-repository",
        "image": image,
        "command": ["sh", "-c", CLONE_SCRIPT, "clone"],
        "args": [checkout_path(repo, config), repo, ref or ""],
        "volumeMounts": [workspace_mount(config)],
        "securityContext": {"runAsUser": uid, "runAsGroup": config.fsGroup},
    }
    if git_auth is not None:
        container["env"] = git_auth.env()
    return container
