"""User options for a spawn: which repository, which ref, which profile.

The same model serves the spawn form, the hub's REST API and both spawners. Values end up
as arguments to ``git``, so validation here is a security boundary: only https, ssh, file
URLs and absolute local paths; refs that ``git check-ref-format`` would accept; nothing that
starts with ``-`` (option injection) or carries shell or control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codespace.spec.model import DNS1123_LABEL, GpuRequest, Resources

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~/-]+$")
_URL = re.compile(r"^(https|ssh|file)://[^\s]+$")
_FORBIDDEN_CHARS = re.compile(r"[\s;|&$`<>(){}\\'\"*?!\x00-\x1f\x7f]")
_REF = re.compile(r"^[A-Za-z0-9._/+-]+$")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def validate_repo(value: str) -> str:
    """Return ``value`` if it is a repository location git may fetch; raise ValueError."""
    value = value.strip()
    if not value:
        raise ValueError("repo is empty: give an https://, ssh:// or file:// URL or a local path")
    if value.startswith("-"):
        raise ValueError(f"repo {value!r} starts with '-': refused (looks like a git option)")
    if "::" in value.split("/")[0]:
        raise ValueError(f"repo {value!r} uses a git remote helper: refused")
    if _FORBIDDEN_CHARS.search(value):
        raise ValueError(f"repo {value!r} contains spaces, quotes or shell characters: refused")
    if value.startswith("/"):
        if ".." in value.split("/"):
            raise ValueError(f"repo path {value!r} must not contain '..'")
        return value.rstrip("/") or "/"
    if _URL.match(value) or _SCP_LIKE.match(value):
        return value
    raise ValueError(
        f"repo {value!r} is not supported: use an https://, ssh:// or file:// URL, "
        "user@host:path, or an absolute local path"
    )


def local_repo_path(repo: str) -> Path | None:
    """The directory a repository location names on this machine (an absolute path or a
    ``file://`` URL), or None for a remote one."""
    if repo.startswith("/"):
        return Path(repo)
    if repo.startswith("file://"):
        return Path(unquote(urlsplit(repo).path) or "/")
    return None


def check_local_repo(repo: str, allowed: Iterable[Path], refused: Iterable[Path] = ()) -> None:
    """Raise ValueError unless a local ``repo`` lies under one of the ``allowed`` roots (and
    under none of the ``refused`` ones: the hub's data directory); remote ones pass."""
    path = local_repo_path(repo)
    if path is None:
        return
    real = path.resolve()

    def under(root: Path) -> bool:
        return real == root or root in real.parents

    roots = [Path(root).resolve() for root in allowed]
    inside = any(under(root) for root in roots)
    blocked = any(under(Path(root).resolve()) for root in refused)
    if inside and not blocked:
        return
    where = ", ".join(str(root) for root in roots) or "none are allowed on this hub"
    raise ValueError(
        f"repo {repo!r} is a local path outside the directories the hub allows ({where}); "
        "give an https:// or ssh:// URL, or ask the admin to allow its directory "
        "(codespace-hub --allow-repo-root DIR)"
    )


def validate_ref(value: str) -> str:
    """Return ``value`` if it is a branch, tag or commit name git accepts; raise ValueError."""
    value = value.strip()
    problem = None
    if value.startswith("-"):
        problem = "starts with '-' (looks like a git option)"
    elif not _REF.match(value):
        problem = "may contain only letters, digits and . _ / + -"
    elif ".." in value or "//" in value or value.endswith(("/", ".", ".lock")):
        problem = "is not a valid git ref name"
    elif any(part.startswith(".") for part in value.split("/")):
        problem = "has a component that starts with '.'"
    elif len(value) > 255:
        problem = "is longer than 255 characters"
    if problem:
        raise ValueError(f"ref {value!r} {problem}: refused")
    return value


class UserOptions(BaseModel):
    """What a user asks for when starting a codespace."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    repo: str = Field(..., description="git URL (https, ssh, file) or absolute local path")
    ref: str | None = Field(None, description="branch, tag or commit; default branch if empty")
    profile: str | None = Field(None, description="an admin-defined profile name")
    config: str | None = Field(None, description="devcontainer config name when there are several")
    datasets: list[str] = Field(default_factory=list, description="extra datasets to mount")
    gpu: GpuRequest | None = Field(
        None, description="a GPU request over the repository's resources.gpu (same forms)"
    )

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        return Resources.model_validate({"gpu": value}).gpu if value is not None else None

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return validate_repo(value)

    @field_validator("ref", "profile", "config", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        if isinstance(value, list):  # HTML forms submit lists
            value = value[0] if value else None
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return None if value is None else validate_ref(value)

    @field_validator("profile", "config")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _SERVER_NAME.match(value):
            raise ValueError(f"{value!r} may contain only letters, digits, '.', '_' and '-'")
        return value

    @field_validator("datasets", mode="before")
    @classmethod
    def _dataset_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in re.split(r"[\s,]+", value) if part]
        for name in value or []:
            if not isinstance(name, str) or not DNS1123_LABEL.match(name):
                raise ValueError(f"dataset name {name!r} is not a DNS-1123 label")
        return value
