"""conda environment.yml: parsing with file:line errors, version specs, conda -> PyPI names."""

from __future__ import annotations

from pathlib import Path

import pytest

from codespace.local.envbuild.conda import (
    NOT_ON_PYPI,
    Mapping,
    conda_to_pypi,
    load_mapping,
    plan_conda_install,
)
from codespace.sources.conda import parse_package, pep440, read_environment
from codespace.spec.errors import SpecError

ENVIRONMENT = """\
name: analysis
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.11
  - numpy=1.26
  - conda-forge::pandas>=2,<3
  - msgpack-python
  - nodejs=20
  - r-base
  - pip
  - pip:
      - -r requirements-pip.txt
      - -c constraints.txt
      - -e .[dev]
      - ./vendor/tool-1.0-py3-none-any.whl
      - requests>=2
      - --index-url https://example.invalid/simple
"""


@pytest.mark.parametrize(
    ("spec", "name", "specifier"),
    [
        ("numpy", "numpy", ""),
        ("numpy=1.26", "numpy", "==1.26.*"),
        ("numpy==1.26", "numpy", "==1.26"),
        ("numpy 1.26", "numpy", "==1.26"),
        ("numpy 1.26.*", "numpy", "==1.26.*"),
        ("numpy=1.26.4=py311h64a7726_0", "numpy", "==1.26.4"),
        ("numpy 1.26.4 py311h64a7726_0", "numpy", "==1.26.4"),
        ("numpy>=1.2,<2", "numpy", ">=1.2,<2"),
        ("numpy >=1.2, <2", "numpy", ">=1.2,<2"),
        ("numpy >= 1.2", "numpy", ">=1.2"),
        ("numpy=1.2*", "numpy", "==1.2.*"),
        ("numpy!=1.3.*", "numpy", "!=1.3.*"),
        ("numpy~=1.2", "numpy", "~=1.2"),
        ("conda-forge::numpy", "numpy", ""),
        ("conda-forge/linux-64::numpy=1.26", "numpy", "==1.26.*"),
        ("numpy[version='>=1.2']", "numpy", ">=1.2"),
        ("NumPy", "numpy", ""),
    ],
)
def test_conda_specs_become_pep440(spec: str, name: str, specifier: str) -> None:
    package = parse_package(spec)
    assert (package.name, package.pep440()) == (name, specifier)


def test_channel_and_build_are_kept_apart() -> None:
    package = parse_package("conda-forge::numpy=1.26=py311_0")
    assert (package.channel, package.version, package.build) == ("conda-forge", "1.26", "py311_0")


def test_or_versions_have_no_pip_equivalent() -> None:
    with pytest.raises(ValueError, match="no pip equivalent"):
        pep440("1.11.1|1.11.3")


@pytest.mark.parametrize(
    ("dependency", "python"),
    [
        ("python=3.11", "3.11"),
        ("python==3.11.4", "3.11.4"),
        ("python 3.10.*", "3.10"),
        ("python>=3.9", ">=3.9"),
        ("python>=3.9,<3.12", ">=3.9,<3.12"),
        ("python", None),
    ],
)
def test_python_version_forms(dependency: str, python: str | None) -> None:
    environment = read_environment(f"dependencies:\n  - {dependency}\n", "environment.yml")
    assert environment.python == python
    assert environment.packages == ()


