"""The spec's parsers, validation messages, CLI and JSON Schema, as a user meets them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from codespace.cli import main
from codespace.resolve import DEFAULT_SOURCE, default_resolution, resolve
from codespace.sources import DEFAULT_SOURCES, load_sources
from codespace.sources.devcontainer import DevcontainerDetector
from codespace.sources.repo2docker import RootFilesDetector
from codespace.spec.errors import SpecError
from codespace.spec.files import MAX_FILE_BYTES
from codespace.spec.model import Codespace
from codespace.spec.parse import parse_jsonc, parse_yaml
from codespace.spec.schema import manifest_schema
from codespace.spec.variables import devcontainer_id, expand, expand_env

CASES = Path(__file__).resolve().parent.parent / "cases"
KEYS = [
    *Codespace.model_fields,
    "forwardPorts",
    "hostRequirements",
    "portsAttributes",
    "cpu",
    "extensions",
    "settings",
]
VARIABLES = st.sampled_from(
    [
        "${localWorkspaceFolder}/x",
        "${containerWorkspaceFolder}",
        "${localWorkspaceFolderBasename}",
        "${localEnv:A}",
        "${localEnv:A:b}",
        "${containerEnv:PATH}",
        "${devcontainerId}",
        "${HOME}",
    ]
)


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ parsers


def test_jsonc_comments_inside_strings_are_kept() -> None:
    text = '{\n  "url": "http://x//y", /* block\n comment */ "a": "/* not */",\n}'
    document = parse_jsonc(text, "d.json")
    assert document.data == {"url": "http://x//y", "a": "/* not */"}
    assert str(document.locate(("a",))) == "d.json:3:18"


def test_jsonc_escaped_quotes_and_trailing_commas() -> None:
    document = parse_jsonc('{"a": "say \\"hi\\" // x", "b": [1, 2,],}', "d.json")
    assert document.data == {"a": 'say "hi" // x', "b": [1, 2]}


@pytest.mark.parametrize(
    ("text", "where"),
    [('{"a": 1', "1:8"), ('{"a": [1, }', "1:11"), ('{"a": 1} x', "1:10"), ("{a: 1}", "1:2")],
)
def test_jsonc_syntax_errors_have_positions(text: str, where: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_jsonc(text, "d.json")
    assert str(raised.value).startswith(f"d.json:{where}: JSON syntax error")


def test_yaml_positions_point_at_values() -> None:
    document = parse_yaml("a:\n  - b: 1\n    c: [x, y]\n", "f.yaml")
    assert str(document.locate(("a", 0, "c", 1))) == "f.yaml:3:12"
    assert str(document.locate(("a", 0, "c"), key=True)) == "f.yaml:3:5"


def test_empty_manifest_is_the_default_model(tmp_path: Path) -> None:
    write(tmp_path, ".codespace/codespace.yaml", "# nothing yet\n")
    resolution = resolve(tmp_path)
    assert resolution.source == ".codespace/codespace.yaml"
    assert resolution.codespace == default_resolution(tmp_path).codespace


def test_files_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    write(tmp_path, ".codespace/codespace.yaml", "name: x\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(SpecError, match=r"codespace.yaml: file is \d+ bytes; .*\(1 MiB\)"):
        resolve(tmp_path)


def test_recursive_yaml_alias_is_refused() -> None:
    with pytest.raises(SpecError):
        parse_yaml("a: &a\n  b: *a\n", "f.yaml")


# ------------------------------------------------------------------ equivalence


def test_devcontainer_and_codespace_yaml_resolve_to_the_same_model(tmp_path: Path) -> None:
    devcontainer = tmp_path / "dc"
    write(
        devcontainer,
        ".devcontainer/devcontainer.json",
        """{
          // same environment, devcontainer spelling
          "image": "python:3.11",
          "forwardPorts": [8888],
          "portsAttributes": {"8888": {"label": "Lab"}},
          "hostRequirements": {"cpus": 2, "memory": "4Gi", "gpu": "optional"},
          "containerEnv": {"A": "1"},
          "postCreateCommand": "make",
          "customizations": {
            "vscode": {"extensions": ["ms-python.python"]},
            "codespace": {"datasets": [{"name": "mnist"}],
                          "python": {"requirements": ["../requirements.txt"]}},
          },
        }""",
    )
    ours = tmp_path / "cs"
    write(
        ours,
        ".codespace/codespace.yaml",
        """
