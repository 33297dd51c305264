"""The image build Job: clone the build context, run rootless BuildKit or Buildah, push.

One Job per image (:func:`build_job_name`): concurrent spawns of one environment share a
build. An init container clones the repository (the build context) and writes the rendered
Dockerfile (:func:`codespace.kube.image.render_dockerfile`); the builder runs its steps as
argument lists. User data (repository, ref, image names, build arguments) reaches the shells
only as positional arguments. With the user's Git host token the clone reads it from the
user's Secret (:mod:`codespace.kube.gitauth`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from codespace.kube.config import KubeConfig
from codespace.kube.image import CONTEXT_DIR, DOCKERFILE_DIR, ImageChoice

if TYPE_CHECKING:
    from codespace.kube.gitauth import GitAuthRef


def build_job_name(image: str) -> str:
    """One Job per image: concurrent spawns of one environment share a build."""
    return "codespace-build-" + hashlib.sha256(image.encode()).hexdigest()[:16]


# Clone the build context; "$1" repository, "$2" ref (may be empty), "$3" the rendered
# Dockerfile text (empty: none).
_CLONE_SCRIPT = """set -eu
git clone --quiet --no-checkout -- "$1" /build/context
if [ -n "$2" ]; then git -C /build/context checkout --quiet "$2" --; \
else git -C /build/context checkout --quiet; fi
mkdir -p /build/dockerfile
if [ -n "$3" ]; then printf '%s' "$3" > /build/dockerfile/Dockerfile; fi
"""

# Run the builder's steps in order. The arguments are steps, each a count N then N
# arguments run as one command; eval only ever sees "${1}" "${2}" ..., never a value.
# BuildKit pulls from a plain-HTTP registry (a repository image built in an earlier step)
# only when its daemon's configuration says so.
_STEPS_SCRIPT = """set -eu
if [ -n "${BUILDKIT_INSECURE_REGISTRY:-}" ]; then
  printf '[registry."%s"]\\n  http = true\\n  insecure = true\\n' \\
    "$BUILDKIT_INSECURE_REGISTRY" > /build/buildkitd.toml
  BUILDKITD_FLAGS="${BUILDKITD_FLAGS:-} --config=/build/buildkitd.toml"
  export BUILDKITD_FLAGS
fi
step=0
while [ "$#" -gt 0 ]; do
  count="$1"; shift; step=$((step + 1))
  command=""; i=1
  while [ "$i" -le "$count" ]; do command="$command \\"\\${$i}\\""; i=$((i + 1)); done
  printf '== build step %s: %s\\n' "$step" "$1"
  eval "$command"
  shift "$count"