def test_a_full_file() -> None:
    environment = read_environment(ENVIRONMENT, "binder/environment.yml")
    assert environment.name == "analysis"
    assert environment.channels == ("conda-forge", "defaults")
    assert environment.python == "3.11"
    assert [p.name for p in environment.packages] == [
        "numpy",
        "pandas",
        "msgpack-python",
        "nodejs",
        "r-base",
        "pip",
    ]
    assert environment.requirement_files == [
        "binder/requirements-pip.txt",
        "binder/constraints.txt",
    ]
    assert environment.local_paths == ["binder", "binder/vendor/tool-1.0-py3-none-any.whl"]
    kinds = [(entry.kind, entry.value) for entry in environment.pip]
    assert kinds == [
        ("requirements", "requirements-pip.txt"),
        ("constraints", "constraints.txt"),
        ("editable", ".[dev]"),
        ("requirement", "./vendor/tool-1.0-py3-none-any.whl"),
        ("requirement", "requests>=2"),
        ("option", "--index-url https://example.invalid/simple"),
    ]
    assert environment.pip[2].extras == ("dev",)
    assert str(environment.pip[0].location) == "binder/environment.yml:14:9"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("- numpy\n", "environment.yml:1:1", "expected a mapping"),
        ("name: x\ndependencies: numpy\n", "environment.yml:2:15", "expected a list"),
        ("dependencies:\n  - numpy\n  - 3.11\n", "environment.yml:3:5", "dependencies[1]"),
        ("dependencies:\n  - numpy 1 2 3\n", "environment.yml:2:5", "not a conda package"),
        ("dependencies:\n  - numpy=1.2$x\n", "environment.yml:2:5", "not a conda version"),
        ("dependencies:\n  - {conda: [x]}\n", "environment.yml:2:6", "only a 'pip:' list"),
        ("dependencies:\n  - pip: requests\n", "environment.yml:2:10", "pip: expected a list"),
        ("dependencies:\n  - pip:\n    - 7\n", "environment.yml:3:7", "pip[0]"),
        ("dependencies:\n  - pip:\n    - -r ../../x.txt\n", "environment.yml:3:7", "leaves"),
        ("dependencies:\n  - pip:\n    - -r\n", "environment.yml:3:7", "-r needs a value"),
        ("channels: conda-forge\n", "environment.yml:1:11", "channels: expected a list"),
        ("dependencies:\n  - [a\n", "environment.yml:3:1", "YAML syntax error"),
    ],
)
def test_a_broken_file_is_an_error_at_its_line(text: str, where: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        read_environment(text, "environment.yml")
    assert str(raised.value).startswith(f"{where}: "), str(raised.value)
    assert message in str(raised.value)


def test_the_maintained_mapping_is_installed_and_used() -> None:
    mapping = load_mapping()
    assert mapping.source == "conda_pypi/grayskull_pypi_mapping.json"
    assert len(mapping.to_pypi) > 10_000
    assert conda_to_pypi("pytorch") == "torch"
    assert conda_to_pypi("msgpack-python") == "msgpack"
    assert conda_to_pypi("matplotlib-base") == "matplotlib"
    assert conda_to_pypi("pytables") == "tables"
    assert conda_to_pypi("python-graphviz") == "graphviz"
    assert conda_to_pypi("pyqt") == "pyqt5"


def test_names_the_mapping_lacks() -> None:
    empty = Mapping({}, None)
    assert conda_to_pypi("scikit-learn", empty) == "scikit-learn"
    assert conda_to_pypi("ruamel_yaml", empty) == "ruamel-yaml"
    assert conda_to_pypi("py-xgboost", empty) == "xgboost"
    # conda-forge's dask bundles distributed, pyarrow, pandas: PyPI's dask[complete]
    assert conda_to_pypi("dask") == "dask[complete]"
    for name in ("nodejs", "r-base", "gcc", "libgdal", "graphviz", "cudatoolkit", "_libgcc_mutex"):
        assert conda_to_pypi(name, empty) is None, name
    assert "python" in NOT_ON_PYPI


def test_plan_translates_and_reports(tmp_path: Path) -> None:
    (tmp_path / "binder").mkdir()
    environment = read_environment(ENVIRONMENT, "binder/environment.yml")
    plan = plan_conda_install(environment, tmp_path)
    assert plan.cwd == (tmp_path / "binder").resolve()
    assert plan.python == "3.11"
    assert plan.skipped == ["nodejs=20", "r-base"]
    assert ("msgpack-python", "msgpack") in plan.renamed
    args = [unit.args for unit in plan.units]
    assert args == [
        ("numpy==1.26.*",),
        ("pandas>=2,<3",),
        ("msgpack",),
        ("pip",),
        ("-r", "requirements-pip.txt"),
        ("./vendor/tool-1.0-py3-none-any.whl",),
        ("requests>=2",),
    ]
    assert plan.common == [
        "-c",
        "constraints.txt",
        "--index-url",
        "https://example.invalid/simple",
    ]
    assert [(p.path, p.extras) for p in plan.projects] == [("binder", ("dev",))]


def test_unsupported_pip_options_and_versions_are_noted(tmp_path: Path) -> None:
    text = "dependencies:\n  - numpy=1.1|1.2\n  - pip:\n    - --no-deps\n    - --pre\n"
    plan = plan_conda_install(read_environment(text, "environment.yml"), tmp_path)
    assert [unit.args for unit in plan.units] == [("numpy",)]
    assert plan.common == ["--prerelease", "allow"]
    assert any("'--no-deps' is not supported" in note for note in plan.notes)
    assert any("installing numpy unpinned" in note for note in plan.notes)
