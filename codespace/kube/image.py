"""The codespace image: its name, the Dockerfile rendered from the spec, the build Job.

The image is ``<registry prefix>/<repo slug>:<env hash>``: the tag is the environment hash,
so a commit that only changes code finds its image in the registry and never rebuilds.

The build Job runs rootless BuildKit (``buildctl-daemonless.sh``) or Buildah (chroot
isolation, vfs storage): no Docker socket, no privileged container. An init container
clones the repository (the build context) and writes the rendered Dockerfile; user data
(repository, ref, image name) reaches the shells only as positional arguments.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass

from codespace.kube.config import KubeConfig
from codespace.sources.conda import is_environment_file
from codespace.spec.model import Codespace

KERNEL_LAYER = ("ipykernel", "ipywidgets")
ENV_PREFIX = "/opt/codespace/env"
# A conda environment.yml is solved by micromamba (a static binary, copied from its image).
MICROMAMBA_IMAGE = "mambaorg/micromamba:2.0.5"
CONDA_CHANNELS = ("conda-forge",)  # used when the file names none (after its own)
CONTEXT_DIR = "/build/context"
DOCKERFILE_DIR = "/build/dockerfile"
_COMPONENT = re.compile(r"[^a-z0-9]+")


def repo_slug(repo: str) -> str:
    """A registry path component for a repository location.

    ``https://github.com/Org/My_Repo.git`` -> ``github-com-org-my-repo``.
    """
    text = repo.lower()
    text = re.sub(r"^[a-z+]+://", "", text)
    text = re.sub(r"^[^@/]+@", "", text)  # user@host:path and ssh://user@host
    text = re.sub(r"\.git/?$", "", text)
    slug = _COMPONENT.sub("-", text).strip("-")[:96].strip("-")
    return slug or "repo"


def image_name(prefix: str, repo: str, env_hash: str) -> str:
    return f"{prefix.rstrip('/')}/{repo_slug(repo)}:{env_hash[:32]}"


@dataclass(frozen=True)
class ImageChoice:
    """Which image runs, and the Dockerfile to build it from (None: use as is)."""

    image: str
    dockerfile: str | None
    context_subdir: str = "."
    dockerfile_path: str | None = None  # a repository Dockerfile, built as given
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None

    @property
    def needs_build(self) -> bool:
        return self.dockerfile is not None or self.dockerfile_path is not None


def _needs_layers(codespace: Codespace) -> bool:
    python = codespace.python
    return bool(codespace.apt or python.requirements or codespace.postBuild) or bool(
        python.version or python.environmentFile
    )


def conda_files(codespace: Codespace) -> list[str]:
    """The conda environment files of the spec (``environmentFile``, ``.yml`` requirements)."""
    python = codespace.python
    names = [python.environmentFile] if python.environmentFile else []
    names += [name for name in python.requirements if is_environment_file(name)]
    return list(dict.fromkeys(names))


def _conda_lines(codespace: Codespace, files: list[str], micromamba_image: str) -> list[str]:
    """Solve the environment files with micromamba into ``ENV_PREFIX``.

    The repository is bind-mounted (read-write, writes discarded) rather than copied, so
    ``-r``/``-e`` paths in ``pip:`` sections work from each file's directory as in conda,
    and no repository file stays in a layer.
    """
    context = "/tmp/codespace-build/context"
    root_prefix = "/tmp/codespace-mamba"
    rc = "/tmp/codespace-mambarc"
    channels = "".join(f"  - {channel}\\n" for channel in CONDA_CHANNELS)
    extra = ["pip"]
    if codespace.python.version:
        extra.insert(0, f"python={codespace.python.version}")
    create = [
        "micromamba create --yes",
        f"--rc-file {rc}",
        f"--root-prefix {root_prefix}",
        f"--prefix {ENV_PREFIX}",
        *(f"--file {shlex.quote(f'{context}/{name}')}" for name in files),
        *(shlex.quote(spec) for spec in extra),
    ]
    return [
        f"RUN printf 'channels:\\n{channels}' > {rc}",
        f"RUN --mount=type=bind,source=.,target={context},rw \\",
        "    " + " ".join(create) + " \\",
        f" && micromamba clean --all --yes --root-prefix {root_prefix} \\",
        f" && rm -rf {root_prefix} {rc}",
    ]


def render_dockerfile(
    codespace: Codespace, base_image: str, *, micromamba_image: str = MICROMAMBA_IMAGE
) -> str:
    """A Dockerfile that adds the spec's environment to the single-user base image.

    The repository environment at ``/opt/codespace/env`` becomes the default kernel: a uv
    venv, or, for a conda environment file, the conda environment micromamba solves from it
    (the cluster reaches conda channels). Jupyter itself stays in the base image's platform
    environment.
    """
    lines = [
        "# Rendered by codespace from the repository's spec; built by the codespace build Job.",
        f"FROM {base_image}",
        "USER root",
    ]
    if codespace.apt:
        packages = " ".join(shlex.quote(name) for name in codespace.apt)
        lines += [
            "RUN apt-get update \\",
            " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends"
            f" {packages} \\",
            " && rm -rf /var/lib/apt/lists/*",
        ]
    conda = conda_files(codespace)
    owned = ENV_PREFIX.rsplit("/", 1)[0] if conda else ENV_PREFIX  # micromamba makes the env
    if conda:
        lines.append(f"COPY --from={micromamba_image} /bin/micromamba /usr/local/bin/micromamba")
    lines += [
        f"RUN mkdir -p {owned} && chown ${{NB_UID:-1000}}:${{NB_GID:-100}} {owned}",
        "USER ${NB_UID:-1000}",
        "WORKDIR /tmp/codespace-build",
    ]
    if conda:
        lines += _conda_lines(codespace, conda, micromamba_image)
    else:
        python = shlex.quote(codespace.python.version or "3.11")
        lines.append(f"RUN uv venv --python {python} {ENV_PREFIX}")
    requirements = [
        (index, name)
        for index, name in enumerate(codespace.python.requirements)
        if not is_environment_file(name)
    ]
    for index, requirement in requirements:
        target = f"/tmp/codespace-build/req{index}-{requirement.rsplit('/', 1)[-1]}"
        lines.append(f"COPY {json.dumps(requirement)} {json.dumps(target)}")
    install = [f"uv pip install --python {ENV_PREFIX}/bin/python", *KERNEL_LAYER]
    for index, requirement in requirements:
        name = requirement.rsplit("/", 1)[-1]
        target = shlex.quote(f"/tmp/codespace-build/req{index}-{name}")
        install.append(f"-r {target}")
    lines.append("RUN " + " ".join(install))
    lines.append(
        f"RUN {ENV_PREFIX}/bin/python -m ipykernel install --prefix {ENV_PREFIX} "
        "--name python3 --display-name 'Python (codespace)'"
    )
    lines.append(f'ENV PATH="{ENV_PREFIX}/bin:$PATH" JUPYTER_PATH="{ENV_PREFIX}/share/jupyter"')
    if codespace.postBuild:
        lines += [
            f"COPY {json.dumps(codespace.postBuild)} /tmp/codespace-build/postBuild",
            "RUN chmod +x /tmp/codespace-build/postBuild && /tmp/codespace-build/postBuild",
        ]
    lines.append("WORKDIR /home/${NB_USER:-jovyan}")
    return "\n".join(lines) + "\n"


def choose_image(
    codespace: Codespace, config: KubeConfig, repo: str, env_hash: str, gpu: bool
) -> ImageChoice:
    """Decide between a base image as is, a rendered Dockerfile, and a repository Dockerfile."""
    name = image_name(config.registry.prefix, repo, env_hash)
    build = codespace.build
    if build is not None and build.dockerfile:
        return ImageChoice(
            image=name,
            dockerfile=None,
            context_subdir=build.context or ".",
            dockerfile_path=build.dockerfile,
            build_args=tuple(sorted(build.args.items())),
            target=build.target,
        )
    base = codespace.image or (config.build.gpuBaseImage if gpu else config.build.baseImage)
    if not _needs_layers(codespace):
        return ImageChoice(image=base, dockerfile=None)
    return ImageChoice(image=name, dockerfile=render_dockerfile(codespace, base))


def build_job_name(image: str) -> str:
    """One Job per image: concurrent spawns of one environment share a build."""
    return "codespace-build-" + hashlib.sha256(image.encode()).hexdigest()[:16]


# Clone the build context; "$1" repository, "$2" ref (may be empty), "$3" the Dockerfile
# text (empty when the repository's own Dockerfile is built).
_CLONE_SCRIPT = """set -eu
git clone --quiet --no-checkout -- "$1" /build/context
if [ -n "$2" ]; then git -C /build/context checkout --quiet "$2" --; \
else git -C /build/context checkout --quiet; fi
mkdir -p /build/dockerfile
if [ -n "$3" ]; then printf '%s' "$3" > /build/dockerfile/Dockerfile; fi
"""

# Buildah: "$1" image, "$2" Dockerfile, "$3" context, then build arguments.
_BUILDAH_SCRIPT = """set -eu
image="$1"; dockerfile="$2"; context="$3"; shift 3
buildah build --isolation chroot --storage-driver vfs --layers \
  -f "$dockerfile" -t "$image" "$@" "$context"
