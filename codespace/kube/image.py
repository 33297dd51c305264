"""The codespace image: its name, the Dockerfile rendered from the spec, the build Job.

The image is ``<registry prefix>/<repo slug>:<env hash>``: the tag is the environment hash,
so a commit that only changes code finds its image in the registry and never rebuilds.

Every image a codespace pod runs has the platform (the Jupyter server and its extensions,
code-server, sshd) and the repository's environment with the kernel layer
(:mod:`codespace.kernel_layer`, the same as in the local mode):

- no image of its own: the platform image (``build.baseImage`` / ``build.gpuBaseImage``)
  as is, or with the spec's environment added on top (``FROM`` the platform image);
- a devcontainer ``image``: the base of a rendered Dockerfile that adds the platform
  (``COPY --from`` the platform image: everything it needs lives under ``/opt``), as
  GitHub Codespaces injects its server into any image;
- a Dockerfile ``build``: built first as the repository wrote it (its context, arguments and
  target) into ``<image>-base``, then the same platform overlay is built ``FROM`` that.

The build Job (:mod:`codespace.kube.build_job`) runs rootless BuildKit or Buildah: no
Docker socket, no privileged container.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codespace.deploy.serving import IMAGE_SERVING_PREFIX
from codespace.kernel_layer import (
    KERNEL_NAME,
    jupyter_data_dir,
    kernel_layer_commands,
    kernel_layer_digest,
)
from codespace.kube.config import KubeConfig
from codespace.sources.conda import is_environment_file
from codespace.spec.model import Codespace

if TYPE_CHECKING:
    pass

ENV_PREFIX = "/opt/codespace/env"
# The platform inside every codespace image (images/singleuser/Dockerfile): a relocatable
# CPython in /opt/python, the platform venv in /opt/platform (with uv and tini), code-server.
PLATFORM_PYTHON = "/opt/platform/bin/python"
PLATFORM_UV = "/opt/platform/bin/uv"
PLATFORM_TINI = "/opt/platform/bin/tini"
PLATFORM_PATH = "/opt/platform/bin:/opt/code-server/bin"
PLATFORM_PYTHON_VERSION = "3.11"  # the platform image's PYTHON_VERSION
NB_USER, NB_UID, NB_GID = "jovyan", 1000, 100
# The server's default (and only) kernel is the environment's (as --MappingKernelManager...
# in the local mode): read from JUPYTER_CONFIG_PATH, next to the kernelspec.
SERVER_CONFIG = {
    "MappingKernelManager": {"default_kernel_name": KERNEL_NAME},
    "KernelSpecManager": {"allowed_kernelspecs": [KERNEL_NAME]},
}
# A conda environment.yml is solved by micromamba (a static binary, copied from its image).
MICROMAMBA_IMAGE = "mambaorg/micromamba:2.0.5"
CONDA_CHANNELS = ("conda-forge",)  # used when the file names none (after its own)
CONTEXT_DIR = "/build/context"
DOCKERFILE_DIR = "/build/dockerfile"
_COMPONENT = re.compile(r"[^a-z0-9]+")
# An image reference as it may appear after FROM: no spaces, quotes or newlines.
IMAGE_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_HEADER = "# Rendered by codespace from the repository's spec; built by the codespace build Job."


class ImageError(ValueError):
    """The spec names an image that cannot be used (the message says which)."""


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


def image_name(prefix: str, repo: str, tag: str) -> str:
    return f"{prefix.rstrip('/')}/{repo_slug(repo)}:{tag[:32]}"


def image_tag(env_hash: str, platform_image: str) -> str:
    """The codespace image's tag: the environment hash, the kernel layer and the platform
    image it is built on (a platform upgrade or a new kernel layer rebuilds it; a commit
    that changes only code does not)."""
    text = json.dumps([env_hash, kernel_layer_digest(), platform_image])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ImageChoice:
    """Which image the pod runs, and how to build it (``dockerfile`` None: use as is).

    ``dockerfile`` is the rendered Dockerfile: the platform image plus the environment, or
    the platform overlay on a user image. For a repository Dockerfile (``dockerfile_path``,
    ``context_subdir``, ``build_args``, ``target``) the build Job builds that first, as
    given, into ``repository_image``, which the overlay starts ``FROM``.
    """

    image: str
    dockerfile: str | None
    context_subdir: str = "."
    dockerfile_path: str | None = None  # a repository Dockerfile, built first as given
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    repository_image: str | None = None  # where the repository Dockerfile's image is pushed
    user_image: str | None = None  # the user image the platform is added to, if any
    platform_image: str | None = None  # the platform image used (as is, FROM or COPY --from)
    warnings: tuple[str, ...] = ()  # what the build cannot honour, for the spawn's progress

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


def _venv_line(codespace: Codespace, on_user_image: bool) -> str:
    """Create the uv environment. On a user image it sees the image's own packages
    (``--system-site-packages``) and uses the image's ``python3`` unless the spec names a
    version; an image without Python 3.8+ gets the platform's Python."""
    venv = f"{PLATFORM_UV} venv"
    if not on_user_image:
        python = shlex.quote(codespace.python.version or PLATFORM_PYTHON_VERSION)
        return f"RUN {venv} --python {python} {ENV_PREFIX}"
    venv += " --system-site-packages"
    if codespace.python.version:
        return f"RUN {venv} --python {shlex.quote(codespace.python.version)} {ENV_PREFIX}"
    return "\n".join(
        [
            "RUN if python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; \\",
            f'    then {venv} --python "$(command -v python3)" {ENV_PREFIX}; \\',
            "    else echo 'codespace: no Python 3.8+ in the image: using the platform Python' \\",
            f"      && {venv} --python {PLATFORM_PYTHON_VERSION} {ENV_PREFIX}; fi",
        ]
    )


