"""What the lab opens when a codespace opens (``/codespace/api/session``)."""

from __future__ import annotations

from pathlib import Path

from extensions.session_handlers import files_to_open


def make(workspace: Path, *names: str) -> None:
    for name in names:
        path = workspace / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_the_errors_file_first_then_the_files_the_repository_names(tmp_path: Path) -> None:
    make(tmp_path, "CODESPACE_ERRORS.md", "README.md", "nb/intro.ipynb", "docs/guide.md")
    wanted = ["nb/intro.ipynb", "missing.ipynb", "docs/guide.md"]
    assert files_to_open(tmp_path, tmp_path, wanted) == [
        "CODESPACE_ERRORS.md",
        "nb/intro.ipynb",
        "docs/guide.md",
    ]


def test_the_readme_when_the_repository_names_nothing_that_exists(tmp_path: Path) -> None:
    make(tmp_path, "readme.ipynb")
    assert files_to_open(tmp_path, tmp_path, ["gone.md"]) == ["readme.ipynb"]
    assert files_to_open(tmp_path / "empty", tmp_path, []) == []


def test_nothing_outside_the_workspace_is_opened(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    make(tmp_path, "secret.txt", "ws/README.md")
    (workspace / "link.txt").symlink_to(tmp_path / "secret.txt")
    wanted = ["../secret.txt", "link.txt", "/etc/passwd"]
    assert files_to_open(workspace, workspace, wanted) == ["README.md"]


def test_paths_are_relative_to_the_server_root(tmp_path: Path) -> None:
    make(tmp_path, "workspaces/proj/README.md")
    assert files_to_open(tmp_path / "workspaces" / "proj", tmp_path, []) == [
        "workspaces/proj/README.md"
    ]