buildah push --storage-driver vfs "$image"
"""


def _builder_container(choice: ImageChoice, config: KubeConfig) -> dict:
    if choice.dockerfile_path:
        dockerfile = f"{CONTEXT_DIR}/{choice.dockerfile_path}"
    else:
        dockerfile = f"{DOCKERFILE_DIR}/Dockerfile"
    context = f"{CONTEXT_DIR}/{choice.context_subdir}".rstrip("/.") or CONTEXT_DIR
    mounts = [{"name": "build", "mountPath": "/build"}]
    env = []
    if config.registry.pushSecret:
        mounts.append({"name": "push-secret", "mountPath": "/home/user/.docker", "readOnly": True})
        env.append({"name": "DOCKER_CONFIG", "value": "/home/user/.docker"})
    resources = {"limits": {"cpu": config.build.cpu, "memory": config.build.memory}}
    if config.build.tool == "buildkit":
        dockerfile_dir, _, dockerfile_name = dockerfile.rpartition("/")
        output = f"type=image,name={choice.image},push=true"
        if config.registry.insecure:
            output += ",registry.insecure=true"
        args = [
            "build",
            "--frontend=dockerfile.v0",
            f"--local=context={context}",
            f"--local=dockerfile={dockerfile_dir}",
            f"--opt=filename={dockerfile_name}",
            f"--output={output}",
            "--progress=plain",
        ]
        args += [f"--opt=build-arg:{key}={value}" for key, value in choice.build_args]
        if choice.target:
            args.append(f"--opt=target={choice.target}")
        env.append({"name": "BUILDKITD_FLAGS", "value": "--oci-worker-no-process-sandbox"})
        return {
            "name": "build",
            "image": config.build.buildkitImage,
            "command": ["buildctl-daemonless.sh"],
            "args": args,
            "env": env,
            "volumeMounts": mounts,
            "resources": resources,
            "securityContext": {
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "Unconfined"},
                "appArmorProfile": {"type": "Unconfined"},
            },
        }
    extra = [f"--build-arg={key}={value}" for key, value in choice.build_args]
    if choice.target:
        extra.append(f"--target={choice.target}")
    if config.registry.insecure:
        extra.append("--tls-verify=false")
    return {
        "name": "build",
        "image": config.build.buildahImage,
        "command": ["sh", "-c", _BUILDAH_SCRIPT, "buildah-build"],
        "args": [choice.image, dockerfile, context, *extra],
        "env": [*env, {"name": "STORAGE_DRIVER", "value": "vfs"}],
        "volumeMounts": mounts,
        "resources": resources,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
    }


def build_job(
    choice: ImageChoice, config: KubeConfig, *, repo: str, ref: str | None, namespace: str
) -> dict:
    """The ``batch/v1`` Job that builds and pushes ``choice.image``."""
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
