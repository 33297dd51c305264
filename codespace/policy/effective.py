"""A user's effective policy: the union of their groups' rules, each with where it came from.

:meth:`Policy.for_groups` combines the sections of the user's listed groups (in the file's
order; a rule a group leaves out takes the default's value) or, when none is listed, the
default section. Lists are unioned and ``"*"`` absorbs them; limits take the largest and "no
limit" absorbs them. Every :class:`Grant` keeps the group(s) whose value won, so a refusal
(:class:`PolicyRefused`) can name the rule and the group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .model import ANY, NAME_RULES, RULES, Memory, PolicyFile, Rules, format_bytes

POLICY_ENV = "CODESPACE_POLICY"
DEFAULT = "default"
_TOLERANCE = 1e-9

T = TypeVar("T")


class PolicyRefused(ValueError):
    """The policy does not allow what was asked; ``rule`` and ``group`` name the rule."""

    def __init__(self, message: str, rule: str, group: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.group = group


@dataclass(frozen=True)
class Grant(Generic[T]):
    """One effective rule: its value (``None``: any / no limit) and the groups it came from."""

    value: T | None
    sources: tuple[str, ...] = (DEFAULT,)

    @property
    def group(self) -> str:
        """The source group (``"default"``), or the contributing groups joined by ", "."""
        return ", ".join(self.sources)

    def to_data(self) -> Any:
        if self.value is None:
            return ANY
        if isinstance(self.value, Memory):
            return self.value.text
        return list(self.value) if isinstance(self.value, tuple) else self.value


def _unlimited() -> Grant[Any]:
    return Grant(None)


@dataclass(frozen=True)
class Effective:
    """What one user may use. ``groups``: their groups that the policy file lists."""

    groups: tuple[str, ...] = ()
    profiles: Grant[tuple[str, ...]] = field(default_factory=_unlimited)
    maxCodespaces: Grant[int] = field(default_factory=_unlimited)
    gpus: Grant[float] = field(default_factory=_unlimited)
    cpu: Grant[float] = field(default_factory=_unlimited)
    memory: Grant[Memory] = field(default_factory=_unlimited)
    datasets: Grant[tuple[str, ...]] = field(default_factory=_unlimited)
    jobBackends: Grant[tuple[str, ...]] = field(default_factory=_unlimited)
    deployBackends: Grant[tuple[str, ...]] = field(default_factory=_unlimited)

    # ----------------------------------------------------------------- names

    def check_profile(self, slug: str | None) -> None:
        """Refuse a profile the user may not pick; ``None`` (no profiles) is not checked."""
        if slug is not None:
            self._check_names("profiles", "profile", [slug])

    def allowed_profiles(self, slugs: Sequence[str]) -> list[str]:
        """The profiles of ``slugs`` the user may pick, in their order (for the spawn form)."""
        return _allowed(self.profiles, slugs)

    def check_datasets(self, names: Iterable[str]) -> None:
        self._check_names("datasets", "dataset", list(names))

    def allowed_datasets(self, names: Iterable[str]) -> list[str]:
        return _allowed(self.datasets, names)

    def check_job_backend(self, name: str) -> None:
        self._check_names("jobBackends", "job backend", [name])

    def check_deploy_backend(self, name: str) -> None:
        self._check_names("deployBackends", "deploy backend", [name])

    def _check_names(self, rule: str, what: str, names: list[str]) -> None:
        grant: Grant[tuple[str, ...]] = getattr(self, rule)
        allowed = grant.value
        if allowed is None:
            return
        refused = [name for name in dict.fromkeys(names) if name not in allowed]
        if not refused:
            return
        quoted = ", ".join(f'"{name}"' for name in refused)
        subject = f"{what} {quoted} is" if len(refused) == 1 else f"{what}s {quoted} are"
        raise PolicyRefused(
            f"policy: {subject} not allowed {_for_sources(grant.sources)}; "
            f"allowed: {', '.join(allowed or ()) or 'none'} ({rule})",
            rule,
            grant.group,
        )

    # ----------------------------------------------------------------- limits

    def check_count(self, running: int) -> None:
        """Refuse one more codespace when ``running`` (or starting) ones reach the limit."""
        limit = self.maxCodespaces.value
        if limit is None or running < limit:
            return
        allows = "allows no codespaces" if limit == 0 else f"allows at most {_plural(limit)}"
        raise self._refused(
            "maxCodespaces", f"{allows} (maxCodespaces); you have {running} running"
        )

    def check_gpus(self, in_use: float, asked: float) -> None:
        """Refuse ``asked`` GPUs when the user's running codespaces already hold ``in_use``."""
        limit = self.gpus.value
        if limit is None or asked <= 0 or in_use + asked <= limit + _TOLERANCE:
            return
        allows = "allows no GPUs" if limit == 0 else f"allows at most {limit:g} GPUs in total"
        using = (
            f"you use {in_use:g} and asked for {asked:g}" if in_use else f"you asked for {asked:g}"
        )
        raise self._refused("gpus", f"{allows} (gpus); {using}")

    def check_resources(self, cpu: float | None, memory_bytes: int | None) -> None:
        """Refuse one codespace's CPU cores or memory above the ceilings; ``None``: not asked."""
        cores = self.cpu.value
        if cpu is not None and cores is not None and cpu > cores + _TOLERANCE:
            message = (
                f"allows at most {cores:g} CPU cores per codespace (cpu); you asked for {cpu:g}"
            )
            raise self._refused("cpu", message)
        memory = self.memory.value
        if memory_bytes is not None and memory is not None and memory_bytes > memory.bytes:
            message = (
                f"allows at most {memory.text} of memory per codespace (memory); "
                f"you asked for {format_bytes(memory_bytes)}"
            )
            raise self._refused("memory", message)

    def _refused(self, rule: str, message: str) -> PolicyRefused:
        grant: Grant[Any] = getattr(self, rule)
        return PolicyRefused(f"policy: {_by_sources(grant.sources)} {message}", rule, grant.group)

    # ----------------------------------------------------------------- data

    def summary(self) -> dict[str, dict[str, Any]]:
        """Each rule -> ``{value, group, groups}``; ``"*"`` is any / no limit."""
        return {
            rule: {"value": grant.to_data(), "group": grant.group, "groups": list(grant.sources)}
            for rule, grant in ((rule, getattr(self, rule)) for rule in RULES)
        }

    def to_json(self) -> str:
        return json.dumps({"groups": list(self.groups), "rules": self.summary()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Effective:
        """The inverse of :meth:`to_json`; ValueError when ``text`` is not one."""
        try:
            data = json.loads(text)
            rules = data["rules"]
            values = Rules.model_validate({rule: rules[rule]["value"] for rule in RULES})
            grants = {
                rule: Grant(_effective(getattr(values, rule)), _sources(rules[rule]["groups"]))
                for rule in RULES
            }
            return cls(groups=_sources(data["groups"]), **grants)
        except (TypeError, KeyError, ValueError) as error:  # pydantic's errors are ValueErrors
            raise ValueError(f"not an effective policy ({POLICY_ENV}): {error}") from None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Effective | None:
        """The policy the hub gave this codespace in ``$CODESPACE_POLICY``; None when none."""
        text = (os.environ if environ is None else environ).get(POLICY_ENV)
        return cls.from_json(text) if text else None


@dataclass(frozen=True)
class Policy:
    """A loaded policy file (``file``: where it was read, for messages); empty: no rules."""

    rules: PolicyFile = field(default_factory=PolicyFile)
    file: str | None = None

    def for_groups(self, groups: Iterable[str]) -> Effective:
        """The rules of a user in ``groups`` (JupyterHub group names; unlisted ones ignored)."""
        member = set(groups)
        listed = tuple(name for name in self.rules.groups if name in member)
        sections = [(name, self.rules.groups[name]) for name in listed]
        grants: dict[str, Grant[Any]] = {}
        for rule in RULES:
            inherited = _effective(getattr(self.rules.default, rule))
            # a key a group leaves out is the default's value, granted by that group: a
            # refusal names the user's group, not the default
            values = [
                (
                    name,
                    inherited if getattr(rules, rule) is None else _effective(getattr(rules, rule)),
                )
                for name, rules in sections
            ] or [(DEFAULT, inherited)]
            grants[rule] = _union(values) if rule in NAME_RULES else _largest(values)
        return Effective(groups=listed, **grants)


def _effective(value: Any) -> Any:
    """A section's value as an effective one: "*" (and left out) are ``None``."""
    return None if value is None or value == ANY else value


def _union(values: list[tuple[str, tuple[str, ...] | None]]) -> Grant[tuple[str, ...]]:
    for source, names in values:
        if names is None:
            return Grant(None, (source,))
    merged = tuple(dict.fromkeys(name for _, names in values for name in names or ()))
    return Grant(merged, tuple(dict.fromkeys(source for source, _ in values)))


def _largest(values: list[tuple[str, Any]]) -> Grant[Any]:
    best_source, best = values[0]
    for source, value in values:
        if value is None:
            return Grant(None, (source,))
        if _size(value) > _size(best):
            best_source, best = source, value
    return Grant(best, (best_source,))


def _size(value: int | float | Memory) -> float:
    return value.bytes if isinstance(value, Memory) else value


def _allowed(grant: Grant[tuple[str, ...]], names: Iterable[str]) -> list[str]:
    return [name for name in names if grant.value is None or name in grant.value]


def _sources(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of group names, got {value!r}")
    return tuple(value)


def _by_sources(sources: tuple[str, ...]) -> str:
    """Who set a limit: ``group "students"`` or ``the default policy``."""
    return f'group "{sources[0]}"' if sources and sources != (DEFAULT,) else "the default policy"


def _for_sources(sources: tuple[str, ...]) -> str:
    """Whose lists were unioned: ``for your groups (a, b)``, ``by the default policy``."""
    groups = [source for source in sources if source != DEFAULT]
    if not groups:
        return "by the default policy"
    text = f"for your groups ({', '.join(groups)})"
    return f"{text} or the default policy" if DEFAULT in sources else text


def _plural(count: int) -> str:
    return f"{count} running codespace" + ("" if count == 1 else "s")
