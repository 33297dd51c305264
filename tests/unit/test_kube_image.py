"""Image names, the rendered Dockerfile and the build Job (BuildKit and Buildah)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codespace.envhash import dockerfile_instructions
from codespace.kube.config import parse_config
from codespace.kube.image import build_job, build_job_name, choose_image, image_name, repo_slug
from codespace.spec.model import Codespace
from tests.conftest import require_executable
from tests.helpers.k8s_schema import assert_valid
from tests.helpers.repos import git, make_repo

HASH = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("repo", "slug"),
    [
        ("https://github.com/Org/My_Repo.git", "github-com-org-my-repo"),
        ("git@gitlab.example.org:team/sub/project.git", "gitlab-example-org-team-sub-project"),
        ("ssh://git@host:2222/a/b", "host-2222-a-b"),
        ("/srv/repos/demo", "srv-repos-demo"),
    ],
)
def test_repo_slug_is_a_valid_registry_path_component(repo, slug):
    assert repo_slug(repo) == slug
    name = image_name("registry.example.org:5000/codespaces/", repo, HASH)
    assert name == f"registry.example.org:5000/codespaces/{slug}:{HASH[:32]}"


def test_a_code_only_change_keeps_the_image_name():
    # the tag is the environment hash, nothing else about the commit
    assert image_name("r", "https://h/a.git", HASH) == image_name("r", "https://h/a.git", HASH)
    assert image_name("r", "https://h/a.git", HASH) != image_name("r", "https://h/a.git", "9" * 64)


def test_default_codespace_runs_the_base_image_without_a_build():
    config = parse_config({})
    choice = choose_image(Codespace(), config, "https://h/a.git", HASH, gpu=False)
    assert choice.image == config.build.baseImage and not choice.needs_build
    gpu_choice = choose_image(Codespace(), config, "https://h/a.git", HASH, gpu=True)
    assert gpu_choice.image == config.build.gpuBaseImage


def test_dockerfile_adds_apt_uv_environment_and_post_build():
    codespace = Codespace(
        apt=["graphviz", "libgl1"],
        python={"version": "3.12", "requirements": ["requirements.txt", "env/dev.txt"]},
        postBuild="binder/postBuild",
    )
    choice = choose_image(codespace, parse_config({}), "https://h/a.git", HASH, gpu=False)
    text = choice.dockerfile
    assert text.startswith("# Rendered") and "FROM ghcr.io/codespace-hub/singleuser:" in text
    assert "apt-get install -y --no-install-recommends graphviz libgl1" in text
    assert "uv venv --python 3.12 /opt/codespace/env" in text
    assert 'COPY "env/dev.txt" "/tmp/codespace-build/req1-dev.txt"' in text
    assert (
        "-r /tmp/codespace-build/req0-requirements.txt -r /tmp/codespace-build/req1-dev.txt" in text
    )
    assert "ipykernel install --prefix /opt/codespace/env" in text
    assert 'COPY "binder/postBuild"' in text and text.index("postBuild") > text.index("uv pip")


def test_apt_names_are_quoted_for_the_shell():
    choice = choose_image(Codespace(apt=["g++"]), parse_config({}), "/r", HASH, gpu=False)
    assert "--no-install-recommends g++ " in choice.dockerfile


def _job(tool: str, codespace: Codespace, **registry):
    config = parse_config({"build": {"tool": tool}, "registry": registry})
    choice = choose_image(codespace, config, "https://h/a.git", HASH, gpu=False)
    return choice, assert_valid(
        build_job(choice, config, repo="https://h/a.git", ref="v1", namespace="ns")
    )


def test_buildkit_job_is_rootless_and_pushes_the_image():
    choice, job = _job("buildkit", Codespace(apt=["curl"]), pushSecret="push", insecure=True)
    assert job["metadata"]["name"] == build_job_name(choice.image)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    builder = pod["containers"][0]
    assert builder["command"] == ["buildctl-daemonless.sh"]
    assert (
        f"--output=type=image,name={choice.image},push=true,registry.insecure=true"
        in builder["args"]
    )
    assert builder["securityContext"]["runAsUser"] == 1000
    assert "privileged" not in builder["securityContext"]
    assert {"name": "DOCKER_CONFIG", "value": "/home/user/.docker"} in builder["env"]
    assert not any("docker.sock" in str(v) for v in pod["volumes"])
    clone = pod["initContainers"][0]
    assert clone["args"] == ["https://h/a.git", "v1", choice.dockerfile]


def test_buildah_job_builds_a_repository_dockerfile_as_given():
    codespace = Codespace(
        build={
            "dockerfile": ".devcontainer/Dockerfile",
            "context": ".devcontainer",
            "args": {"V": "1"},
        }
    )
    choice, job = _job("buildah", codespace)
    assert choice.needs_build and choice.dockerfile is None
    builder = job["spec"]["template"]["spec"]["containers"][0]
    assert builder["args"][:3] == [
        choice.image,
        "/build/context/.devcontainer/Dockerfile",
        "/build/context/.devcontainer",
    ]
    assert "--build-arg=V=1" in builder["args"]
    # user data reaches the shell only as positional arguments
    assert choice.image not in builder["command"][2]


def test_the_build_context_clone_script_checks_out_the_ref(tmp_path: Path):
    require_executable("git")
    repo = make_repo(tmp_path / "repo", {"requirements.txt": "rich\n"})
    git(repo, "tag", "v1")
    config = parse_config({})
    choice = choose_image(Codespace(apt=["curl"]), config, str(repo), HASH, gpu=False)
    job = build_job(choice, config, repo=str(repo), ref="v1", namespace="ns")
    clone = job["spec"]["template"]["spec"]["initContainers"][0]
    script = clone["command"][2].replace("/build", str(tmp_path / "build"))
    subprocess.run(["sh", "-c", script, "clone", *clone["args"]], check=True)
    assert (tmp_path / "build/context/requirements.txt").read_text() == "rich\n"
    assert (tmp_path / "build/dockerfile/Dockerfile").read_text() == choice.dockerfile


def test_environment_yml_is_solved_by_micromamba():
    codespace = Codespace(
        python={
            "manager": "conda",
            "environmentFile": "binder/environment.yml",
            "version": "3.12",
            "requirements": ["requirements.txt"],
        },
        postBuild="binder/postBuild",
    )
    config = parse_config({})
    choice = choose_image(codespace, config, "https://h/a.git", HASH, gpu=False)
    text = choice.dockerfile
    assert "COPY --from=mambaorg/micromamba:2.0.5 /bin/micromamba /usr/local/bin/micromamba" in text
    assert "chown ${NB_UID:-1000}:${NB_GID:-100} /opt/codespace\n" in text
    assert "uv venv" not in text
    instructions = dockerfile_instructions(text)
    [create] = [args for name, args in instructions if "micromamba create" in args]
    # the repository is bind-mounted (writable, discarded) so pip: -r/-e paths work from the
    # file's directory; the spec's Python joins the file's own specs; conda-forge by default
    assert create.startswith("--mount=type=bind,source=.,target=/tmp/codespace-build/context,rw ")
    assert "--prefix /opt/codespace/env" in create
    assert "--file /tmp/codespace-build/context/binder/environment.yml python=3.12 pip" in create
    assert "--rc-file /tmp/codespace-mambarc" in create and "micromamba clean --all" in create
    assert ("RUN", "printf 'channels:\\n  - conda-forge\\n' > /tmp/codespace-mambarc") in (
        instructions
    )
    # the kernel layer and requirement files go into the conda environment's Python
    assert (
        "uv pip install --python /opt/codespace/env/bin/python ipykernel ipywidgets"
        " -r /tmp/codespace-build/req0-requirements.txt" in text
    )
    assert text.index("micromamba create") < text.index("ipykernel install")
    assert text.index("ipykernel install") < text.index("binder/postBuild")
    assert_valid(build_job(choice, config, repo="https://h/a.git", ref=None, namespace="ns"))


def test_an_environment_file_among_the_requirements_is_a_conda_environment():
    codespace = Codespace(python={"requirements": ["environment.yaml", "dev.txt"]})
    text = choose_image(codespace, parse_config({}), "/r", HASH, gpu=False).dockerfile
    assert "--file /tmp/codespace-build/context/environment.yaml pip" in text
    assert "environment.yaml" not in text.split("micromamba clean")[1]
    assert "-r /tmp/codespace-build/req1-dev.txt" in text
