"""The spec's parsers, validation messages, CLI and JSON Schema, as a user meets them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from codespace.cli import main
from codespace.resolve import default_resolution, resolve
from codespace.spec.errors import SpecError
from codespace.spec.files import MAX_FILE_BYTES
from codespace.spec.model import Codespace
from codespace.spec.parse import parse_jsonc, parse_yaml
from codespace.spec.schema import manifest_schema

CASES = Path(__file__).resolve().parent.parent / "cases"
KEYS = [*Codespace.model_fields, "forwardPorts", "hostRequirements", "portsAttributes", "cpu"]


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
    st.none() | st.booleans() | st.integers(-10, 70000) | st.floats(-2, 2) | st.text(max_size=8),
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