def _install_lines(codespace: Codespace, on_user_image: bool) -> list[str]:
    """Copy and install the requirement files, then the kernel layer (as the local mode)."""
    requirements = [
        (index, name)
        for index, name in enumerate(codespace.python.requirements)
        if not is_environment_file(name)
    ]
    lines = []
    targets = []
    for index, requirement in requirements:
        target = f"/tmp/codespace-build/req{index}-{requirement.rsplit('/', 1)[-1]}"
        lines.append(f"COPY {json.dumps(requirement)} {json.dumps(target)}")
        targets += ["-r", target]
    if targets:
        install = [PLATFORM_UV, "pip", "install", "--python", f"{ENV_PREFIX}/bin/python"]
        lines.append("RUN " + shlex.join([*install, *targets]))
    steps = kernel_layer_commands(ENV_PREFIX, PLATFORM_PYTHON, uv=PLATFORM_UV)
    lines += ["RUN " + shlex.join(argv) for argv in steps]
    serving = ["-m", "codespace.deploy.image_layer", "--env", ENV_PREFIX, "--uv", PLATFORM_UV]
    lines.append(
        "RUN " + shlex.join([PLATFORM_PYTHON, "-I", *serving, "--target", IMAGE_SERVING_PREFIX])
    )
    config_dir = f"{ENV_PREFIX}/etc/jupyter"
    config = shlex.quote(json.dumps(SERVER_CONFIG))
    lines.append(
        f"RUN mkdir -p {config_dir} && printf '%s\\n' {config}"
        f" > {config_dir}/jupyter_server_config.json"
    )
    path = f"{ENV_PREFIX}/bin:{PLATFORM_PATH}" if on_user_image else f"{ENV_PREFIX}/bin"
    lines.append(
        f'ENV VIRTUAL_ENV="{ENV_PREFIX}" PATH="{path}:$PATH"'
        f' JUPYTER_PATH="{jupyter_data_dir(ENV_PREFIX)}" JUPYTER_CONFIG_PATH="{config_dir}"'
    )
    return lines


def _environment_lines(
    codespace: Codespace, micromamba_image: str, *, on_user_image: bool
) -> list[str]:
    """The spec's environment on an image that has the platform (run as root at first)."""
    lines = []
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
        "ARG UV_NO_CACHE=1",  # a build-time variable: no uv cache in the image's layers
        "WORKDIR /tmp/codespace-build",
    ]
    if conda:
        lines += _conda_lines(codespace, conda, micromamba_image)
    else:
        lines.append(_venv_line(codespace, on_user_image))
    lines += _install_lines(codespace, on_user_image)
    if codespace.postBuild:
        lines += [
            f"COPY {json.dumps(codespace.postBuild)} /tmp/codespace-build/postBuild",
            "RUN chmod +x /tmp/codespace-build/postBuild && /tmp/codespace-build/postBuild",
        ]
    lines.append("WORKDIR /home/${NB_USER:-jovyan}")
    return lines


# git and sshd for the platform when the image has apt-get (fixed text, no user data).
_PLATFORM_PACKAGES = """\
RUN if command -v apt-get >/dev/null 2>&1; then \\
      apt-get update \\
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
           git openssh-server openssh-client ca-certificates procps \\
      && rm -rf /var/lib/apt/lists/*; \\
    else echo 'codespace: warning: no apt-get in this image: git and sshd are not added' >&2; \\
    fi \\
 && mkdir -p /run/sshd"""

# The account the pod runs as (uid 1000, gid 100), unless the image already has uid 1000.
_PLATFORM_USER = f"""\
RUN (getent group {NB_GID} >/dev/null 2>&1 || groupadd --gid {NB_GID} users) \\
 && (getent passwd {NB_UID} >/dev/null 2>&1 \\
     || useradd --create-home --uid {NB_UID} --gid {NB_GID} --shell /bin/bash {NB_USER}) \\
 && mkdir -p /home/{NB_USER} /workspaces /opt/codespace \\
 && chown {NB_UID}:{NB_GID} /home/{NB_USER} /workspaces /opt/codespace \\
 && chown -R {NB_UID}:{NB_GID} /opt/python"""