image: python:3.11
ports: [{port: 8888, label: Lab}]
resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, optional: true}}
containerEnv: {A: "1"}
postCreateCommand: make
customizations: {vscode: {extensions: [ms-python.python]}}
datasets: [{name: mnist}]
python: {requirements: [requirements.txt]}
""",
    )
    for root in (devcontainer, ours):
        write(root, "requirements.txt", "numpy\n")
    a = resolve(devcontainer, mode="kubernetes")
    b = resolve(ours, mode="kubernetes")
    assert a.codespace == b.codespace
    assert a.env_hash == b.env_hash
    assert (a.source_kind, b.source_kind) == ("devcontainer", "codespace")


# ------------------------------------------------------------------ CLI


def test_validate_ok_prints_warnings_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(CASES / "devcontainer-build-dockerfile" / "repo")])
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: .devcontainer/devcontainer.json:2:3: build:" in captured.err
    assert "valid (devcontainer)" in captured.err


def test_validate_errors_exit_2_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(CASES / "error-several-at-once" / "repo")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith(".codespace/codespace.yaml:") for line in lines)
    assert "Traceback" not in captured.err


def test_validate_a_missing_directory_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "/nonexistent/repo"]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_resolve_json(capsys: pytest.CaptureFixture[str]) -> None:
    repo = CASES / "devcontainer-named-configs-default" / "repo"
    assert main(["resolve", str(repo), "--config", "gpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == ".devcontainer/gpu/devcontainer.json"
    assert data["source_kind"] == "devcontainer"
    assert len(data["env_hash"]) == 64
    assert data["codespace"]["resources"]["gpu"] == {"count": 1, "optional": True}


def test_resolve_yaml_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resolve", str(CASES / "repo2docker-requirements" / "repo")]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["source"] == "."
    assert data["codespace"]["python"]["requirements"] == ["requirements.txt"]


def test_schema_accepts_real_manifests_and_rejects_typos(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    manifests = sorted(CASES.glob("codespace-*/repo/.codespace/codespace.y*ml"))
    manifests.append(CASES / "extends-devcontainer/repo/.codespace/codespace.yaml")
    for manifest in manifests:
        data = yaml.safe_load(manifest.read_text())
        data = {k: v for k, v in data.items() if not k.startswith("x-")}
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], f"{manifest}: {errors}"
    assert not validator.is_valid({"pythn": {}})
    assert not validator.is_valid({"ports": [{"port": 70000}]})


def test_schema_is_a_fresh_copy() -> None:
    manifest_schema()["properties"].clear()
    assert "python" in manifest_schema()["properties"]


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        resolve(tmp_path, mode="cloud")


# ------------------------------------------------------------------ never a traceback

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 70000)
    | st.floats(-2, 2)
    | st.text(max_size=8)
    | VARIABLES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=80))
def test_any_text_parses_or_fails_with_a_spec_error(text: str) -> None:
    for parse in (parse_jsonc, parse_yaml):
        try:
            parse(text, "f")
        except SpecError as error:
            assert str(error).startswith("f")


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5))
def test_any_manifest_resolves_or_fails_with_positions(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write(root, ".codespace/codespace.yaml", yaml.safe_dump(data))
        write(root, ".devcontainer/devcontainer.json", json.dumps(data))
        for _source in ("codespace.yaml", "devcontainer.json"):
            try:
                resolve(root)
            except SpecError as error:
                for diagnostic in error.diagnostics:
                    assert diagnostic.location is not None, str(diagnostic)
            (root / ".codespace/codespace.yaml").unlink(missing_ok=True)


# ------------------------------------------------------------------ devcontainer variables


def test_runtime_variables_expand_from_the_codespace_environment() -> None:
    env = {"CODESPACE_WORKSPACE": "/home/jovyan/weather", "PATH": "/usr/bin"}
    assert expand("${containerWorkspaceFolder}/src", env) == "/home/jovyan/weather/src"
    assert expand("x-${containerWorkspaceFolderBasename}", env) == "x-weather"
    assert expand("${containerEnv:PATH}:/opt", env) == "/usr/bin:/opt"
    assert expand("${containerEnv:NOPE:fallback}|${containerEnv:NOPE}", env) == "fallback|"
    assert expand("${HOME} stays", env) == "${HOME} stays"
    assert expand_env({"A": "${containerWorkspaceFolder}", "B": None}, env) == {
        "A": "/home/jovyan/weather"
    }


def test_devcontainer_id_is_stable_and_per_configuration() -> None:
    first = devcontainer_id(".devcontainer/devcontainer.json")
    assert first == devcontainer_id(".devcontainer/devcontainer.json")
    assert len(first) == 52 and first.isalnum()
    assert first != devcontainer_id(".devcontainer/gpu/devcontainer.json")


def test_argv_command_with_the_workspace_runs_as_the_same_argv(tmp_path: Path) -> None:
    """An argv list that needs the workspace becomes a /bin/sh string with the same words,
    even when the workspace path has spaces and the arguments have quotes."""
    repo = tmp_path / "repo"
    write(
        repo,
        ".devcontainer/devcontainer.json",
        json.dumps(
            {
                "image": "python:3.12",
                "postStartCommand": [
                    "printf",
                    "%s\\n",
                    "${containerWorkspaceFolder}/data",
                    "it's ${containerWorkspaceFolderBasename}!",
                    "${containerEnv:GREETING}",
                    "$HOME",
                ],
            }
        ),
    )
    command = resolve(repo, mode="kubernetes").codespace.postStartCommand
    assert isinstance(command, str)
    workspace = tmp_path / "my work space"
    env = {"CODESPACE_WORKSPACE": str(workspace), "GREETING": "a  b", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == [f"{workspace}/data", "it's my work space!", "a  b", "$HOME"]


def test_resolution_does_not_depend_on_the_checkout_path(tmp_path: Path) -> None:
    case = CASES / "devcontainer-variables-workspace" / "repo"
    one = shutil.copytree(case, tmp_path / "a" / "checkout")
    two = shutil.copytree(case, tmp_path / "elsewhere" / "weather-service")
    a, b = resolve(one, mode="kubernetes"), resolve(two, mode="kubernetes")
    assert a.env_hash == b.env_hash
    assert a.codespace == b.codespace
    assert str(tmp_path) not in json.dumps(a.to_dict())


def test_a_workspace_path_that_leaves_the_repository_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path,
        ".devcontainer/devcontainer.json",
        '{\n  "build": {"dockerfile": "Dockerfile", "context": "${localWorkspaceFolder}/.."}\n}',
    )
    write(tmp_path, ".devcontainer/Dockerfile", "FROM python:3.12\n")
    with pytest.raises(
        SpecError,
        match=r"devcontainer.json:2:52: build.context: '\$\{localWorkspaceFolder\}/\.\.' leaves",
    ):
        resolve(tmp_path)


def test_the_local_env_of_the_hub_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SECRET", "s3cret")
    write(tmp_path, ".devcontainer.json", '{"containerEnv": {"X": "${localEnv:HUB_SECRET}"}}')
    resolution = resolve(tmp_path)
    assert resolution.codespace.containerEnv == {"X": ""}
    assert any("${localEnv:HUB_SECRET}" in str(w) for w in resolution.warnings)


# ------------------------------------------------------------------ referenced files


def test_requirement_files_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r big.txt\n")
    write(tmp_path, "big.txt", "numpy\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(SpecError, match=r"^big.txt: file is \d+ bytes"):
        resolve(tmp_path)


def test_referenced_scripts_must_be_utf8(tmp_path: Path) -> None:
    write(tmp_path, "binder/requirements.txt", "numpy\n")
    (tmp_path / "binder" / "postBuild").write_bytes(b"#!/bin/sh\necho \xff\n")
    with pytest.raises(SpecError, match=r"^binder/postBuild:2:6: file is not valid UTF-8"):
        resolve(tmp_path)


def test_includes_that_leave_the_repository_or_are_urls(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r https://example.invalid/r.txt\n-c ../../c.txt\n")
    with pytest.raises(SpecError) as raised:
        resolve(tmp_path)
    assert str(raised.value) == (
        "requirements.txt:2:4: include: '../../c.txt' leaves the repository"
    )


def test_gpu_whole_float_is_a_count() -> None:
    assert Codespace.model_validate({"resources": {"gpu": 2.0}}).resources.gpu.count == 2  # type: ignore[union-attr]


def test_schema_has_wait_for_and_port_attributes() -> None:
    properties = manifest_schema()["properties"]
    assert "postAttachCommand" not in str(properties["waitFor"])
    assert {"portsAttributes", "otherPortsAttributes"} <= set(properties)
    validator = jsonschema.Draft202012Validator(manifest_schema())
    assert validator.is_valid({"waitFor": "onCreateCommand", "portsAttributes": {"1-9": {}}})
    assert not validator.is_valid({"portsAttributes": {"db:5432": {}}})


def test_validate_local_mode_lists_what_it_cannot_honour(
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = CASES / "codespace-local-mode-lists-what-it-cannot-honour" / "repo"
    assert main(["validate", str(repo), "--mode", "local"]) == 0
    err = capsys.readouterr().err
    for key in ("image", "features", "apt", "start", "workspaceFolder"):
        assert "warning: .codespace/codespace.yaml" in err and f": {key}: " in err, key


# ------------------------------------------------------------------ the order of sources


def devcontainer_and_environment_yml(root: Path) -> Path:
    write(root, ".devcontainer/devcontainer.json", '{"name": "dc"}\n')
    write(root, "environment.yml", "dependencies:\n  - python=3.11\n")
    return root


ROOT_FILES_FIRST = [
    "codespace.sources.repo2docker.RootFilesDetector",
    "codespace.sources.devcontainer.DevcontainerDetector",
]


class EnvironmentYmlFirst(RootFilesDetector):
    """A site's own detector: a subclass, listed by class."""


