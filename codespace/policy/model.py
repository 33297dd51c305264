"""The policy file's models: :class:`Rules` (one section) and :class:`PolicyFile` (the file).

A rule left out of a section is ``None`` (the section takes the default's value, or there is
no limit); ``"*"`` (:data:`ANY`) is written out: any name, no limit. Names are the file's
camelCase spellings, as in :mod:`codespace.spec.model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, field_validator

from codespace.kube.quantity import to_bytes, to_cores

ANY: Literal["*"] = "*"

# The rules, in the order the file documents them.
NAME_RULES = ("profiles", "datasets", "jobBackends", "deployBackends")
LIMIT_RULES = ("maxCodespaces", "gpus", "cpu", "memory")
RULES = (
    "profiles",
    "maxCodespaces",
    "gpus",
    "cpu",
    "memory",
    "datasets",
    "jobBackends",
    "deployBackends",
)

_NO_NULL = "no value: give {what} (leave the key out to take the default's)"


@dataclass(frozen=True)
class Memory:
    """A memory limit: the text to show (``4Gi``) and its size in bytes."""

    text: str
    bytes: int

    def __str__(self) -> str:
        return self.text


def format_bytes(size: int) -> str:
    """``8589934592`` -> ``8Gi``; sizes that are not whole units get three digits."""
    for unit, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= scale:
            return f"{size // scale}{unit}" if size % scale == 0 else f"{size / scale:.3g}{unit}"
    return str(size)


def _is_number(value: Any) -> bool:
    """A finite int or float, not a bool (YAML's ``true`` is not 1 GPU; ``.inf`` is "*")."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _names(value: Any) -> tuple[str, ...] | Literal["*"]:
    if value is None:
        raise ValueError(_NO_NULL.format(what='a list of names, or "*" for any'))
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f'must be a list of names, or "*" for any (got {value!r})')
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"every name must be a non-empty string (got {item!r})")
    if ANY in value:
        return ANY
    return tuple(dict.fromkeys(item.strip() for item in value))


def _count(value: Any) -> int | Literal["*"]:
    if value == ANY:
        return ANY
    if value is None:
        raise ValueError(_NO_NULL.format(what='a whole number, or "*" for no limit'))
    if not _is_number(value) or value < 0 or int(value) != value:
        raise ValueError(f'must be a whole number >= 0, or "*" for no limit (got {value!r})')
    return int(value)


def _amount(value: Any) -> float | Literal["*"]:
    if value == ANY:
        return ANY
    if value is None:
        raise ValueError(_NO_NULL.format(what='a number, or "*" for no limit'))
    if not _is_number(value) or value < 0:
        raise ValueError(f'must be a number >= 0, or "*" for no limit (got {value!r})')
    return float(value)


def _cores(value: Any) -> float | Literal["*"]:
    if value == ANY:
        return ANY
    if value is None:
        raise ValueError(_NO_NULL.format(what='CPU cores (2 or "500m"), or "*" for no limit'))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a CPU quantity such as 2 or '500m'")
    cores = to_cores(value)  # its ValueError names the value
    if not math.isfinite(cores) or cores < 0:
        raise ValueError(f'must be CPU cores >= 0, or "*" for no limit (got {value!r})')
    return cores


def _memory(value: Any) -> Memory | Literal["*"]:
    if value == ANY:
        return ANY
    if isinstance(value, Memory):
        return value
    if value is None:
        raise ValueError(_NO_NULL.format(what='a quantity such as "4Gi", or "*" for no limit'))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a quantity such as '4Gi'")
    if _is_number(value) and value < 0:
        raise ValueError(f"memory must be >= 0 (got {value!r})")
    size = to_bytes(value)  # its ValueError names the value
    if isinstance(value, str):
        return Memory(value.strip(), size)
    text = format_bytes(size)
    return Memory(text if to_bytes(text) == size else str(size), size)


Names = Annotated[tuple[str, ...] | Literal["*"] | None, PlainValidator(_names)]
Count = Annotated[int | Literal["*"] | None, PlainValidator(_count)]
Amount = Annotated[float | Literal["*"] | None, PlainValidator(_amount)]
Cores = Annotated[float | Literal["*"] | None, PlainValidator(_cores)]
MemoryLimit = Annotated[Memory | Literal["*"] | None, PlainValidator(_memory)]


class Rules(BaseModel):
    """One section of the file (``default`` or a group); a rule left out is ``None``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: Names = Field(None, description='Profile slugs members may pick ("*": any)')
    maxCodespaces: Count = Field(None, description="Running (or starting) codespaces at once")
    gpus: Amount = Field(None, description="GPUs in total over their running codespaces")
    cpu: Cores = Field(None, description='The most CPU cores of one codespace (2 or "500m")')
    memory: MemoryLimit = Field(None, description='The most memory of one codespace ("4Gi")')
    datasets: Names = Field(None, description='Dataset names they may mount ("*": any)')
    jobBackends: Names = Field(None, description='Job backends they may submit to ("*": any)')
    deployBackends: Names = Field(None, description='Deploy backends they may use ("*": any)')


class PolicyFile(BaseModel):
    """The whole file: the ``default`` section and one section per JupyterHub group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Rules = Field(default_factory=Rules, description="Users in none of the groups")
    groups: dict[str, Rules] = Field(default_factory=dict, description="Rules per group name")

    @field_validator("default", mode="before")
    @classmethod
    def _empty_default(cls, value: Any) -> Any:
        return {} if value is None else value  # `default:` with every key commented out

    @field_validator("groups", mode="before")
    @classmethod
    def _empty_groups(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {str(name): {} if rules is None else rules for name, rules in value.items()}
        return value
