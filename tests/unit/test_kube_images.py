"""images/: the Dockerfiles agree with the defaults the builders and Helm values use.

The images cannot be built here (no registry to pull base images from); this checks what
can be checked without a container runtime.
"""

from __future__ import annotations

import re

import yaml

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
