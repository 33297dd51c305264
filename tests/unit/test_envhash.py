"""The environment hash moves when, and only when, an environment input changes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codespace.envhash import copy_sources, dockerfile_instructions
from codespace.resolve import resolve
from codespace.spec.errors import SpecError

MANIFEST = """\
python:
  version: "3.11"
  requirements: [requirements.txt]
apt: [git]
postBuild: scripts/postBuild
ports:
  - port: 8888
"""
ENV_FILES = ("requirements.txt", "requirements/base.txt", "scripts/postBuild")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[a-z][a-z0-9_]{0,10}(\.(py|ipynb|md|csv))?", fullmatch=True)
contents = st.binary(max_size=200)
# Environment files must be UTF-8 (resolve refuses others) and a line starting with '-' may
# include another file (-r/-c); anything else is fair game.
env_contents = st.text(st.characters(blacklist_characters="-", codec="utf-8"), max_size=200).map(
    str.encode
)


@contextmanager
def repository() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write(root, ".codespace/codespace.yaml", MANIFEST)
        write(root, "requirements.txt", "-r requirements/base.txt\nnumpy==2.1\n")
        write(root, "requirements/base.txt", "pandas\n")
        write(root, "scripts/postBuild", "#!/bin/sh\necho built\n")
        write(root, "train.py", "print('train')\n")
        yield root


def write(root: Path, relative: str, text: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def env_hash(root: Path) -> str:
    return resolve(root, mode="kubernetes").env_hash


def test_inputs_are_exactly_the_environment_files() -> None:
    with repository() as root:
        resolution = resolve(root)
        assert resolution.env_files == sorted(ENV_FILES)
        assert len(resolution.env_hash) == 64


@SETTINGS
@given(name=names, data=contents)
def test_code_and_notebook_changes_keep_the_hash(name: str, data: bytes) -> None:
    with repository() as root:
        before = env_hash(root)
        write(root, f"src/{name}", data)
        write(root, "train.py", data)
        assert env_hash(root) == before


@SETTINGS
@given(which=st.sampled_from(ENV_FILES), data=env_contents)
def test_any_environment_file_change_moves_the_hash(which: str, data: bytes) -> None:
    with repository() as root:
        before = env_hash(root)
        original = (root / which).read_bytes()
        write(root, which, data)
        assert (env_hash(root) == before) == (data.replace(b"\r\n", b"\n") == original)


@SETTINGS
@given(lines=st.lists(st.from_regex(r"[a-z]{1,8}(==[0-9]\.[0-9])?", fullmatch=True), max_size=5))
def test_line_endings_do_not_matter(lines: list[str]) -> None:
    with repository() as root:
        write(root, "requirements.txt", "\n".join(lines) + "\n")
        unix = env_hash(root)
        write(root, "requirements.txt", "\r\n".join(lines) + "\r\n")
        assert env_hash(root) == unix


@SETTINGS
@given(
    key=st.sampled_from(["ports", "datasets", "containerEnv", "postStartCommand", "lifetime"]),
)
def test_manifest_keys_outside_the_environment_keep_the_hash(key: str) -> None:
    values = {
        "ports": "ports: [{port: 9999}]",
        "datasets": "datasets: [{name: mnist}]",
        "containerEnv": "containerEnv: {A: b}",
        "postStartCommand": "postStartCommand: jupyter lab",
        "lifetime": "lifetime: {idleTimeout: 1h}",
    }
    with repository() as root:
        before = env_hash(root)
        manifest = MANIFEST.replace("ports:\n  - port: 8888\n", "") + values[key] + "\n"
        write(root, ".codespace/codespace.yaml", manifest)
        assert env_hash(root) == before


@pytest.mark.parametrize(
    "change",
    [
        ('version: "3.11"', 'version: "3.12"'),
        ("apt: [git]", "apt: [git, curl]"),
        ("postBuild: scripts/postBuild", "postBuild: scripts/postBuild\nimage: python:3.11"),
    ],
)
def test_environment_keys_move_the_hash(change: tuple[str, str]) -> None:
    with repository() as root:
        before = env_hash(root)
        write(root, ".codespace/codespace.yaml", MANIFEST.replace(*change))
        assert env_hash(root) != before


def test_renaming_a_requirement_file_moves_the_hash() -> None:
    with repository() as root:
        before = env_hash(root)
        (root / "requirements.txt").rename(root / "reqs.txt")
        write(
            root, ".codespace/codespace.yaml", MANIFEST.replace("[requirements.txt]", "[reqs.txt]")
        )
        assert env_hash(root) != before


def test_dockerfile_copy_sources_are_inputs() -> None:
    with repository() as root:
        write(root, ".codespace/codespace.yaml", "build: {dockerfile: Dockerfile}\n")
        write(root, "Dockerfile", "FROM python:3.11\nCOPY env/ /env/\nCOPY --from=x /a /a\n")
        write(root, "env/extra.txt", "a\n")
        first = resolve(root, mode="kubernetes")
        assert first.env_files == ["Dockerfile", "env/extra.txt"]
        write(root, "env/extra.txt", "b\n")
        assert env_hash(root) != first.env_hash
        write(root, "train.py", "changed\n")
        write(root, "env/extra.txt", "a\n")
        assert env_hash(root) == first.env_hash


def test_an_input_symlink_leaving_the_repository_is_an_error() -> None:
    with repository() as root, tempfile.TemporaryDirectory() as outside:
        secret = Path(outside) / "secret.txt"
        secret.write_text("token\n")
        (root / "requirements/base.txt").unlink()
        os.symlink(secret, root / "requirements/base.txt")
        with pytest.raises(SpecError, match="leaves the repository"):
            resolve(root)


def test_dockerfile_parsing() -> None:
    text = "# syntax=docker/dockerfile:1\nFROM a\nCOPY a.txt \\\n  b.txt /dst/\nRUN x\n"
    instructions = dockerfile_instructions(text)
    assert [name for name, _ in instructions] == ["FROM", "COPY", "RUN"]
    assert copy_sources(instructions[1][1]) == ["a.txt", "b.txt"]
    assert copy_sources('["a b.txt", "/dst"]') == ["a b.txt"]
    assert copy_sources("--chown=1000 src /dst") == ["src"]
    assert copy_sources("--from=build /out /out") is None
    assert copy_sources("https://example.com/x.tgz $HOME/y /dst") == []


CONDA_ENV = """\
name: demo
dependencies:
  - python=3.11
  - numpy
  - pip:
    - -r requirements-pip.txt
    - -e .
