"""The devcontainer lifecycle as data: the commands' order, which run once, ``waitFor``.

Pure definitions both modes share: the launch plan (:mod:`codespace.launch`) lists a
codespace's commands as :class:`Step` values; the local spawner and the pod's entrypoint
run them with :mod:`codespace.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from codespace.spec.model import LIFECYCLE_COMMANDS, Command

# ``postBuild`` (repo2docker) builds the environment in an image; locally it runs once per
# workspace before ``onCreateCommand``, in the codespace's own layer, and is always waited for.
POST_BUILD = "postBuild"
ORDER = (POST_BUILD, *LIFECYCLE_COMMANDS)
ONCE_PER_WORKSPACE = (POST_BUILD, "onCreateCommand", "updateContentCommand", "postCreateCommand")
EVERY_START = ("initializeCommand", "postStartCommand", "postAttachCommand")
DEFAULT_WAIT_FOR = "updateContentCommand"


@dataclass(frozen=True)
class Step:
    """One lifecycle command due on this start."""

    name: str
    command: Command

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "command": self.command}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Step:
        return cls(str(data["name"]), data["command"])  # type: ignore[arg-type]


def split_for_wait(steps: list[Step], wait_for: str | None) -> tuple[list[Step], list[Step]]:
    """``(waited, background)``: the steps up to and including ``waitFor``, and the rest."""
    last = ORDER.index(wait_for or DEFAULT_WAIT_FOR)
    waited = [s for s in steps if ORDER.index(s.name) <= last]
    return waited, [s for s in steps if ORDER.index(s.name) > last]


def to_argv(command: str | list[str]) -> list[str]:
    """A lifecycle command as an argument vector (strings go to ``/bin/sh -c``)."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def describe(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)
