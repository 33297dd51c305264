"""uv's output becomes steps that move and one line per package list."""

from __future__ import annotations

from codespace.local.envbuild.progress import BuildProgress


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int | None, str]] = []

    def step(self, progress: int, message: str) -> None:
        self.events.append((progress, message))

    def line(self, text: str) -> None:
        self.events.append((None, text))


UV_OUTPUT = [
    "Using CPython 3.11.7",
    "Resolved 12 packages in 1.21s",
    "Downloading numpy (15.8MiB)",
    " Downloaded numpy",
    "Prepared 11 packages in 2.50s",
    "Installed 12 packages in 45ms",
    *[f" + pkg{i}==1.{i}" for i in range(12)],
    " - oldpkg==0.1",
    "warning: something the user should read",
]


FOLDED = "added 12: pkg0==1.0, pkg1==1.1, pkg2==1.2, pkg3==1.3, pkg4==1.4, pkg5==1.5 and 6 more"


def test_milestones_move_the_percentage_and_package_lists_fold() -> None:
    recorder = Recorder()
    progress = BuildProgress(recorder)
    for line in UV_OUTPUT:
        progress.line(line)
    progress.flush()
    steps = [(p, m) for p, m in recorder.events if p is not None]
    assert steps == [
        (45, "environment: resolved 12 packages in 1.21s"),
        (55, "environment: downloaded 11 packages in 2.50s"),
        (65, "environment: installed 12 packages in 45ms"),
    ]
    lines = [m for p, m in recorder.events if p is None]
    assert FOLDED in lines
    assert "removed 1: oldpkg==0.1" in lines
    assert "warning: something the user should read" in lines  # passed through
    assert not any(line.lstrip().startswith("+") for line in lines)
    # the fold comes before the next thing uv says, in order
    assert lines.index(FOLDED) < lines.index("warning: something the user should read")