"""


@contextmanager
def conda_repository() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write(root, "binder/environment.yml", CONDA_ENV)
        write(root, "binder/requirements-pip.txt", "-r more/extra.txt\nrich\n")
        write(root, "binder/more/extra.txt", "tqdm\n")
        write(root, "binder/setup.py", "from setuptools import setup\nsetup(name='demo')\n")
        write(root, "notebook.ipynb", "{}\n")
        yield root


def test_pip_requirement_files_of_an_environment_file_are_inputs() -> None:
    with conda_repository() as root:
        first = resolve(root)
        assert first.env_files == [
            "binder/environment.yml",
            "binder/more/extra.txt",
            "binder/requirements-pip.txt",
            "binder/setup.py",  # -e . in binder/environment.yml is binder/
        ]
        for changed in ("binder/requirements-pip.txt", "binder/more/extra.txt", "binder/setup.py"):
            original = (root / changed).read_text()
            write(root, changed, original + "pandas\n")
            assert env_hash(root) != first.env_hash, changed
            write(root, changed, original)
        write(root, "notebook.ipynb", '{"cells": []}\n')
        assert env_hash(root) == first.env_hash


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: demo\ndependencies:\n  - numpy\n  - {foo: bar}\n", "binder/environment.yml:4:6"),
        ("dependencies: numpy\n", "binder/environment.yml:1:15"),
        ("dependencies:\n  - pip:\n    - -r missing.txt\n", "binder/environment.yml:3:7"),
    ],
)
def test_a_broken_environment_file_is_reported_at_its_line(text: str, where: str) -> None:
    with conda_repository() as root:
        write(root, "binder/environment.yml", text)
        with pytest.raises(SpecError) as raised:
            resolve(root)
        assert str(raised.value).startswith(f"{where}: "), str(raised.value)
