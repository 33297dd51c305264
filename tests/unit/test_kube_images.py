"""images/: the Dockerfiles agree with the defaults the builders and Helm values use.

The images cannot be built here (no registry to pull base images from); this checks what
can be checked without a container runtime.
"""

from __future__ import annotations

import re

import yaml

from codespace.kube import image
from codespace.kube.config import DEFAULT_BASE_IMAGE, DEFAULT_GPU_BASE_IMAGE
from codespace.kube.plan import NB_UID
from tests.conftest import REPO_ROOT

IMAGES = REPO_ROOT / "images"


def dockerfile(name: str) -> str:
    return (IMAGES / name / "Dockerfile").read_text()


def test_singleuser_image_has_lab_extensions_code_server_and_sshd():
    text = dockerfile("singleuser")
    assert '"/src[platform]"' in text  # jupyterlab, jupyter-server-proxy, our extensions
    assert "scripts/build-labextension.sh" in text
    assert "code-server" in text and "openssh-server" in text
    assert re.search(r"ARG NB_UID=(\d+)", text)[1] == str(NB_UID)
    assert 'CMD ["jupyterhub-singleuser"]' in text
    assert "COPY config/singleuser/ /etc/jupyter/" in text


def test_gpu_variant_builds_on_the_cpu_image_and_cuda():
    text = dockerfile("singleuser-gpu")
    assert f"ARG CPU_IMAGE={DEFAULT_BASE_IMAGE}" in text
    assert "nvidia/cuda:" in text
    assert DEFAULT_GPU_BASE_IMAGE in text  # the build command it documents


def test_helm_values_use_the_images_built_here():
    values = yaml.safe_load((REPO_ROOT / "config/helm/values.yaml").read_text())
    single = values["singleuser"]["image"]
    assert f"{single['name']}:{single['tag']}" == DEFAULT_BASE_IMAGE
    assert values["hub"]["image"]["name"] in (IMAGES / "hub/Dockerfile").read_text()


def _arg(text: str, name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", text, re.MULTILINE)[1]


def test_the_platform_is_where_rendered_dockerfiles_copy_it_from():
    # codespace/kube/image.py adds the platform to a user image with COPY --from=<this> /opt
    text = dockerfile("singleuser")
    assert f"cp /usr/bin/tini-static {image.PLATFORM_TINI}" in text
    assert "cp /usr/local/bin/uv /usr/local/bin/uvx /opt/platform/bin/" in text
    assert image.PLATFORM_UV == "/opt/platform/bin/uv"
    assert image.PLATFORM_PYTHON == "/opt/platform/bin/python"
    assert 'uv venv --python "${PYTHON_VERSION}" /opt/platform' in text
    assert _arg(text, "PYTHON_VERSION") == image.PLATFORM_PYTHON_VERSION
    assert f"PATH={image.PLATFORM_PATH}:" in text
    assert "UV_PYTHON_INSTALL_DIR=/opt/python" in text
    for name in ("NB_USER", "NB_UID", "NB_GID"):
        assert _arg(text, name) == str(getattr(image, name))
    assert image.ENV_PREFIX.startswith("/opt/codespace/") and "/opt/codespace" in text
    assert "COPY --from=cpu /opt /opt" in dockerfile("singleuser-gpu")


def test_the_hub_renders_the_kernel_layer_with_the_platform_ipywidgets():
    # the hub reads the installed ipywidgets version as the kernel layer's pin
    version = _arg(dockerfile("singleuser"), "IPYWIDGETS_VERSION")
    assert _arg(dockerfile("hub"), "IPYWIDGETS_VERSION") == version
    assert '"ipywidgets==${IPYWIDGETS_VERSION}"' in dockerfile("singleuser")
    assert '--no-deps "ipywidgets==${IPYWIDGETS_VERSION}"' in dockerfile("hub")