done
"""


def _context(subdir: str) -> str:
    return f"{CONTEXT_DIR}/{subdir}".rstrip("/.") or CONTEXT_DIR


def _buildkit_step(
    config: KubeConfig,
    dockerfile: str,
    context: str,
    image: str,
    build_args: tuple[tuple[str, str], ...] = (),
    target: str | None = None,
) -> list[str]:
    dockerfile_dir, _, dockerfile_name = dockerfile.rpartition("/")
    output = f"type=image,name={image},push=true"
    if config.registry.insecure:
        output += ",registry.insecure=true"
    argv = [
        "buildctl-daemonless.sh",
        "build",
        "--frontend=dockerfile.v0",
        f"--local=context={context}",
        f"--local=dockerfile={dockerfile_dir}",
        f"--opt=filename={dockerfile_name}",
        f"--output={output}",
        "--progress=plain",
    ]
    argv += [f"--opt=build-arg:{key}={value}" for key, value in build_args]
    if target:
        argv.append(f"--opt=target={target}")
    return argv


def _buildah_step(
    config: KubeConfig,
    dockerfile: str,
    context: str,
    image: str,
    build_args: tuple[tuple[str, str], ...] = (),
    target: str | None = None,
) -> list[str]:
    argv = ["buildah", "build", "--isolation", "chroot", "--storage-driver", "vfs", "--layers"]
    argv += ["-f", dockerfile, "-t", image]
    argv += [f"--build-arg={key}={value}" for key, value in build_args]
    if target:
        argv.append(f"--target={target}")
    if config.registry.insecure:
        argv.append("--tls-verify=false")
    return [*argv, context]


def build_steps(choice: ImageChoice, config: KubeConfig) -> list[list[str]]:
    """The commands the builder runs, in order (argument lists).

    A repository Dockerfile is built first as the repository wrote it (its context,
    arguments and target) into ``choice.repository_image``; then the rendered Dockerfile
    (repository root as context) into ``choice.image``. BuildKit pushes each image it
    builds (the second build pulls the first from the registry); Buildah keeps the first in
    its local storage and pushes the final image.
    """
    if choice.dockerfile is None:
        raise ValueError(f"{choice.image} has no rendered Dockerfile: nothing to build")
    buildkit = config.build.tool == "buildkit"
    step = _buildkit_step if buildkit else _buildah_step
    steps = []
    if choice.dockerfile_path:
        steps.append(
            step(
                config,
                f"{CONTEXT_DIR}/{choice.dockerfile_path}",
                _context(choice.context_subdir),
                choice.repository_image or f"{choice.image}-base",
                choice.build_args,
                choice.target,
            )
        )
    steps.append(step(config, f"{DOCKERFILE_DIR}/Dockerfile", CONTEXT_DIR, choice.image))
    if not buildkit:
        push = ["buildah", "push", "--storage-driver", "vfs"]
        if config.registry.insecure:
            push.append("--tls-verify=false")
        steps.append([*push, choice.image])
    return steps


def _builder_container(choice: ImageChoice, config: KubeConfig) -> dict:
    mounts = [{"name": "build", "mountPath": "/build"}]
    env = []
    if config.registry.pushSecret:
        mounts.append({"name": "push-secret", "mountPath": "/home/user/.docker", "readOnly": True})
        env.append({"name": "DOCKER_CONFIG", "value": "/home/user/.docker"})
    args: list[str] = []
    for argv in build_steps(choice, config):
        args += [str(len(argv)), *argv]
    container = {
        "name": "build",
        "command": ["sh", "-c", _STEPS_SCRIPT, "build"],
        "args": args,
        "env": env,
        "volumeMounts": mounts,
        "resources": {"limits": {"cpu": config.build.cpu, "memory": config.build.memory}},
    }
    if config.build.tool == "buildah":
        env.append({"name": "STORAGE_DRIVER", "value": "vfs"})
        return {
            **container,
            "image": config.build.buildahImage,
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
        }
    env.append({"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"})
    if config.registry.insecure:
        host = config.registry.prefix.split("/", 1)[0]
        env.append({"name": "BUILDKIT_INSECURE_REGISTRY", "value": host})
    return {
        **container,
        "image": config.build.buildkitImage,
        "securityContext": {
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "Unconfined"},
            "appArmorProfile": {"type": "Unconfined"},
        },
    }


def build_job(
    choice: ImageChoice,
    config: KubeConfig,
    *,
    repo: str,
    ref: str | None,
    namespace: str,
    git_auth: GitAuthRef | None = None,
) -> dict:
    """The ``batch/v1`` Job that builds and pushes ``choice.image``; with ``git_auth`` the
    clone sends the token from the user's Secret (:mod:`codespace.kube.gitauth`)."""
    name = build_job_name(choice.image)
    labels = {
        "app.kubernetes.io/name": "codespace",
        "app.kubernetes.io/component": "image-build",
        "app.kubernetes.io/managed-by": "codespace-hub",
    }
    volumes: list[dict] = [{"name": "build", "emptyDir": {}}]
    if config.registry.pushSecret:
        volumes.append(
            {
                "name": "push-secret",
                "secret": {
                    "secretName": config.registry.pushSecret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    clone = {
        "name": "clone",
        "image": config.build.gitImage,
        "command": ["sh", "-c", _CLONE_SCRIPT, "clone"],
        "args": [repo, ref or "", choice.dockerfile or ""],
        "volumeMounts": [{"name": "build", "mountPath": "/build"}],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
    }
    if git_auth is not None:  # the clone only: the builder never sees the token
        clone["env"] = git_auth.env()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": {"codespace.io/image": choice.image},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": config.build.deadlineSeconds,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"fsGroup": 1000},
                    "initContainers": [clone],
                    "containers": [_builder_container(choice, config)],
                    "volumes": volumes,
                },
            },
        },
    }