def test_the_order_of_sources_decides_which_file_wins(tmp_path: Path) -> None:
    repo = devcontainer_and_environment_yml(tmp_path)
    assert resolve(repo).source_kind == "devcontainer"  # DESIGN §3 order
    assert resolve(repo, sources=DEFAULT_SOURCES).source_kind == "devcontainer"
    assert resolve(repo, sources=ROOT_FILES_FIRST).source_kind == "repo2docker"
    assert resolve(repo, sources=[EnvironmentYmlFirst, DevcontainerDetector]).source == "."
    assert resolve(repo, sources=[]).source == DEFAULT_SOURCE  # nothing tried: the default
    assert load_sources(ROOT_FILES_FIRST) == [RootFilesDetector, DevcontainerDetector]


def test_a_named_devcontainer_config_wins_whatever_the_order(tmp_path: Path) -> None:
    repo = devcontainer_and_environment_yml(tmp_path)
    write(repo, ".devcontainer/gpu/devcontainer.json", '{"name": "gpu"}\n')
    resolution = resolve(repo, config="gpu", sources=[RootFilesDetector])
    assert resolution.source == ".devcontainer/gpu/devcontainer.json"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("codespace.sources.nowhere.Detector", "cannot import codespace.sources.nowhere"),
        ("codespace.sources.repo2docker.NoSuchDetector", "has no 'NoSuchDetector'"),
        ("RootFilesDetector", "is not an import string"),
        ("codespace.sources.base.Found", "is not a detector class"),
    ],
)
def test_an_unknown_source_is_a_clear_error(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"spec source {source!r}")) as raised:
        resolve(devcontainer_and_environment_yml(tmp_path), sources=[source])
    assert message in str(raised.value)


def test_validate_takes_the_order_of_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(devcontainer_and_environment_yml(tmp_path))
    order = ",".join(ROOT_FILES_FIRST)
    assert main(["validate", repo, "--sources", order]) == 0
    assert ".: valid (repo2docker)" in capsys.readouterr().err
    assert main(["validate", repo, "--sources", "nope.Detector"]) == 2
    assert "error: spec source 'nope.Detector': cannot import nope" in capsys.readouterr().err
