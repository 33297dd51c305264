"""Data-driven resolution cases: ``tests/cases/<name>/repo`` + ``expect.yaml``.

``expect.yaml`` keys (all optional): ``config``, ``mode`` (arguments to resolve());
``source``, ``source_kind``, ``env_files`` (exact); ``resolved`` (a subset of the resolved
model: mappings compare key by key, lists item by item); ``provenance`` (a subset);
``warnings`` (each a substring of one warning, or ``[]`` for none); ``only_warnings``
(true: every warning must match one of ``warnings``); ``error`` (a substring, or a list of
them, of the error text; the case must fail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from codespace.resolve import resolve
from codespace.spec.errors import SpecError

CASES = Path(__file__).resolve().parent.parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "expect.yaml").is_file())


def assert_subset(expected: Any, actual: Any, where: str = "") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key}: missing from {sorted(actual)}"
            assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(expected) == len(actual), f"{where}: expected {expected!r}, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: expected {expected!r}, got {actual!r}"


def as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_there_are_enough_cases() -> None:
    assert len(NAMES) >= 40


@pytest.mark.parametrize("name", NAMES)
def test_case(name: str) -> None:
    expect = yaml.safe_load((CASES / name / "expect.yaml").read_text()) or {}
    repo = CASES / name / "repo"
    kwargs = {"config": expect.get("config"), "mode": expect.get("mode", "local")}
    if "error" in expect:
        with pytest.raises(SpecError) as raised:
            resolve(repo, **kwargs)
        text = str(raised.value)
        for needle in as_list(expect["error"]):
            assert needle in text, f"{needle!r} not in:\n{text}"
        assert "Traceback" not in text
        return
    resolution = resolve(repo, **kwargs)
    for key in ("source", "source_kind", "env_files"):
        if key in expect:
            assert getattr(resolution, key) == expect[key], key
    if "resolved" in expect:
        assert_subset(expect["resolved"], resolution.codespace.model_dump(mode="json"), "resolved")
    if "provenance" in expect:
        provenance = {k: str(v) for k, v in resolution.provenance.items()}
        assert_subset(expect["provenance"], provenance, "provenance")
    if "warnings" in expect:
        warnings = [str(w) for w in resolution.warnings]
        if not expect["warnings"]:
            assert warnings == []
        for needle in expect["warnings"]:
            assert any(needle in w for w in warnings), f"{needle!r} not in {warnings}"
        if expect.get("only_warnings"):
            for warning in warnings:
                assert any(n in warning for n in expect["warnings"]), f"unexpected: {warning}"