def _platform_overlay_lines(user_image: str, platform_image: str) -> list[str]:
    """The platform added to a user image, as images/singleuser-gpu does onto CUDA."""
    return [
        "# The repository's image with the platform added: the Jupyter server, its",
        "# extensions, code-server and uv from the platform image (all under /opt; its Python",
        "# needs a glibc-based image), git and sshd with apt-get when the image has it, the",
        "# jovyan account (uid 1000) unless the image has one, then the repository",
        "# environment with the kernel layer, the same as the local mode's.",
        f"FROM {platform_image} AS codespace-platform",
        f"FROM {user_image}",
        "USER root",
        "COPY --from=codespace-platform /opt /opt",
        "COPY --from=codespace-platform /etc/jupyter /etc/jupyter",
        f"ENV NB_USER={NB_USER} NB_UID={NB_UID} NB_GID={NB_GID} HOME=/home/{NB_USER} \\",
        "    UV_PYTHON_INSTALL_DIR=/opt/python \\",
        "    CODESPACE_CODE_SERVER=/opt/code-server/bin/code-server",
        _PLATFORM_PACKAGES,
        _PLATFORM_USER,
    ]


def _check_reference(image: str) -> str:
    if not IMAGE_REFERENCE.match(image):
        raise ImageError(f"image {image!r} is not an image reference such as python:3.11")
    return image


def render_dockerfile(
    codespace: Codespace,
    base_image: str,
    *,
    micromamba_image: str = MICROMAMBA_IMAGE,
    platform_image: str | None = None,
) -> str:
    """A Dockerfile for the codespace's image.

    Without ``platform_image``, ``base_image`` is the platform image and the spec's
    environment is added ``FROM`` it. With it, ``base_image`` is a user image (a
    devcontainer ``image``, or what a repository Dockerfile built) and the platform is
    first copied in from ``platform_image``.

    The repository environment at ``/opt/codespace/env`` becomes the server's only kernel
    (kernelspec ``codespace``, found through ``JUPYTER_PATH``): a uv venv, or, for a conda
    environment file, the conda environment micromamba solves from it (the cluster reaches
    conda channels), with the kernel layer of :func:`codespace.kernel_layer.kernel_layer_commands`.
    Jupyter itself stays in the platform's environment.
    """
    _check_reference(base_image)
    if platform_image is None:
        lines = [_HEADER, f"FROM {base_image}", "USER root"]
    else:
        lines = [_HEADER, *_platform_overlay_lines(base_image, _check_reference(platform_image))]
    lines += _environment_lines(codespace, micromamba_image, on_user_image=bool(platform_image))
    if platform_image is not None:
        lines += [
            "EXPOSE 8888",
            f'ENTRYPOINT [{json.dumps(PLATFORM_TINI)}, "--"]',
            'CMD ["jupyterhub-singleuser"]',
        ]
    return "\n".join(lines) + "\n"


def choose_image(
    codespace: Codespace, config: KubeConfig, repo: str, env_hash: str, gpu: bool
) -> ImageChoice:
    """Decide the pod's image: the platform image as is, or a rendered Dockerfile (on the
    platform image, or adding the platform to the spec's ``image`` or ``build``).

    Raises :class:`ImageError` for an ``image`` that is not an image reference.
    """
    platform = config.build.gpuBaseImage if gpu else config.build.baseImage
    name = image_name(config.registry.prefix, repo, image_tag(env_hash, platform))
    build = codespace.build
    if build is not None and build.dockerfile:
        built = f"{name}-base"
        unused = [key for key in ("cacheFrom", "options") if getattr(build, key)]
        return ImageChoice(
            image=name,
            dockerfile=render_dockerfile(codespace, built, platform_image=platform),
            context_subdir=build.context or ".",
            dockerfile_path=build.dockerfile,
            build_args=tuple(sorted(build.args.items())),
            target=build.target,
            repository_image=built,
            user_image=built,
            platform_image=platform,
            warnings=tuple(f"build.{key} is not used by the image build" for key in unused),
        )
    platforms = (config.build.baseImage, config.build.gpuBaseImage)
    if codespace.image and codespace.image not in platforms:
        return ImageChoice(
            image=name,
            dockerfile=render_dockerfile(codespace, codespace.image, platform_image=platform),
            user_image=codespace.image,
            platform_image=platform,
        )
    base = codespace.image or platform  # naming a platform image is the same as naming none
    if not _needs_layers(codespace):
        return ImageChoice(image=base, dockerfile=None, platform_image=base)
    return ImageChoice(
        image=name, dockerfile=render_dockerfile(codespace, base), platform_image=base
    )
